"""Store a batch of hits in one transaction: load the visits it touches, assign, write back.

Three reads and a handful of bulk writes per batch, however many events it holds.
`store_transaction` wraps them in one transaction, taking the writers' turn on SQLite; the
spool's writer and its replay both store through it.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Select,
    Table,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from tracker.clock import now_ms
from tracker.db import Database
from tracker.db.models import DropCount, Event, Visit
from tracker.ingest.drops import DAY_MS, DropKey, drop_key
from tracker.storage.changes import change_rows, changes_t
from tracker.storage.visits import VISIT_MUTABLE, Hit, PageviewState, VisitAssigner, VisitState

# How far back a visitor's visits are loaded: the visit timeout, or a day for engagement
# beacons of a tab left open (visitor ids change daily anyway).
LOOKBACK_MS = DAY_MS

visits_t = cast(Table, Visit.__table__)
events_t = cast(Table, Event.__table__)
drops_t = cast(Table, DropCount.__table__)
# What storing writes: analyzed after a bulk load of events (tracker.db.analyze).
STORED_TABLES: tuple[Table, ...] = (visits_t, events_t, drops_t)

# Rows per multi-row statement on SQLite: within its limit of 32,766 bound parameters for
# the widest table (visits, 32 columns).
MAX_ROWS_PER_STATEMENT = 512


def store_hits(
    conn: Connection,
    hits: list[Hit],
    timeout_ms: int,
    drops: Counter[DropKey],
    *,
    lock_visitors: bool = True,
) -> int:
    """Assign visits to `hits` (processed in timestamp order) and write everything; returns
    how many visits they started.

    `lock_visitors=False` is for a writer whose visitor ids no other writer can have (an
    access-log import, under salts of its own): PostgreSQL keeps every advisory lock until
    the transaction ends, and one transaction per imported file would take millions."""
    new_visits = 0
    if hits:
        dbapi = Dbapi.of(conn)
        visits, pageviews, new_ids = _load(dbapi, hits, lock_visitors)
        assigner = VisitAssigner(timeout_ms, visits, pageviews)
        # Pageviews first among equal times: a click or beacon of the same ms follows its page.
        for hit in sorted(hits, key=lambda h: (h.timestamp_ms, h.payload.kind != "pageview")):
            reason = assigner.add(hit)
            if reason:
                drops[drop_key(hit.site_id, hit.timestamp_ms, reason)] += 1
        _write(dbapi, assigner, new_ids)
        new_visits = len(assigner.new_visits)
    if drops:
        _count_drops(conn, drops)
    return new_visits


def _visitor_lock_keys(hits: list[Hit]) -> list[int]:
    """PostgreSQL advisory lock keys that serialise visit assignment per visitor across
    collector processes; sorted, so two batches cannot deadlock. (SQLite needs none: the
    writer's BEGIN IMMEDIATE already holds the database's one write lock.)"""
    return sorted({visitor_id ^ hit.site_id for hit in hits for visitor_id in hit.visitor_ids})


# TRICKY: the sorted subquery makes PostgreSQL take the locks in key order.
_LOCK_VISITORS = (
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT unnest(CAST(%(keys)s AS bigint[])) AS k ORDER BY k) AS ordered"
)
# Ids for new visits, so their events can point at them without a round trip each: a block
# from the sequence (one per event that may start a visit; unused ones are gaps)...
_RESERVE_VISIT_IDS = (
    "SELECT nextval(pg_get_serial_sequence('visits', 'id')) FROM generate_series(1, %(n)s)"
)
# ...or, on SQLite, whose write lock the writer holds, max(id) + 1, + 2...
_MAX_VISIT_ID = "SELECT coalesce(max(id), 0) FROM visits"


@dataclass(frozen=True)
class Dbapi:
    """The DBAPI cursor storing runs on, inside the transaction its SQLAlchemy connection
    began (see Bulk for why statements bypass SQLAlchemy here)."""

    cursor: Any
    dialect: Dialect

    @classmethod
    def of(cls, conn: Connection) -> Dbapi:
        return cls(conn.connection.dbapi_connection.cursor(), conn.dialect)  # type: ignore[union-attr]

    @property
    def is_postgresql(self) -> bool:
        return self.dialect.name == "postgresql"

    def new_cursor(self) -> Any:
        return self.cursor.connection.cursor()

    def pipeline(self) -> AbstractContextManager[Any]:
        """PostgreSQL: the statements inside go in one round trip (psycopg's pipeline mode),
        their results are read after the block. SQLite runs in-process: nothing to batch."""
        return self.cursor.connection.pipeline() if self.is_postgresql else nullcontext()


class Bulk:
    """A Core statement compiled once per dialect, run on the DBAPI cursor with plain rows.

    SQLAlchemy spends tens of microseconds per statement and per row on parameters and
    result handling; at thousands of events per second that was most of the writer's time.
    Statements are still built with Core (so they follow the models); only execution is
    direct, which is safe because every value is a plain int, str, bool or None.

    On SQLite, rows go in multi-row statements (VALUES (...), (...), ...): the sqlite3
    module releases the GIL around every row of an executemany, and under load each of
    those releases made the writer, lock held, wait for the request threads' turn.
    psycopg pipelines executemany, so PostgreSQL keeps it.
    """

    def __init__(self, statement: Any | Callable[[str], Any]) -> None:
        """`statement`, or a function of the dialect's name that builds it."""
        self.build = statement if callable(statement) else lambda _name: statement
        self._compiled: dict[str, tuple[str, list[str] | None]] = {}

    def _for(self, dbapi: Dbapi) -> tuple[str, list[str] | None]:
        name = dbapi.dialect.name
        if name not in self._compiled:
            compiled = self.build(name).compile(dialect=dbapi.dialect)
            order = list(compiled.positiontup) if compiled.positional else None
            self._compiled[name] = (compiled.string, order)
        return self._compiled[name]

    @staticmethod
    def _params(order: list[str] | None, row: dict[str, Any]) -> Any:
        return row if order is None else tuple(row[k] for k in order)

    def run(self, dbapi: Dbapi, rows: list[dict[str, Any]]) -> None:
        sql, order = self._for(dbapi)
        if order is None:
            dbapi.cursor.executemany(sql, rows)
            return
        pick = itemgetter(*order)
        if dbapi.dialect.name != "sqlite":
            dbapi.cursor.executemany(sql, [pick(row) for row in rows])
            return
        one_row = _placeholders(len(order))
        for values, params in _sqlite_value_lists(rows, order):
            dbapi.cursor.execute(sql.replace(one_row, values, 1), params)

    def start(self, dbapi: Dbapi, params: dict[str, Any]) -> Any:
        """Execute on a cursor of its own; read its rows with `rows` (after a pipeline)."""
        sql, order = self._for(dbapi)
        cursor = dbapi.new_cursor()
        cursor.execute(sql, self._params(order, params))
        return cursor

    @staticmethod
    def rows(cursor: Any) -> list[dict[str, Any]]:
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


class PageviewUpdate:
    """Engaged time, scroll and time on page of stored pageviews, by event id.

    SQLite: one UPDATE ... FROM a VALUES list (see Bulk for why); PostgreSQL: executemany.
    """

    COLUMNS = ("engaged_ms", "scroll", "time_on_page_ms")

    def __init__(self) -> None:
        self.bulk = _bulk_update(events_t, "event_id", self.COLUMNS)

    def run(self, dbapi: Dbapi, rows: list[dict[str, Any]]) -> None:
        if dbapi.dialect.name != "sqlite":
            self.bulk.run(dbapi, rows)
            return
        names = ("event_id", *self.COLUMNS)
        table = events_t.name
        assignments = ", ".join(f"{name} = v.{name}" for name in self.COLUMNS)
        for values, params in _sqlite_value_lists(rows, names):
            dbapi.cursor.execute(
                f"WITH v({', '.join(names)}) AS (VALUES {values}) "
                f"UPDATE {table} SET {assignments} FROM v WHERE {table}.id = v.event_id",
                params,
            )


def _placeholders(width: int) -> str:
    return "(" + ", ".join("?" * width) + ")"


def _sqlite_value_lists(
    rows: list[dict[str, Any]], names: Sequence[str]
) -> Iterator[tuple[str, list[Any]]]:
    """Rows as `(?, ...), (?, ...)` and their flat parameters, in statements of 2**k rows.

    The sqlite3 module keeps the last 128 statement texts prepared per connection; with a
    statement per batch length, batches of thousands of rows kept hundreds of megabytes of
    prepared statements. Powers of two give at most 10 lengths per table."""
    pick = itemgetter(*names)
    one_row = _placeholders(len(names))
    start = 0
    while start < len(rows):
        size = min(MAX_ROWS_PER_STATEMENT, 1 << (len(rows) - start).bit_length() - 1)
        chunk = rows[start : start + size]
        start += size
        yield ", ".join([one_row] * size), list(chain.from_iterable(map(pick, chunk)))


def _bulk_insert(table: Table, columns: tuple[str, ...]) -> Bulk:
    return Bulk(insert(table).values({name: bindparam(name) for name in columns}))


def _bulk_update(table: Table, key: str, columns: tuple[str, ...]) -> Bulk:
    return Bulk(
        update(table)
        .where(table.c.id == bindparam(key))
        .values({name: bindparam(name) for name in columns})
    )


def upsert_into(table: Table, dialect_name: str) -> Any:
    """INSERT into table, in the dialect that knows ON CONFLICT."""
    return (postgresql if dialect_name == "postgresql" else sqlite).insert(table)


def _visit_upsert(dialect_name: str) -> Any:
    """New and changed visits in one statement: INSERT ... ON CONFLICT (id) DO UPDATE."""
    stmt = upsert_into(visits_t, dialect_name).values(
        {name: bindparam(name) for name in _VISIT_COLUMNS}
    )
    return stmt.on_conflict_do_update(
        index_elements=[visits_t.c.id],
        set_={name: stmt.excluded[name] for name in VISIT_MUTABLE},
    )


def _change_upsert(dialect_name: str) -> Any:
    """visit_changes rows in, each visit's `changed_ms` moved to its latest change."""
    stmt = upsert_into(changes_t, dialect_name).values(
        {c.name: bindparam(c.name) for c in changes_t.columns}
    )
    return stmt.on_conflict_do_update(
        index_elements=[changes_t.c.visit_id],
        set_={name: stmt.excluded[name] for name in ("started_ms", "changed_ms")},
    )


_VISIT_COLUMNS = tuple(c.name for c in visits_t.columns)
_EVENT_COLUMNS = tuple(c.name for c in events_t.columns if c.name != "id")
UPSERT_VISITS = Bulk(_visit_upsert)
UPSERT_CHANGES = Bulk(_change_upsert)
INSERT_EVENTS = _bulk_insert(events_t, _EVENT_COLUMNS)
UPDATE_PAGEVIEWS = PageviewUpdate()


def _in_id_list(column: Column[Any], name: str, dialect_name: str) -> ColumnElement[bool]:
    """`column IN <the integer list bound as name>`, one statement text for any list length.

    Inlined or expanded lists gave a new statement per batch, and preparing it cost SQLite
    more than running it. PostgreSQL takes a bigint array, SQLite a JSON array.
    """
    if dialect_name == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(BigInteger)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(name))))


