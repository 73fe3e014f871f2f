"""The web UI: first run, login, sites, stats pages, site settings, members and invitations,
the audit log, one's account (password, two-factor login, API keys), the users (server
administrators), and health. Views stay
thin."""

from __future__ import annotations

from flask import Flask, render_template
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import Forbidden

from tracker.web import (
    account,
    audit_log,
    auth,
    export,
    health,
    invitations,
    links,
    members,
    password_reset,
    settings,
    sites,
    stats,
    users,
)
from tracker.web.alert_rules import bp as alerts_bp
from tracker.web.annotations import bp as annotations_bp
from tracker.web.beacon import init_beacon
from tracker.web.budgets import bp as budgets_bp
from tracker.web.database import init_database
from tracker.web.email_reports import bp as email_reports_bp
from tracker.web.email_reports import unsubscribe_now
from tracker.web.log_imports import bp as log_imports_bp
from tracker.web.security import init_security_headers
from tracker.web.spend import bp as spend_bp
from tracker.web.spreadsheet import init_spreadsheet
from tracker.web.twofactor import init_twofactor

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
    app.register_blueprint(log_imports_bp)
    app.register_blueprint(links.bp)
    app.register_blueprint(members.bp)
    app.register_blueprint(invitations.bp)
    app.register_blueprint(audit_log.bp)
    app.register_blueprint(email_reports_bp)
    app.register_blueprint(alerts_bp)
    # Mail clients post one-click unsubscribes without a token: the link's signature is it.
    csrf.exempt(unsubscribe_now)
    app.register_blueprint(account.bp)
    app.register_blueprint(password_reset.bp)
    app.register_blueprint(users.bp)
    init_twofactor(app)
    app.register_error_handler(Forbidden, _forbidden)
    init_beacon(app)
    init_spreadsheet(app)


def _forbidden(error: Forbidden) -> ResponseReturnValue:
    """A page saying which role it takes (the Stats API answers its own JSON)."""
    return render_template("forbidden.html", message=error.description), 403
