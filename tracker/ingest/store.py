"""Store a batch of hits in one transaction: load the visits it touches, assign, write back.

Three reads and a handful of bulk writes per batch, however many events it holds. The
caller (the group-commit writer) owns the connection and the transaction.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Table, bindparam, insert, select, text, update
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
    return _day(ms // DAY_MS)


@lru_cache(maxsize=64)
def _day(days_since_epoch: int) -> date:
    return date(1970, 1, 1) + timedelta(days=days_since_epoch)


def store_hits(conn: Connection, hits: list[Hit], timeout_ms: int, drops: Counter[DropKey]) -> None:
    """Assign visits to `hits` (processed in timestamp order) and write everything."""
    if hits:
        _lock_visitors(conn, hits)
        raw = Raw.of(conn)
        visits, pageviews = _load(raw, hits)
        assigner = VisitAssigner(timeout_ms, visits, pageviews)
        # Pageviews first among equal times: a click or beacon of the same ms follows its page.
        for hit in sorted(hits, key=lambda h: (h.timestamp_ms, h.kind != "pageview")):
            reason = assigner.add(hit)
            if reason:
                drops[(hit.site_id, utc_day(hit.timestamp_ms), reason)] += 1
        _write(raw, assigner)
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


@dataclass(frozen=True)
class Raw:
    """The writer's DBAPI cursor, inside the transaction its SQLAlchemy connection began."""

    cursor: Any
    dialect: Dialect

    @classmethod
    def of(cls, conn: Connection) -> Raw:
        return cls(conn.connection.dbapi_connection.cursor(), conn.dialect)  # type: ignore[union-attr]


