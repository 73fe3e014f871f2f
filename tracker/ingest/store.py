"""Store a batch of hits in one transaction: load the visits it touches, assign, write back.

Three reads and a handful of bulk writes per batch, however many events it holds. The
caller (the group-commit writer) owns the connection and the transaction.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from tracker.db.models import DropCount, Event, Visit
from tracker.sessions import VISIT_MUTABLE, Hit, PageviewState, VisitAssigner, VisitState

DAY_MS = 86_400_000
# How far back a visitor's visits are loaded: the visit timeout, or a day for engagement
# beacons of a tab left open (visitor ids change daily anyway).
LOOKBACK_MS = DAY_MS

visits_t = cast(Table, Visit.__table__)
events_t = cast(Table, Event.__table__)
drops_t = cast(Table, DropCount.__table__)

DropKey = tuple[int, date, str]  # site id, UTC day, reason

_PAGEVIEW_COLUMNS = ("engaged_ms", "scroll", "time_on_page_ms")


def utc_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def store_hits(conn: Connection, hits: list[Hit], timeout_ms: int, drops: Counter[DropKey]) -> None:
    """Assign visits to `hits` (processed in timestamp order) and write everything."""
    if hits:
        _lock_visitors(conn, hits)
        visits, pageviews = _load(conn, hits)
        assigner = VisitAssigner(timeout_ms, visits, pageviews)
        # Pageviews first among equal times: a click or beacon of the same ms follows its page.
        for hit in sorted(hits, key=lambda h: (h.timestamp_ms, h.kind != "pageview")):
            reason = assigner.add(hit)
            if reason:
                drops[(hit.site_id, utc_day(hit.timestamp_ms), reason)] += 1
        _write(conn, assigner)
    if drops:
        _count_drops(conn, drops)


def _lock_visitors(conn: Connection, hits: list[Hit]) -> None:
    """PostgreSQL: serialise visit assignment per visitor across collector processes.

    SQLite needs nothing: the writer's BEGIN IMMEDIATE already holds the database's one
    write lock. Locks are taken in sorted order so two batches cannot deadlock.
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({visitor_id ^ hit.site_id for hit in hits for visitor_id in hit.visitor_ids})
    # TRICKY: the sorted subquery makes PostgreSQL take the locks in key order.
    conn.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS ordered"
        ),
        {"keys": keys},
    )


def _load(conn: Connection, hits: list[Hit]) -> tuple[list[VisitState], list[PageviewState]]:
    since = min(h.timestamp_ms for h in hits) - LOOKBACK_MS
    by_site: dict[int, set[int]] = {}
    for hit in hits:
        by_site.setdefault(hit.site_id, set()).update(hit.visitor_ids)
    visits: dict[int, VisitState] = {}
    for site_id, visitor_ids in by_site.items():
        rows = conn.execute(
            select(visits_t).where(
                visits_t.c.site_id == site_id,
                visits_t.c.visitor_id.in_(visitor_ids),
                visits_t.c.last_ms >= since,
            )
        ).mappings()
        for row in rows:
            visits[row["id"]] = VisitState(row=dict(row), id=row["id"])
    pageviews: list[PageviewState] = []
    if visits:
        rows = conn.execute(
            select(
                events_t.c.id,
                events_t.c.visit_id,
                events_t.c.timestamp_ms,
                events_t.c.pageview_id,
                *(events_t.c[name] for name in _PAGEVIEW_COLUMNS),
            ).where(events_t.c.visit_id.in_(list(visits)), events_t.c.kind == "pageview")
        ).mappings()
        for row in rows:
            pageviews.append(
                PageviewState(visit=visits[row["visit_id"]], row=dict(row), is_new=False)
            )
    return list(visits.values()), pageviews


def _write(conn: Connection, assigner: VisitAssigner) -> None:
    if assigner.new_visits:
        ids = (
            conn.execute(
                insert(visits_t).returning(visits_t.c.id, sort_by_parameter_order=True),
                [v.row for v in assigner.new_visits],
            )
            .scalars()
            .all()
        )
        for visit, new_id in zip(assigner.new_visits, ids, strict=True):
            visit.id = new_id
    changed = assigner.changed_visits()
    if changed:
        conn.execute(
            update(visits_t)
            .where(visits_t.c.id == bindparam("visit_id"))
            .values({name: bindparam(name) for name in VISIT_MUTABLE}),
            [{"visit_id": v.id, **{n: v.row[n] for n in VISIT_MUTABLE}} for v in changed],
        )
    pageviews = assigner.changed_pageviews()
    if pageviews:
        conn.execute(
            update(events_t)
            .where(events_t.c.id == bindparam("event_id"))
            .values({name: bindparam(name) for name in _PAGEVIEW_COLUMNS}),
            [
                {"event_id": p.row["id"], **{n: p.row[n] for n in _PAGEVIEW_COLUMNS}}
                for p in pageviews
            ],
        )
    if assigner.new_events:
        rows: list[dict[str, Any]] = []
        for visit, event in assigner.new_events:
            event["visit_id"] = visit.id
            rows.append(event)
        conn.execute(insert(events_t), rows)


def _count_drops(conn: Connection, drops: Counter[DropKey]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(drops_t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[drops_t.c.site_id, drops_t.c.day, drops_t.c.reason],
        set_={"count": drops_t.c.count + stmt.excluded.count},
    )
    conn.execute(
        stmt,
        [{"site_id": s, "day": d, "reason": r, "count": n} for (s, d, r), n in drops.items()],
    )
