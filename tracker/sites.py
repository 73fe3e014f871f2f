"""Sites: validation of domains and time zones, adding, listing, deleting, share links."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from tracker.db.models import (
    DropCount,
    Event,
    Funnel,
    Goal,
    Invitation,
    SharedLink,
    Site,
    SiteMember,
    StatsRollup,
    StatsRollupState,
    User,
    Visit,
)
from tracker.members import OWNER, add_member
from tracker.money import currency_code

# Used with fullmatch: `$` would also match before a final newline ("example.com\n").
DOMAIN_RE = re.compile(
    r"(?=.{1,253}\Z)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*(:\d{1,5})?"
)


class SiteError(ValueError):
    """A user-facing problem with a site operation; `field` names the setting at fault
    ("" when it is not one setting)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def normalize_domain(domain: str) -> str:
    cleaned = domain.strip().lower()
    cleaned = re.sub(r"^https?://", "", cleaned).rstrip("/")
    if cleaned.startswith("www."):
        cleaned = cleaned[4:]
    if not DOMAIN_RE.fullmatch(cleaned) or "." not in cleaned and cleaned != "localhost":
        raise SiteError(f"{domain!r} is not a valid domain (expected something like example.com)")
    return cleaned


@cache
def _known_timezones() -> frozenset[str]:
    """The zones of the system's tz database, listed once per process: a listing walks the
    database's files (70 ms), and every new site was checked against it."""
    return frozenset(available_timezones())


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SiteError(f"{name!r} is not a known time zone (e.g. Europe/Paris, UTC)") from None
    if name not in _known_timezones() and name != "UTC":
        raise SiteError(f"{name!r} is not a known time zone (e.g. Europe/Paris, UTC)")
    return name


def site_today(site: Site, now: datetime | None = None) -> date:
    """The date in the site's time zone at `now` (default: this instant): the day a new
    note defaults to, the month budgets pace."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(site.timezone)).date()


def find_site(session: Session, domain: str) -> Site | None:
    if "\x00" in domain:  # no domain holds one, and PostgreSQL refuses it in a query
        return None
    return session.scalar(select(Site).where(Site.domain == domain.strip().lower()))


def add_site(
    session: Session, domain: str, *, timezone: str = "UTC", owner: User | None = None
) -> Site:
    domain = normalize_domain(domain)
    timezone = validate_timezone(timezone)
    if find_site(session, domain):
        raise SiteError(f"site {domain!r} already exists")
    site = Site(domain=domain, timezone=timezone, allowed_hostnames=[])
    session.add(site)
    session.flush()
    if owner is not None:
        add_member(session, site, owner, OWNER)
    return site


def delete_site(session: Session, site: Site) -> None:
    """Delete a site and all its data, children first (works without FK cascades too)."""
    children = (StatsRollup, StatsRollupState, Event, Visit, DropCount, SharedLink, Funnel, Goal)
    for model in (*children, SiteMember, Invitation):
        session.execute(delete(model).where(model.site_id == site.id))
    session.delete(site)


def list_sites(session: Session, user: User | None = None) -> list[Site]:
    """All sites for a server administrator (or the CLI, user=None); for anyone else the
    sites they are a member of, whatever their role."""
    query = select(Site).order_by(Site.domain)
    if user is not None and not user.is_admin:
        mine = select(SiteMember.site_id).where(SiteMember.user_id == user.id)
        query = query.where(Site.id.in_(mine))
    return list(session.scalars(query))


def new_share_token() -> str:
    return secrets.token_urlsafe(24)


def normalize_hostnames(text: str) -> list[str]:
    """Allowed page hosts, one per line or comma-separated: lower-cased, deduplicated.

    Unlike a site's domain, a leading `www.` is kept: it names a host, not the site.
    """
    hosts: list[str] = []
    for raw in re.split(r"[\s,]+", text.strip().lower()):
        host = re.sub(r"^https?://", "", raw).rstrip("/")
        if not host:
            continue
        if not DOMAIN_RE.fullmatch(host):
            raise SiteError(
                f"{raw!r} is not a valid hostname (expected something like shop.example.com)"
            )
        if host not in hosts:
            hosts.append(host)
    return hosts


def update_site(
    session: Session,
    site: Site,
    *,
    timezone: str,
    allowed_hostnames: str,
    public: bool,
    shared_export: bool,
    honour_dnt: bool = False,
    currency: str | None = None,
) -> None:
    """Apply the settings form; validation errors raise SiteError before anything changes.
    `currency` (None: unchanged) is what ad spend, CPA and ROAS are reported in."""
    timezone = validate_timezone(timezone)
    hosts = normalize_hostnames(allowed_hostnames)
    if currency is not None:
        code = currency_code(currency) if currency.strip() else ""
        if code is None:
            message = f"{currency.strip()!r} is not an ISO 4217 currency code (e.g. EUR, USD)."
            raise SiteError(message, "currency")
        site.currency = code
    site.timezone = timezone
    site.allowed_hostnames = hosts
    site.public = public
    site.shared_export = shared_export
    site.honour_dnt = honour_dnt


def share_links(session: Session, site: Site) -> list[SharedLink]:
    query = select(SharedLink).where(SharedLink.site_id == site.id).order_by(SharedLink.id)
    return list(session.scalars(query))


def create_share_link(session: Session, site: Site, name: str = "") -> SharedLink:
    link = SharedLink(site_id=site.id, name=name.strip()[:100], token=new_share_token())
    session.add(link)
    session.flush()
    return link


def revoke_share_link(session: Session, site: Site, link_id: int) -> bool:
    """Delete one of this site's links; False when it is not this site's (or is gone)."""
    result = session.execute(
        delete(SharedLink).where(SharedLink.id == link_id, SharedLink.site_id == site.id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def site_for_share_token(session: Session, token: str) -> Site | None:
    """The site a live share link opens; None for unknown or revoked tokens."""
    return session.scalar(select(Site).join(SharedLink).where(SharedLink.token == token))


def has_events(session: Session, site: Site) -> bool:
    """Whether anything was ever stored for the site (the empty state's check)."""
    return bool(session.scalar(select(exists().where(Event.site_id == site.id))))
