"""The audit log on the web: the latest entries of a site on its settings page (its admins
and owners), and of every site at /audit (server administrators only: 403 for others)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_login import login_required
from werkzeug.exceptions import Forbidden

from tracker import audit
from tracker.db.models import AuditEntry, Site
from tracker.web.access import logged_in_user
from tracker.web.context import get_db

bp = Blueprint("audit_log", __name__)


@bp.app_template_global()
def site_audit(site: Site) -> list[AuditEntry]:
    """The settings page's Audit log section: the site's latest entries, newest first."""
    with get_db().session() as session:
        return audit.latest(session, site)


@bp.get("/audit")
@login_required
def index() -> ResponseReturnValue:
    user = logged_in_user()
    if user is None or not user.is_admin:
        raise Forbidden("Only server administrators see the audit log of every site.")
    with get_db().session() as session:
        entries = audit.latest(session)
    return render_template("audit.html", entries=entries, shown=audit.SHOWN)
