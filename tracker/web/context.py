"""Accessors for per-app objects, so views don't reach into app.extensions."""

from __future__ import annotations

from flask import current_app

from tracker.config import Settings
from tracker.db import Database


def get_db() -> Database:
    return current_app.extensions["tracker.db"]


def get_settings() -> Settings:
    return current_app.extensions["tracker.settings"]
