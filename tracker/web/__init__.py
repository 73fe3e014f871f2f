"""The web UI: first run, login, sites, stats pages, site settings, and health. Views stay thin."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from tracker.web import auth, export, health, links, settings, sites, stats
from tracker.web.annotations import bp as annotations_bp
from tracker.web.beacon import init_beacon
from tracker.web.budgets import bp as budgets_bp
from tracker.web.database import init_database
from tracker.web.security import init_security_headers
from tracker.web.spend import bp as spend_bp

csrf = CSRFProtect()


def init_web(app: Flask) -> None:
    csrf.init_app(app)
    init_security_headers(app)
    auth.init_login(app)
    init_database(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(sites.bp)
    app.register_blueprint(export.bp)
    app.register_blueprint(stats.bp)
    app.register_blueprint(settings.bp)
    app.register_blueprint(budgets_bp)
    app.register_blueprint(annotations_bp)
    app.register_blueprint(spend_bp)
    app.register_blueprint(links.bp)
    init_beacon(app)
