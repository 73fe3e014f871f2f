"""Rollups: the per-bucket rows of every one-dimension report, kept per local day.

Raw queries over a month of events take seconds; the stats page must take milliseconds.
So for each site, local day, rollup dimension (and "" for the total) and value, the
additive parts are stored in `stats_rollups`. They are written by the compiler's own raw
query (INSERT ... SELECT of `raw_buckets`), so a rollup row is by construction what the
raw path computes; `bucket_source` reads them back for the days they cover and reads raw
rows for the rest, and the outer query sums both the same way.

Freshness: `refresh` rebuilds, for each site, every day from the last one it built (or
the earliest day touched by events stored since) through today. The `stats_rollups` job
runs it every minute; in between, rolled-up days (today included) can lag by that much.
A site whose time zone changed is rebuilt from scratch.
"""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta
from typing import cast

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    CompoundSelect,
    Connection,
    MetaData,
    Select,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.types import NullType

from tracker.db import Database
from tracker.db.models import Event, Site, StatsRollup, StatsRollupState, Visit
from tracker.stats.compiler import (
    Plan,
    bucket_expr,
    dim_key,
    event_facts,
    group_facts,
    raw_buckets,
)
from tracker.stats.dimensions import DIMENSIONS, ROLLUP_KEYS
from tracker.stats.filters import compile_filters
from tracker.stats.metrics import PARTS
from tracker.stats.periods import (
    day_from_number,
    day_number,
    local_date,
    local_midnight_ms,
    make_period,
)
from tracker.stats.query import Query, SiteRef

log = logging.getLogger(__name__)

rollup_table = cast(Table, StatsRollup.__table__)
state_table = cast(Table, StatsRollupState.__table__)
events = Event.__table__
visits = Visit.__table__

# Days rebuilt per transaction: short write transactions keep SQLite's single writer free.
CHUNK_DAYS = 7
LOCK_NAMESPACE = 0x5741_0000_0000
# A rollup row's dimension values, in the order of its key's dimensions.
VALUE_COLUMNS = ("value", "value2")
# Per process: when each site may be rebuilt again (see `refresh`).
THROTTLE = 10
_next_due: dict[int, float] = {}
# Event ids are not committed in order on PostgreSQL; re-checking the last ones is cheap.
ID_MARGIN = 10_000


def rollup_key(query: Query) -> tuple[str, ...] | None:
    """The rollup key holding exactly the dimensions a query groups and filters by.

    Exactly: visitors do not add up across the values of a dimension left out.
    """
    if query.time_dimension == "time:hour":
        return None
    names = {d for d in query.dimensions if not DIMENSIONS[d].is_time}
    names |= {f.dimension for f in query.filters}
    return next((key for key in ROLLUP_KEYS if set(key) == names), None)


def covered_until(conn: Connection, site: SiteRef) -> int | None:
    """The last local day the site's rollups cover (every day before it too), or None.

    Days before the site's first visit are covered: there was nothing to roll up. Events
    stored later for a covered day are picked up by the next refresh.
    """
    row = conn.execute(
        select(state_table.c.last_day, state_table.c.timezone).where(
            state_table.c.site_id == site.id
        )
    ).first()
    if row is None or row.timezone != site.timezone:
        return None
    return int(row.last_day)


def bucket_source(
    conn: Connection,
    query: Query,
    plan: Plan,
    extra: ColumnElement[bool] | None = None,
    *,
    rollups: bool = True,
) -> tuple[Select | CompoundSelect, str]:
    """Per-bucket rows for the query: rollups where they cover it, raw rows elsewhere.

    Returns the statement and which path answered: "rollup", "raw" or "mixed".
    """
    period = query.period
    whole = [(period.start_ms, period.end_ms)]
    key = rollup_key(query) if rollups and extra is None else None
    last = covered_until(conn, query.site) if key is not None else None
    lo, hi = day_number(period.start), min(day_number(period.end), last if last is not None else -1)
    if key is None or lo > hi:
        return raw_buckets(query, plan, whole, extra), "raw"
    rolled = _rollup_rows(query, plan, key, lo, hi)
    if hi == day_number(period.end):
        return rolled, "rollup"
    rest = [
        (local_midnight_ms(day_from_number(hi) + timedelta(days=1), query.site.tz), period.end_ms)
    ]
    return union_all(rolled, raw_buckets(query, plan, rest)), "mixed"


