"""The stats page of a site, its full report lists and CSV downloads (thin views over stats).

Every route answers at /sites/<domain>/... (owner, admin, or anyone for a public site) and at
/share/<token>/... (a share link, read-only), so links built with `access.url_args` keep a
share-link visitor inside the link.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue

from tracker.sites import has_events
from tracker.web.access import SiteAccess, shared_site, viewable_site
from tracker.web.context import get_db
from tracker.web.sites import script_base_url

bp = Blueprint("stats", __name__)


def _access(domain: str | None, token: str | None) -> SiteAccess:
    return shared_site(token) if token is not None else viewable_site(domain or "")


@bp.get("/sites/<domain>")
@bp.get("/share/<token>")
def dashboard(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    access = _access(domain, token)
    with get_db().session() as session:
        started = has_events(session, access.site)
    if not started:
        return render_template(
            "empty.html", access=access, site=access.site, base_url=script_base_url()
        )
    return render_template("stats.html", access=access, site=access.site)


@bp.get("/sites/<domain>/status.json")
@bp.get("/share/<token>/status.json")
def status(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """Polled by the empty state: turns true once the first event is stored."""
    access = _access(domain, token)
    with get_db().session() as session:
        return jsonify(has_events=has_events(session, access.site))