class Bulk:
    """A Core statement compiled once per dialect, run on the DBAPI cursor with plain rows.

    SQLAlchemy spends tens of microseconds per statement and per row on parameters and
    result handling; at thousands of events per second that was most of the writer's time.
    Statements are still built with Core (so they follow the models); only execution is
    direct, which is safe because every value is a plain int, str, bool or None.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, list[str] | None]] = {}

    def _for(self, raw: Raw) -> tuple[str, list[str] | None]:
        name = raw.dialect.name
        if name not in self._compiled:
            compiled = self.statement.compile(dialect=raw.dialect)
            order = list(compiled.positiontup) if compiled.positional else None
            self._compiled[name] = (compiled.string, order)
        return self._compiled[name]

    @staticmethod
    def _params(order: list[str] | None, row: dict[str, Any]) -> Any:
        return row if order is None else tuple(row[k] for k in order)

    def run(self, raw: Raw, rows: list[dict[str, Any]]) -> None:
        sql, order = self._for(raw)
        if order is None:
            raw.cursor.executemany(sql, rows)
        else:
            pick = itemgetter(*order)
            raw.cursor.executemany(sql, [pick(row) for row in rows])

    def query(self, raw: Raw, row: dict[str, Any], and_where: str) -> list[dict[str, Any]]:
        """Run a SELECT with one more condition appended to its WHERE clause."""
        sql, order = self._for(raw)
        raw.cursor.execute(f"{sql} AND {and_where}", self._params(order, row))
        names = [column[0] for column in raw.cursor.description]
        return [dict(zip(names, values, strict=True)) for values in raw.cursor.fetchall()]


def _bulk_insert(table: Table, columns: tuple[str, ...]) -> Bulk:
    return Bulk(insert(table).values({name: bindparam(name) for name in columns}))


def _bulk_update(table: Table, key: str, columns: tuple[str, ...]) -> Bulk:
    return Bulk(
        update(table)
        .where(table.c.id == bindparam(key))
        .values({name: bindparam(name) for name in columns})
    )


_VISIT_COLUMNS = tuple(c.name for c in visits_t.columns)
_EVENT_COLUMNS = tuple(c.name for c in events_t.columns if c.name != "id")
INSERT_VISITS = _bulk_insert(visits_t, _VISIT_COLUMNS)
INSERT_EVENTS = _bulk_insert(events_t, _EVENT_COLUMNS)
UPDATE_VISITS = _bulk_update(visits_t, "visit_id", VISIT_MUTABLE)
UPDATE_PAGEVIEWS = _bulk_update(events_t, "event_id", _PAGEVIEW_COLUMNS)


_SELECT_VISITS = Bulk(
    select(visits_t).where(
        visits_t.c.site_id == bindparam("site_id"), visits_t.c.last_ms >= bindparam("since")
    )
)
_SELECT_PAGEVIEWS = Bulk(
    select(
        events_t.c.id,
        events_t.c.visit_id,
        events_t.c.timestamp_ms,
        events_t.c.pageview_id,
        *(events_t.c[name] for name in _PAGEVIEW_COLUMNS),
    ).where(events_t.c.kind == bindparam("kind"))
)


def _load(raw: Raw, hits: list[Hit]) -> tuple[list[VisitState], list[PageviewState]]:
    since = min(h.timestamp_ms for h in hits) - LOOKBACK_MS
    by_site: dict[int, set[int]] = {}
    for hit in hits:
        by_site.setdefault(hit.site_id, set()).update(hit.visitor_ids)
    visits: dict[int, VisitState] = {}
    for site_id, visitor_ids in by_site.items():
        params = {"site_id": site_id, "since": since}
        for row in _SELECT_VISITS.query(raw, params, _int_list("visitor_id", visitor_ids)):
            visits[row["id"]] = VisitState(row=row, id=row["id"])
    pageviews: list[PageviewState] = []
    if visits:
        rows = _SELECT_PAGEVIEWS.query(raw, {"kind": "pageview"}, _int_list("visit_id", visits))
        for row in rows:
            pageviews.append(PageviewState(visit=visits[row["visit_id"]], row=row, is_new=False))
    return list(visits.values()), pageviews


def _int_list(column: str, values: Iterable[int]) -> str:
    """An inlined IN list (our own integers): bound lists would compile per list length."""
    return f"{column} IN ({','.join(str(int(v)) for v in values)})"


def _allocate_visit_ids(raw: Raw, count: int) -> list[int]:
    """Ids for new visits, so their events can point at them without a round trip each.

    SQLite: the writer holds the database's write lock, so max(id) + 1... is ours alone.
    PostgreSQL: the table's sequence hands out a block.
    """
    if raw.dialect.name == "postgresql":
        raw.cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('visits', 'id')) FROM generate_series(1, %(n)s)",
            {"n": count},
        )
        return [row[0] for row in raw.cursor.fetchall()]
    raw.cursor.execute("SELECT coalesce(max(id), 0) FROM visits")
    start = int(raw.cursor.fetchone()[0])
    return list(range(start + 1, start + 1 + count))


def _write(raw: Raw, assigner: VisitAssigner) -> None:
    if assigner.new_visits:
        ids = _allocate_visit_ids(raw, len(assigner.new_visits))
        for visit, new_id in zip(assigner.new_visits, ids, strict=True):
            visit.id = new_id
            visit.row["id"] = new_id
        INSERT_VISITS.run(raw, [v.row for v in assigner.new_visits])
    changed = assigner.changed_visits()
    if changed:
        UPDATE_VISITS.run(
            raw, [{"visit_id": v.id, **{n: v.row[n] for n in VISIT_MUTABLE}} for v in changed]
        )
    pageviews = assigner.changed_pageviews()
    if pageviews:
        UPDATE_PAGEVIEWS.run(
            raw,
            [
                {"event_id": p.row["id"], **{n: p.row[n] for n in _PAGEVIEW_COLUMNS}}
                for p in pageviews
            ],
        )
    if assigner.new_events:
        rows: list[dict[str, Any]] = []
        for visit, event in assigner.new_events:
            event["visit_id"] = visit.id
            if event["props"] is not None:
                event["props"] = json.dumps(event["props"])
            rows.append(event)
        INSERT_EVENTS.run(raw, rows)


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
