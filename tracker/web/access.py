"""Who may see a site's stats, and how: owner or admin, anyone (public site), or a share link.

A share link is a secret path, `/share/<token>`: it opens one site's stats read-only and
nothing else (no settings, no other site). Revoking deletes the token, so the next request
through it fails. Unknown sites and sites a logged-in user may not see answer 404, so the
answer does not reveal which sites exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from flask import abort
from flask_login import current_user

from tracker.db.models import Site, User
from tracker.sites import can_manage, find_site, site_for_share_token
from tracker.web.auth import login_manager
from tracker.web.context import get_db


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


def _login_or_404() -> NoReturn:
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())  # the redirect to the login page
    abort(404)


def viewable_site(domain: str) -> SiteAccess:
    """The site for /sites/<domain>: its owner, an admin, or anyone when it is public."""
    with get_db().session() as session:
        site = find_site(session, domain)
    user = _user()
    if site is None:
        _login_or_404()
    manager = can_manage(user, site)
    if not (manager or site.public):
        _login_or_404()
    return SiteAccess(site=site, can_manage=manager)


def managed_site(domain: str) -> SiteAccess:
    """The site for settings pages: only its owner or an admin."""
    with get_db().session() as session:
        site = find_site(session, domain)
    if site is None or not can_manage(_user(), site):
        _login_or_404()
    return SiteAccess(site=site, can_manage=True)


def shared_site(token: str) -> SiteAccess:
    """The site a share link opens, read-only; 404 once the link is revoked."""
    with get_db().session() as session:
        site = site_for_share_token(session, token)
    if site is None:
        abort(404)
    return SiteAccess(site=site, can_manage=False, share_token=token)
