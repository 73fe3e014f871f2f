"""Real time: who is here now, the last 30 minutes by minute, and the pages being viewed.

Reads raw events by their own timestamp (not by visit start): "now" is about activity.
A current visitor is a distinct visitor id with an event in the last 5 minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from tracker.db import Database
from tracker.db.models import Event
from tracker.stats.periods import MINUTE_MS
from tracker.stats.query import SiteLike, site_ref

CURRENT_WINDOW_MS = 5 * MINUTE_MS
MINUTES = 30
PAGES_LIMIT = 10

events = Event.__table__


@dataclass(frozen=True)
class Realtime:
    current_visitors: int
    # MINUTES entries, oldest first: (minutes ago, pageviews, visitors), "1" is the last minute.
    minutes: list[tuple[int, int, int]]
    # Pages viewed in the last 5 minutes: (path, visitors), most visitors first.
    pages: list[tuple[str, int]]


def _now_ms(now_ms: int | None) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms


def _current(conn: Connection, site_id: int, now_ms: int) -> int:
    return int(
        conn.scalar(
            select(func.count(events.c.visitor_id.distinct())).where(
                events.c.site_id == site_id,
                events.c.timestamp_ms > now_ms - CURRENT_WINDOW_MS,
                events.c.timestamp_ms <= now_ms,
                events.c.kind != "engagement",
            )
        )
        or 0
    )


def current_visitors(db: Database, site: SiteLike, *, now_ms: int | None = None) -> int:
    with db.engine.connect() as conn:
        return _current(conn, site_ref(site).id, _now_ms(now_ms))


def realtime(db: Database, site: SiteLike, *, now_ms: int | None = None) -> Realtime:
    site_id, now = site_ref(site).id, _now_ms(now_ms)
    # Minute m (1..30) covers (now - m minutes, now - (m-1) minutes].
    ago = (now - events.c.timestamp_ms) // MINUTE_MS + 1
    pageview = [
        events.c.site_id == site_id,
        events.c.kind == "pageview",
        events.c.timestamp_ms <= now,
    ]
    with db.engine.connect() as conn:
        by_minute = conn.execute(
            select(ago.label("ago"), func.count(), func.count(events.c.visitor_id.distinct()))
            .where(*pageview, events.c.timestamp_ms > now - MINUTES * MINUTE_MS)
            .group_by(ago)
        ).all()
        visitors = func.count(events.c.visitor_id.distinct())
        pages = conn.execute(
            select(events.c.path, visitors)
            .where(*pageview, events.c.timestamp_ms > now - CURRENT_WINDOW_MS)
            .group_by(events.c.path)
            .order_by(visitors.desc(), events.c.path)
            .limit(PAGES_LIMIT)
        ).all()
        current = _current(conn, site_id, now)
    found = {int(m): (int(p), int(v)) for m, p, v in by_minute}
    minutes = [(m, *found.get(m, (0, 0))) for m in range(MINUTES, 0, -1)]
    return Realtime(
        current_visitors=current,
        minutes=minutes,
        pages=[(path, int(count)) for path, count in pages],
    )