def _select_visits(dialect_name: str) -> Select[Any]:
    return select(visits_t).where(
        visits_t.c.site_id == bindparam("site_id"),
        visits_t.c.last_ms >= bindparam("since"),
        _in_id_list(visits_t.c.visitor_id, "visitor_ids", dialect_name),
    )


def _select_pageviews(dialect_name: str) -> Select[Any]:
    return select(
        events_t.c.id,
        events_t.c.visit_id,
        events_t.c.timestamp_ms,
        events_t.c.pageview_id,
        *(events_t.c[name] for name in PageviewUpdate.COLUMNS),
    ).where(
        events_t.c.kind == bindparam("kind"),
        # Through the visits of the batch's visitors, so both reads can go together.
        events_t.c.visit_id.in_(_select_visits(dialect_name).with_only_columns(visits_t.c.id)),
    )


_SELECT_VISITS = Bulk(_select_visits)
_SELECT_PAGEVIEWS = Bulk(_select_pageviews)


def _load(
    dbapi: Dbapi, hits: list[Hit], lock_visitors: bool
) -> tuple[list[VisitState], list[PageviewState], list[int]]:
    """The visits and pageviews the batch may touch, and ids for the visits it may start.

    All reads go in one round trip on PostgreSQL (with the visitor locks first)."""
    since = min(h.timestamp_ms for h in hits) - LOOKBACK_MS
    by_site: dict[int, set[int]] = {}
    for hit in hits:
        by_site.setdefault(hit.site_id, set()).update(hit.visitor_ids)
    may_start = sum(1 for hit in hits if hit.payload.kind != "engagement")
    reads = []
    with dbapi.pipeline():
        if dbapi.is_postgresql:
            if lock_visitors:
                dbapi.new_cursor().execute(_LOCK_VISITORS, {"keys": _visitor_lock_keys(hits)})
            ids_cursor = dbapi.new_cursor()
            ids_cursor.execute(_RESERVE_VISIT_IDS, {"n": may_start})
        else:
            ids_cursor = dbapi.new_cursor()
            ids_cursor.execute(_MAX_VISIT_ID)
        for site_id, visitor_ids in by_site.items():
            params = {
                "site_id": site_id,
                "since": since,
                "visitor_ids": _id_list(dbapi, visitor_ids),
                "kind": "pageview",
            }
            reads.append(
                (_SELECT_VISITS.start(dbapi, params), _SELECT_PAGEVIEWS.start(dbapi, params))
            )
    visits: dict[int, VisitState] = {}
    pageviews: list[PageviewState] = []
    for visits_cursor, pageviews_cursor in reads:
        for row in Bulk.rows(visits_cursor):
            visits[row["id"]] = VisitState(row=row, id=row["id"])
        for row in Bulk.rows(pageviews_cursor):
            pageviews.append(PageviewState(visit=visits[row["visit_id"]], row=row, is_new=False))
    if dbapi.is_postgresql:
        new_ids = [row[0] for row in ids_cursor.fetchall()]
    else:
        # fetchall, not fetchone: a statement left unfinished keeps its read snapshot open.
        start = int(ids_cursor.fetchall()[0][0])
        new_ids = list(range(start + 1, start + 1 + may_start))
    return list(visits.values()), pageviews, new_ids


