"""Who may see a site's stats, and how.

Raw export (events.csv, visits.csv) is the owner's or an admin's, logged in or through an
API key (`Authorization: Bearer <key>`). A public site or a share link grants it only when
the site's owner enabled `shared_export`. Unknown sites and sites the caller may not see
answer 404, so the answer does not reveal which sites exist.
"""

from __future__ import annotations

from typing import NoReturn

from flask import abort, request
from flask_login import current_user
from werkzeug.exceptions import Unauthorized

from tracker.accounts import user_for_api_key
from tracker.db.models import Site, User
from tracker.sites import can_manage, find_site
from tracker.web.auth import login_manager
from tracker.web.context import get_db

BEARER_HELP = "send your API key as the header: Authorization: Bearer <key>"


def bearer_key() -> str | None:
    """The API key of `Authorization: Bearer <key>`; None without the header, else 401."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized(f"Authorization: {BEARER_HELP}.")
    return key.strip()


def bearer_user() -> User | None:
    """The owner of the request's API key; None without a key, 401 for an unknown one."""
    key = bearer_key()
    if key is None:
        return None
    with get_db().session() as session:
        user = user_for_api_key(session, key)
    if user is None:
        raise Unauthorized(f"Authorization: this API key is not valid; {BEARER_HELP}.")
    return user


def request_user() -> User | None:
    """The caller: the logged-in user, else the API key's owner, else None."""
    if current_user.is_authenticated:
        return current_user.record
    return bearer_user()


def _login_or_404(user: User | None) -> NoReturn:
    if user is None:
        abort(login_manager.unauthorized())  # the redirect to the login page
    abort(404)


def exportable_site(domain: str) -> Site:
    """The site for /sites/<domain>/export/...: owner or admin, else public + shared_export."""
    user = request_user()
    with get_db().session() as session:
        site = find_site(session, domain)
    if site is None:
        _login_or_404(user)
    if not (can_manage(user, site) or (site.public and site.shared_export)):
        _login_or_404(user)
    return site
