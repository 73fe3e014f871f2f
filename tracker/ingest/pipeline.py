"""The ingest pipeline: validated events in, hits handed to the writer, drops counted.

`Pipeline.accept` takes a request's parsed events (tracker.ingest.parse) through these
steps, each a function of the event and what the steps before it found:

    gate -> drop_reason -> enrich -> Writer.submit

- `gate`: the site is registered here, the API key (if any) may send for it, the page's
  host is allowed. Else the request is refused (403): its events are all accepted or all
  rejected, never half.
- `drop_reason`: Do Not Track or Global Privacy Control where the site honours them, bots
  and prefetches, referrer spam. Such events are answered like any other and only counted,
  per site, UTC day and reason (tracker.ingest.drops).
- `enrich`: the `Hit` (tracker.storage.visits): `visitor_ids` from the daily salts, then source
  (`attribute`), device (`parse_user_agent`), place (`GeoIP.lookup`) and screen class
  (`screen_class`), of tracker.enrich. No IP address or user agent goes further.
- `Writer.submit` (tracker.storage.writer): the hits and drop counts appended to the
  spool, on disk before the answer; the drain stores them moments later
  (`store_hits` in tracker.storage.store: visit assignment, rows, drop counts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.clock import now_ms
from tracker.enrich.geo import GeoIP
from tracker.enrich.source import (
    Attribution,
    attribute,
    clean_referrer,
    referrer_host,
    source_table,
)
from tracker.enrich.useragent import parse_user_agent, screen_class
from tracker.enrich.visitor import Salts, visitor_id
from tracker.ingest.bots import is_bot_user_agent, is_prefetch
from tracker.ingest.client import Network, client_ip, parse_networks
from tracker.ingest.drops import DropKey, DropReason, drop_key, utc_day
from tracker.ingest.gate import SiteCache, SiteInfo
from tracker.ingest.parse import IncomingEvent
from tracker.ingest.ratelimit import ClientRateLimit
from tracker.ingest.spam import SpamList, spam_hosts_path
from tracker.storage.spool import spool_directory
from tracker.storage.visits import Hit
from tracker.storage.writer import Writer

if TYPE_CHECKING:
    from flask import Flask

    from tracker.db import Database
    from tracker.db.models import User


WARM_UP_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 (tracker warm-up)"
)


class Rejected(Exception):
    """The request is refused (403); the message says why, without revealing other sites."""


@dataclass(slots=True)  # read-only by convention; built per request
class Client:
    ip: str
    user_agent: str
    prefetch: bool = False
    opted_out: bool = False  # the browser sent Do Not Track or Global Privacy Control

    @classmethod
    def of_request(cls, environ: Mapping[str, Any], trusted_proxies: tuple[Network, ...]) -> Client:
        """The sender of a request, from its WSGI environ (header lookups through Werkzeug's
        Headers cost microseconds each, per event)."""
        return cls(
            ip=client_ip(
                environ.get("REMOTE_ADDR", ""),
                environ.get("HTTP_X_FORWARDED_FOR", ""),
                trusted_proxies,
            ),
            user_agent=environ.get("HTTP_USER_AGENT", ""),
            prefetch=is_prefetch(environ),
            opted_out=environ.get("HTTP_DNT") == "1" or environ.get("HTTP_SEC_GPC") == "1",
        )


@dataclass(frozen=True, slots=True)
class Landing:
    """An event's source and stored referrer: functions of its page, its referrer and the
    site, the same for every event that has them."""

    attribution: Attribution
    referrer: str  # "" when the referrer is the site itself


@dataclass(frozen=True)
class Outcome:
    accepted: int
    dropped: Counter[DropReason]
    stored: bool  # in the database already (else in the spool, stored moments later)


class Pipeline:
    def __init__(
        self,
        db: Database,
        *,
        visit_timeout_minutes: int,
        spool_dir: Path,
        geoip_path: str = "",
        trusted_proxies: tuple[str, ...] = (),
        store_timeout_seconds: float = 10.0,
        rate_limit_per_minute: int = 0,
        spam_hosts_file: Path | None = None,
    ) -> None:
        self.db = db
        self.sites = SiteCache(db)
        self.salts = Salts(db)
        self.geo = GeoIP(geoip_path)
        self.trusted_proxies: tuple[Network, ...] = parse_networks(trusted_proxies)
        self.store_timeout_seconds = store_timeout_seconds
        self.rate_limit = ClientRateLimit(rate_limit_per_minute)
        self.spam = SpamList(spam_hosts_file)  # the bundled list, and the data directory's
        self.writer = Writer(db, spool_dir, timeout_ms=visit_timeout_minutes * 60_000)
        _warm_up()

    @classmethod
    def for_app(cls, app: Flask) -> Pipeline:
        settings = app.extensions["tracker.settings"]
        return cls(
            app.extensions["tracker.db"],
            visit_timeout_minutes=settings.visit_timeout_minutes,
            geoip_path=settings.geoip_path,
            trusted_proxies=settings.trusted_proxies,
            store_timeout_seconds=settings.store_timeout_seconds,
            spool_dir=spool_directory(settings.data_dir),
            rate_limit_per_minute=settings.ingest_rate_limit,
            spam_hosts_file=spam_hosts_path(settings.data_dir),
        )

    def accept(
        self,
        events: list[IncomingEvent],
        client: Client,
        user: User | None = None,
        *,
        wait: bool = False,
    ) -> Outcome:
        """Gate every event, then keep the kept ones and the drop counts durably; with
        `wait`, until they are in the database (store_timeout_seconds at most)."""
        sites = [self.gate(event, user) for event in events]
        hits: list[Hit] = []
        drops: Counter[DropKey] = Counter()
        dropped: Counter[DropReason] = Counter()
        received = now_ms()
        for event, site in zip(events, sites, strict=True):
            timestamp_ms = event.timestamp_ms if event.timestamp_ms is not None else received
            reason = self.drop_reason(event, client, site)
            if reason:
                drops[drop_key(site.id, timestamp_ms, reason)] += 1
                dropped[reason] += 1
            else:
                hits.append(self.enrich(event, site, client, timestamp_ms))
        stored = self.writer.submit(hits, drops, self.store_timeout_seconds if wait else 0)
        return Outcome(accepted=len(hits), dropped=dropped, stored=stored)

    def flush(self) -> bool:
        """Store what this process spooled (store_timeout_seconds at most); True if all is."""
        return self.writer.flush(self.store_timeout_seconds)

    def gate(self, event: IncomingEvent, user: User | None) -> SiteInfo:
        site = self.sites.get(event.site)
        if site is None:
            raise Rejected(f"site: {event.site!r} is not a site registered here")
        if user is not None and not (user.is_admin or user.id in site.writer_ids):
            raise Rejected(f"site: this API key may not send events for {event.site!r}")
        hostname = event.payload.hostname
        if not site.allows_host(hostname):
            raise Rejected(f"url: host {hostname!r} is not allowed for {site.domain!r}")
        return site

    def drop_reason(
        self, event: IncomingEvent, client: Client, site: SiteInfo
    ) -> DropReason | None:
        """Why the event is answered but not stored; None to store it."""
        if client.opted_out and site.honour_dnt:
            return DropReason.DNT
        if client.prefetch or is_bot_user_agent(_user_agent(event, client)):
            return DropReason.BOT
        if event.referrer and self.spam.is_spam(event.referrer):
            return DropReason.SPAM
        return None

    def enrich(
        self,
        event: IncomingEvent,
        site: SiteInfo,
        client: Client,
        ts: int,
        landing: Landing | None = None,
    ) -> Hit:
        """The event's hit. `landing`, when given, is `self.landing(event, site)` computed
        before (an access-log import keeps one per distinct page and referrer)."""
        ip = event.ip or client.ip
        user_agent = _user_agent(event, client)
        if landing is None:
            landing = self.landing(event, site)
        return Hit(
            site_id=site.id,
            visitor_ids=self.visitor_ids(site.id, ip, user_agent, utc_day(ts)),
            timestamp_ms=ts,
            payload=event.payload,
            attribution=landing.attribution,
            device=parse_user_agent(user_agent),
            place=self.geo.lookup(ip),
            screen=screen_class(event.screen),
            referrer=landing.referrer,
        )

    @staticmethod
    def landing(event: IncomingEvent, site: SiteInfo) -> Landing:
        """What enrichment finds from the event's page and referrer alone."""
        same_site = _is_same_site(event, site)
        return Landing(
            attribution=attribute(event.payload.query, event.referrer, same_site),
            referrer="" if same_site else clean_referrer(event.referrer),
        )

    def visitor_ids(self, site_id: int, ip: str, user_agent: str, day: date) -> tuple[int, ...]:
        """The visitor's id under the day's salt, then under yesterday's while it exists,
        so a visit continues past midnight."""
        today = visitor_id(self.salts.for_day(day), site_id, ip, user_agent)
        yesterday = self.salts.existing(day - timedelta(days=1))
        if yesterday is None:
            return (today,)
        return today, visitor_id(yesterday, site_id, ip, user_agent)


def _user_agent(event: IncomingEvent, client: Client) -> str:
    """The event's own (a trusted sender's, for its visitor), else the request's."""
    return event.user_agent if event.user_agent is not None else client.user_agent


def _warm_up() -> None:
    """Compile the user-agent and crawler patterns and load the data files now, at start-up,
    instead of during the first requests (it takes a second or two)."""
    is_bot_user_agent(WARM_UP_USER_AGENT)
    source_table()


def _is_same_site(event: IncomingEvent, site: SiteInfo) -> bool:
    host = referrer_host(event.referrer)
    hostname = event.payload.hostname
    return bool(host) and (host == hostname.removeprefix("www.") or site.allows_host(host))
