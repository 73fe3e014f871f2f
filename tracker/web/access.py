"""Who may see or change a site, and how: its members by role, anyone (public site), or a
share link. Every site route and API endpoint asks `site_access` / `api_site` for the
role it needs (tracker.members: viewer < admin < owner), nothing else.

Unknown sites and sites the user is not a member of answer 404, so the answer does not
reveal which sites exist (not logged in: the login page). A member whose role is too low
gets 403 with a sentence saying which role it takes: they know the site exists.

A share link is a secret path, `/share/<token>`: it opens one site's stats read-only and
nothing else (no settings, no other site). Revoking deletes the token, so the next request
through it fails.

Raw export (events.csv, visits.csv) is any member's, logged in or through an API key
(`Authorization: Bearer <key>`). A public site or a share link grants it only when the
site's owner enabled `shared_export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from flask import abort, request
from flask_login import current_user
from werkzeug.exceptions import Forbidden, NotFound, Unauthorized

from tracker.accounts import ApiCaller, api_key_caller, bearer_token
from tracker.db.models import Site, User
from tracker.members import ADMIN, OWNER, ROLE_NEEDS, VIEWER, allows, role_of
from tracker.sites import find_site, site_for_share_token
from tracker.web.auth import login_manager
from tracker.web.context import get_db

BEARER_HELP = "send your API key as the header: Authorization: Bearer <key>"


@dataclass(frozen=True)
class SiteAccess:
    """A site as one request may see it, with the user's role (None: not a member, on a
    public site or through a share link)."""

    site: Site
    role: str | None = None
    share_token: str | None = None

    @property
    def can_manage(self) -> bool:
        """Settings, goals, costs, budgets, links, annotations, members."""
        return allows(self.role, ADMIN)

    @property
    def is_owner(self) -> bool:
        """Deleting the site, making owners."""
        return allows(self.role, OWNER)

    @property
    def can_export(self) -> bool:
        return allows(self.role, VIEWER)

    @property
    def url_args(self) -> dict[str, Any]:
        """Arguments for url_for on stats endpoints: links stay inside the share link."""
        if self.share_token is not None:
            return {"token": self.share_token}
        return {"domain": self.site.domain}


def logged_in_user() -> User | None:
    """The logged-in user's record (None when nobody is): who the audit log names."""
    return current_user.record if current_user.is_authenticated else None


def _login_or_404(user: User | None) -> NoReturn:
    if user is None:
        abort(login_manager.unauthorized())  # the redirect to the login page
    abort(404)


def _site_and_role(domain: str, user: User | None) -> tuple[Site | None, str | None]:
    with get_db().session() as session:
        site = find_site(session, domain)
        return site, role_of(session, user, site) if site is not None else None


def _too_low(site: Site, role: str, need: str) -> Forbidden:
    return Forbidden(
        f"Your role on {site.domain} is {role}: only {ROLE_NEEDS[need]} of the site may do this."
    )


def site_access(domain: str, need: str) -> SiteAccess:
    """The site for /sites/<domain>/... when the logged-in user's role reaches `need`
    (VIEWER, ADMIN or OWNER); reading (VIEWER) a public site needs no role at all."""
    user = logged_in_user()
    site, role = _site_and_role(domain, user)
    if site is None or (role is None and not (need == VIEWER and site.public)):
        _login_or_404(user)
    if role is not None and not allows(role, need):
        raise _too_low(site, role, need)
    return SiteAccess(site=site, role=role)


def api_site(domain: str, user: User, need: str) -> Site:
    """The site an API request names, when the key's user's role reaches `need`: 404 for
    unknown sites and non-members alike, 403 for a member below it."""
    site, role = _site_and_role(domain, user) if domain else (None, None)
    if site is None or role is None:
        raise NotFound(f"site_id: no site {domain!r} that this API key can read.")
    if not allows(role, need):
        raise _too_low(site, role, need)
    return site


def shared_site(token: str) -> SiteAccess:
    """The site a share link opens, read-only; 404 once the link is revoked."""
    with get_db().session() as session:
        site = site_for_share_token(session, token)
    if site is None:
        abort(404)
    return SiteAccess(site=site, share_token=token)


def bearer_key() -> str | None:
    """The API key of `Authorization: Bearer <key>`; None without the header, else 401."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    try:
        return bearer_token(header)
    except ValueError:
        raise Unauthorized(f"Authorization: {BEARER_HELP}.") from None


def bearer_caller() -> ApiCaller | None:
    """The request's API key's owner and scope; None without a key, 401 for an unknown one."""
    key = bearer_key()
    if key is None:
        return None
    with get_db().session() as session:
        caller = api_key_caller(session, key)
    if caller is None:
        raise Unauthorized(f"Authorization: this API key is not valid; {BEARER_HELP}.")
    return caller


def bearer_user() -> User | None:
    """The owner of the request's API key; None without a key, 401 for an unknown one."""
    caller = bearer_caller()
    return caller.user if caller else None


def request_user() -> User | None:
    """The caller: the logged-in user, else the API key's owner, else None."""
    return logged_in_user() or bearer_user()


def exportable_site(domain: str) -> Site:
    """The site for /sites/<domain>/export/...: any member, else public + shared_export."""
    user = request_user()
    site, role = _site_and_role(domain, user)
    if site is None or not (role is not None or (site.public and site.shared_export)):
        _login_or_404(user)
    return site


def shared_exportable_site(token: str) -> Site:
    """The site for /share/<token>/export/...: only while the owner allows shared export."""
    site = shared_site(token).site
    if not site.shared_export:
        abort(404)
    return site