def _id_list(dbapi: Dbapi, ids: Iterable[int]) -> list[int] | str:
    """The bound value of an _in_id_list parameter."""
    return list(ids) if dbapi.is_postgresql else json.dumps(list(ids))


def _write(dbapi: Dbapi, assigner: VisitAssigner, new_ids: list[int]) -> None:
    # At most one new visit per event that is not engagement: enough ids were drawn.
    for visit, new_id in zip(assigner.new_visits, new_ids, strict=False):
        visit.id = new_id
        visit.row["id"] = new_id
    visits = assigner.new_visits + assigner.changed_visits()
    changed_pageviews = assigner.changed_pageviews()
    pageviews = [
        {"event_id": p.row["id"], **{n: p.row[n] for n in PageviewUpdate.COLUMNS}}
        for p in changed_pageviews
    ]
    changes = change_rows(_touched(visits, changed_pageviews), now_ms())
    events: list[dict[str, Any]] = []
    for visit, event in assigner.new_events:
        event["visit_id"] = visit.id
        if event["props"] is not None:
            event["props"] = json.dumps(event["props"])
        events.append(event)
    with dbapi.pipeline():
        if visits:
            UPSERT_VISITS.run(dbapi, [v.row for v in visits])
        if pageviews:
            UPDATE_PAGEVIEWS.run(dbapi, pageviews)
        if events:
            INSERT_EVENTS.run(dbapi, events)
        if changes:
            UPSERT_CHANGES.run(dbapi, changes)


