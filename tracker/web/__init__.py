"""The web UI: first run, login, the list of sites, and health. Views stay thin."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from tracker.web import auth, export, health, sites
from tracker.web.beacon import init_beacon

csrf = CSRFProtect()


def init_web(app: Flask) -> None:
    csrf.init_app(app)
    auth.init_login(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(sites.bp)
    app.register_blueprint(export.bp)
    init_beacon(app)
