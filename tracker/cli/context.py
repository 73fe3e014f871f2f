"""Shared state for CLI commands: settings and the database, made on first use."""

from __future__ import annotations

from functools import cached_property

import click

from tracker.config import Settings, load_settings
from tracker.db import Database


class CliContext:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.resolved_database_url())


pass_context = click.make_pass_decorator(CliContext)