def _rollup_rows(query: Query, plan: Plan, key: tuple[str, ...], lo: int, hi: int) -> Select:
    def column(name: str) -> ColumnElement:
        return rollup_table.c[VALUE_COLUMNS[key.index(name)]]

    where = [
        rollup_table.c.site_id == query.site.id,
        rollup_table.c.dimension == ",".join(key),
        rollup_table.c.day >= lo,
        rollup_table.c.day <= hi,
    ]
    flt = compile_filters(query.filters, column)
    if flt is not None:
        where.append(flt)
    dims = [column(d).label(dim_key(i)) for i, d in enumerate(plan.dims)]
    columns = [*dims, rollup_table.c.day.label("bucket"), *(rollup_table.c[p] for p in plan.parts)]
    return select(*columns).where(*where)


def first_visit_ms(conn: Connection, site: SiteRef) -> int | None:
    return conn.scalar(select(func.min(visits.c.started_ms)).where(visits.c.site_id == site.id))


def _dirty_day(conn: Connection, site: SiteRef, after_id: int) -> int | None:
    """The earliest visit day touched by events stored after `after_id` (None: none)."""
    first = conn.scalar(
        select(func.min(visits.c.started_ms))
        .select_from(events.join(visits, events.c.visit_id == visits.c.id))
        .where(events.c.id > after_id, events.c.site_id == site.id)
    )
    return None if first is None else day_number(local_date(first, site.tz))


def _temp_table(conn: Connection, name: str, stmt: Select) -> Table:
    """Materialize `stmt` into a temporary table (dropped by the caller)."""
    columns = [
        Column(c.key, BigInteger if isinstance(c.type, NullType) else c.type)
        for c in stmt.selected_columns
    ]
    table = Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])
    table.create(conn)
    conn.execute(insert(table).from_select([c.name for c in columns], stmt))
    return table


def _insert_days(conn: Connection, site: SiteRef, start: date, end: date) -> None:
    """Rebuild the rollup rows of days `start`..`end` with the compiler's own pieces.

    # TRICKY: the chunk's visits, and their per-visit event facts, are copied to temporary
    tables once; each of the ~20 visit dimensions then groups the small copy instead of
    joining the big tables again. Event dimensions join events to the visits' copy.
    """
    period = make_period("custom", start, end, site.tz)
    if conn.dialect.name == "postgresql":
        # Two servers refreshing the same site at once: the second waits, then its DELETE
        # sees the first one's rows (READ COMMITTED), so no day is ever counted twice.
        conn.execute(select(func.pg_advisory_xact_lock(LOCK_NAMESPACE + site.id)))
    conn.execute(
        delete(rollup_table).where(
            rollup_table.c.site_id == site.id,
            rollup_table.c.day >= day_number(start),
            rollup_table.c.day <= day_number(end),
        )
    )
    query = Query(site=site, period=period)
    bucket = bucket_expr(visits.c.started_ms, Plan((), PARTS, "day"), query)
    visit_dims = [d for d in DIMENSIONS.values() if d.scope == "visit"]
    copied = select(
        visits.c.id,
        visits.c.visitor_id,
        visits.c.is_bounce,
        visits.c.duration_ms,
        visits.c.pageviews,
        bucket.label("bucket"),
        *(visits.c[d.column] for d in visit_dims),
    ).where(visits.c.site_id == site.id, visits.c.started_ms >= period.start_ms)
    chunk = _temp_table(conn, "rollup_visits", copied.where(visits.c.started_ms < period.end_ms))
    facts = _temp_table(
        conn,
        "rollup_facts",
        event_facts(query, chunk, chunk.c.bucket, [chunk.c[d.column] for d in visit_dims]),
    )
    visit_keys = {d.name: facts.c[dim_key(i)] for i, d in enumerate(visit_dims)}
    columns = ["site_id", "day", "dimension", *VALUE_COLUMNS, *PARTS]
    for key in ROLLUP_KEYS:
        if all(name in visit_keys for name in key):
            rows = group_facts(facts, [visit_keys[name] for name in key], PARTS).subquery()
        else:
            key_query = Query(site=site, period=period, dimensions=key)
            key_columns = [
                (events if DIMENSIONS[name].is_event else chunk).c[DIMENSIONS[name].column]
                for name in key
            ]
            per_visit = event_facts(key_query, chunk, chunk.c.bucket, key_columns).subquery()
            per_key = [per_visit.c[dim_key(i)] for i in range(len(key))]
            rows = group_facts(per_visit, per_key, PARTS).subquery()
        values = [rows.c[dim_key(i)] for i in range(len(key))]
        values += [literal("")] * (len(VALUE_COLUMNS) - len(key))
        source = select(
            literal(site.id),
            rows.c.bucket,
            literal(",".join(key)),
            *values,
            *(rows.c[p] for p in PARTS),
        )
        conn.execute(insert(rollup_table).from_select(columns, source))
    facts.drop(conn)
    chunk.drop(conn)