def _touched(visits: list[VisitState], pageviews: list[PageviewState]) -> list[VisitState]:
    """The visits written and those of the pageviews written, once each (a scroll beacon
    changes a pageview only)."""
    found = {id(v): v for v in visits}
    for pageview in pageviews:
        found.setdefault(id(pageview.visit), pageview.visit)
    return list(found.values())


def _count_drops(conn: Connection, drops: Counter[DropKey]) -> None:
    stmt = upsert_into(drops_t, conn.dialect.name)
    stmt = stmt.on_conflict_do_update(
        index_elements=[drops_t.c.site_id, drops_t.c.day, drops_t.c.reason],
        set_={"count": drops_t.c.count + stmt.excluded.count},
    )
    conn.execute(
        stmt,
        [{"site_id": s, "day": d, "reason": r, "count": n} for (s, d, r), n in drops.items()],
    )


def merge_batches(
    batches: Iterable[tuple[list[Hit], Counter[DropKey]]],
) -> tuple[list[Hit], Counter[DropKey]]:
    """Several batches' hits and drop counts as one batch."""
    hits: list[Hit] = []
    drops: Counter[DropKey] = Counter()
    for batch_hits, batch_drops in batches:
        hits += batch_hits
        drops.update(batch_drops)
    return hits, drops


def store_transaction(
    db: Database,
    conn: Connection,
    lock: WriterFileLock,
    hits: list[Hit],
    drops: Counter[DropKey],
    timeout_ms: int,
    claim: Callable[[Connection], bool] | None = None,
) -> bool:
    """Store hits and drop counts in one transaction, taking the writers' turn on SQLite.

    `claim`, run first inside the transaction, may decline it (returns False): then
    nothing is stored and False is returned.
    """
    with lock:
        if db.is_sqlite:
            # Take the write lock before reading visits, so no other process changes them.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
        try:
            if claim is not None and not claim(conn):
                conn.rollback()
                return False
            store_hits(conn, hits, timeout_ms, drops)
            conn.commit()
            return True
        except BaseException:
            conn.rollback()  # release the database lock before the next process's turn
            raise


class WriterFileLock:
    """Takes turns between the writers of several processes on one SQLite file.

    SQLite's own busy handler polls with sleeps of up to 100 ms, so two gunicorn workers
    contending for the write lock would mostly sleep; a blocking flock() wakes the next
    writer the moment the previous one commits. PostgreSQL needs none of this.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_database(cls, db: Database) -> WriterFileLock:
        database = db.engine.url.database
        if db.is_sqlite and database and database != ":memory:":
            return cls(database + ".writer-lock")
        return cls(None)

    def __enter__(self) -> None:
        if self.path is None:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
