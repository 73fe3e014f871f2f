"""The app factory: small setup steps, nothing at import time."""

from __future__ import annotations

import logging

from flask import Flask

from tracker.columnar import engine as columnar_engine
from tracker.config import Settings, ensure_secret_key, load_settings
from tracker.db import open_database


def create_app(settings: Settings | None = None) -> Flask:
    settings = ensure_secret_key(settings or load_settings())
    app = Flask(
        __name__,
        static_folder="web/static",
        static_url_path="/assets",
        template_folder="web/templates",
    )
    _setup_config(app, settings)
    _setup_logging(settings)
    _setup_database(app, settings)
    _setup_web(app)
    _setup_ingest(app)
    _setup_api(app)
    if settings.scheduler_enabled:
        _setup_jobs(app)
    return app


def _setup_config(app: Flask, settings: Settings) -> None:
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["WTF_CSRF_TIME_LIMIT"] = None
    app.extensions["tracker.settings"] = settings
    _setup_https(app, settings)


def _setup_https(app: Flask, settings: Settings) -> None:
    from tracker.web.https import init_https

    init_https(app, settings)


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper())


def _setup_database(app: Flask, settings: Settings) -> None:
    app.extensions["tracker.db"] = columnar_engine.attach(open_database(settings), settings)


def _setup_web(app: Flask) -> None:
    from tracker.web import init_web

    init_web(app)


def _setup_ingest(app: Flask) -> None:
    from tracker.ingest import init_ingest

    init_ingest(app)


def _setup_jobs(app: Flask) -> None:
    from tracker.jobs import start_scheduler

    start_scheduler(app)


def _setup_api(app: Flask) -> None:
    from tracker.api import init_api

    init_api(app)