def _save_state(conn: Connection, site: SiteRef, **values: int) -> None:
    values = {**values, "timezone": site.timezone}  # type: ignore[dict-item]
    updated = conn.execute(
        state_table.update().where(state_table.c.site_id == site.id).values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(insert(state_table).values(site_id=site.id, **values))


def refresh_site(
    db: Database, site: SiteRef, *, now_ms: int | None = None, full: bool = False
) -> tuple[date, date] | None:
    """Bring one site's rollups up to date; returns the days rebuilt (None: nothing to do)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    today = day_number(local_date(now_ms, site.tz))
    with db.engine.connect() as conn:
        max_id = conn.scalar(select(func.max(events.c.id))) or 0
        state = conn.execute(select(state_table).where(state_table.c.site_id == site.id)).first()
        if full or state is None or state.timezone != site.timezone:
            first_ms = first_visit_ms(conn, site)
            start = None if first_ms is None else day_number(local_date(first_ms, site.tz))
            fresh, last_id = True, 0
        elif max_id == state.last_event_id and state.last_day == today:
            return None  # not one event stored anywhere since the last build
        else:
            dirty = _dirty_day(conn, site, state.last_event_id - ID_MARGIN)
            start = min(d for d in (state.last_day, dirty) if d is not None)
            fresh, last_id = False, state.last_event_id
    if start is None:
        return None
    start = min(start, today)
    if fresh:
        with db.engine.begin() as conn:
            conn.execute(delete(rollup_table).where(rollup_table.c.site_id == site.id))
            conn.execute(delete(state_table).where(state_table.c.site_id == site.id))
    for chunk_start in range(start, today + 1, CHUNK_DAYS):
        chunk_end = min(chunk_start + CHUNK_DAYS - 1, today)
        final = chunk_end == today
        with db.engine.begin() as conn:
            _insert_days(conn, site, day_from_number(chunk_start), day_from_number(chunk_end))
            _save_state(
                conn,
                site,
                last_day=chunk_end,
                last_event_id=max_id if final else last_id,
                built_ms=now_ms,
            )
    return day_from_number(start), day_from_number(today)


def refresh(db: Database, *, now_ms: int | None = None, full: bool = False) -> int:
    """Refresh every site's rollups; returns how many sites were rebuilt.

    A site whose last rebuild took d seconds waits THROTTLE * d before the next one, so a
    very busy site costs at most ~1/THROTTLE of a core however often the job runs.
    """
    with db.engine.connect() as conn:
        sites = [
            SiteRef(id=r.id, domain=r.domain, timezone=r.timezone)
            for r in conn.execute(select(Site.id, Site.domain, Site.timezone))
        ]
    done = 0
    for site in sites:
        began = time.monotonic()
        if not full and _next_due.get(site.id, 0.0) > began:
            continue
        try:
            done += refresh_site(db, site, now_ms=now_ms, full=full) is not None
        except Exception:  # noqa: BLE001 - one site's failure must not stop the others
            log.exception("rollup refresh failed for %s", site.domain)
        ended = time.monotonic()
        _next_due[site.id] = ended + THROTTLE * (ended - began)
    return done
