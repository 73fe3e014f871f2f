"""Who may see a site's stats, and how: owner or admin, anyone (public site), or a share link.

A share link is a secret path, `/share/<token>`: it opens one site's stats read-only and
nothing else (no settings, no other site). Revoking deletes the token, so the next request
through it fails. Unknown sites and sites a logged-in user may not see answer 404, so the
answer does not reveal which sites exist.

Raw export (events.csv, visits.csv) is the owner's or an admin's, logged in or through an
API key (`Authorization: Bearer <key>`). A public site or a share link grants it only when
the site's owner enabled `shared_export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from flask import abort, request
from flask_login import current_user
from werkzeug.exceptions import Unauthorized

from tracker.accounts import bearer_token, user_for_api_key
from tracker.db.models import Site, User
from tracker.sites import can_manage, find_site, site_for_share_token
from tracker.web.auth import login_manager
from tracker.web.context import get_db

BEARER_HELP = "send your API key as the header: Authorization: Bearer <key>"


@dataclass(frozen=True)
class SiteAccess:
    """A site as one request may see it."""

    site: Site
    can_manage: bool
    share_token: str | None = None

    @property
    def url_args(self) -> dict[str, Any]:
        """Arguments for url_for on stats endpoints: links stay inside the share link."""
        if self.share_token is not None:
            return {"token": self.share_token}
        return {"domain": self.site.domain}


def _user() -> User | None:
    return current_user.record if current_user.is_authenticated else None


def _login_or_404(user: User | None) -> NoReturn:
    if user is None:
        abort(login_manager.unauthorized())  # the redirect to the login page
    abort(404)


def viewable_site(domain: str) -> SiteAccess:
    """The site for /sites/<domain>: its owner, an admin, or anyone when it is public."""
    with get_db().session() as session:
        site = find_site(session, domain)
    user = _user()
    if site is None:
        _login_or_404(user)
    manager = can_manage(user, site)
    if not (manager or site.public):
        _login_or_404(user)
    return SiteAccess(site=site, can_manage=manager)


def managed_site(domain: str) -> SiteAccess:
    """The site for settings pages: only its owner or an admin."""
    user = _user()
    with get_db().session() as session:
        site = find_site(session, domain)
    if site is None or not can_manage(user, site):
        _login_or_404(user)
    return SiteAccess(site=site, can_manage=True)


def shared_site(token: str) -> SiteAccess:
    """The site a share link opens, read-only; 404 once the link is revoked."""
    with get_db().session() as session:
        site = site_for_share_token(session, token)
    if site is None:
        abort(404)
    return SiteAccess(site=site, can_manage=False, share_token=token)


def bearer_key() -> str | None:
    """The API key of `Authorization: Bearer <key>`; None without the header, else 401."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    try:
        return bearer_token(header)
    except ValueError:
        raise Unauthorized(f"Authorization: {BEARER_HELP}.") from None


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
    return _user() or bearer_user()


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


def shared_exportable_site(token: str) -> Site:
    """The site for /share/<token>/export/...: only while the owner allows shared export."""
    site = shared_site(token).site
    if not site.shared_export:
        abort(404)
    return site
