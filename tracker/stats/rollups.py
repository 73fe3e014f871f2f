"""Rollups: the per-bucket rows of every one-dimension report, kept per local day.

Raw queries over a month of events take seconds; the stats page must take milliseconds.
So for each site, local day, rollup dimension (and "" for the total) and value, the
additive parts are stored in `stats_rollups`. They are written by the compiler's own raw
query (INSERT ... SELECT of `raw_buckets`), so a rollup row is by construction what the
raw path computes; `bucket_source` reads them back for the days they cover and reads raw
rows for the rest, and the outer query sums both the same way.

Filtered views: for each day's TOP_VALUES values of the common filter dimensions
(FILTER_DIMENSIONS: source, channel, campaign, country, page...), the keys of the page's
reports are also kept over that value's visits alone (`filter_dim`, `filter_value`). A
query filtering on one such value reads them for the days they were kept and raw rows for
the days its value was not among the top; any other filter reads raw rows.

Freshness: `refresh` rebuilds, for each site, every day from the last one it built (or
the earliest day touched by events stored since) through today, skipping the days with
neither visits nor rows (there is nothing to write: the cost follows the data, not the
calendar). The `stats_rollups` job runs it every minute; in between, rolled-up days (today
included) can lag by that much. A site whose time zone changed is rebuilt from scratch.
A refresh that rebuilt a week of days or more (a first build, an import of past events)
ends with ANALYZE of the tables it wrote, on PostgreSQL (tracker.db.statistics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    CompoundSelect,
    Connection,
    FromClause,
    MetaData,
    Select,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.types import NullType

from tracker.db import Database, analyze
from tracker.db.models import Event, Site, StatsRollup, Visit
from tracker.stats import hits
from tracker.stats.compiler import (
    Plan,
    bucket_expr,
    dim_key,
    event_facts,
    group_facts,
    raw_buckets,
)
from tracker.stats.coverage import covered_until, first_visit_ms, lock_site_writes, state_table
from tracker.stats.dimensions import DIMENSIONS, FILTER_DIMENSIONS, FILTERED_KEYS, ROLLUP_KEYS
from tracker.stats.filters import Filter, compile_filters
from tracker.stats.goals import load_goals
from tracker.stats.metrics import ROLLUP_PARTS
from tracker.stats.periods import (
    day_from_number,
    day_number,
    local_date,
    local_midnight_ms,
    make_period,
)
from tracker.stats.query import GoalSpec, Query, SiteRef

log = logging.getLogger(__name__)

rollup_table = cast(Table, StatsRollup.__table__)
events = Event.__table__
visits = Visit.__table__

# Days computed at once (temporary tables hold a chunk's visits and facts).
CHUNK_DAYS = 7
# Values of each filter dimension kept per day: a report card shows ten rows to click.
TOP_VALUES = 10
# A rollup row's dimension values, in the order of its key's dimensions.
VALUE_COLUMNS = ("value", "value2")
# Per process: when each site of each database may be rebuilt again (see `refresh`).
THROTTLE = 10
_next_due: dict[tuple[str, int], float] = {}
# Event ids are not committed in order on PostgreSQL; re-checking the last ones is cheap.
ID_MARGIN = 10_000
# A refresh whose new data spans this many days or more (through today) analyzes the
# tables it wrote (PostgreSQL).
ANALYZE_AFTER_DAYS = CHUNK_DAYS


@dataclass(frozen=True)
class RollupKey:
    """Which rollup rows answer a query: their dimensions, and the filter dimension whose
    single value they were kept for ("": rows over all visits)."""

    dims: tuple[str, ...]
    filter: str = ""


def _adds_up(flt: Filter, parts: tuple[str, ...]) -> bool:
    """Whether rows of the values `flt` keeps can be summed, when the query does not group
    by its dimension: one value always; several only for a visit dimension (each visit has
    one value) and parts other than visitors (a visitor may have visits with several)."""
    if flt.op == "is" and len(flt.values) == 1:
        return True
    return not DIMENSIONS[flt.dimension].is_event and "visitors" not in parts


def rollup_key(query: Query, parts: tuple[str, ...]) -> RollupKey | None:
    """The rollup rows holding exactly the dimensions a query groups and filters by.

    Exactly: the query sums rows over the values of each dimension it filters on but does
    not group by, which only some filters allow (`_adds_up`).
    """
    if query.time_dimension == "time:hour" or not set(parts) <= set(ROLLUP_PARTS):
        return None
    grouped = {d for d in query.dimensions if not DIMENSIONS[d].is_time}
    loose = [f for f in query.filters if f.dimension not in grouped]
    if not all(_adds_up(f, parts) for f in loose):
        return None
    names = grouped | {f.dimension for f in query.filters}
    for key in ROLLUP_KEYS:
        if set(key) == names:
            return RollupKey(key)
    for flt in loose:
        if flt.dimension in FILTER_DIMENSIONS and flt.op == "is" and len(flt.values) == 1:
            rest = names - {flt.dimension}
            for key in FILTERED_KEYS:
                if set(key) == rest:
                    return RollupKey(key, flt.dimension)
    return None


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
    key = rollup_key(query, plan.parts) if rollups and extra is None else None
    last = covered_until(conn, query.site) if key is not None else None
    lo, hi = day_number(period.start), min(_last_whole_day(query), last if last is not None else -1)
    if key is None or lo > hi:
        return raw_buckets(query, plan, [(period.start_ms, period.end_ms)], extra), "raw"
    rolled = _rollup_rows(query, plan, key, lo, hi)
    raw_days = _days_not_kept(conn, query, key, lo, hi)
    raw_days += range(hi + 1, day_number(period.end) + 1)
    if not raw_days:
        return rolled, "rollup"
    first, last = raw_days[0], raw_days[-1]
    span = (
        local_midnight_ms(day_from_number(first), query.site.tz),
        min(local_midnight_ms(day_from_number(last) + timedelta(days=1), query.site.tz),
            period.end_ms),
    )  # fmt: skip
    # One range the visits index can scan, narrowed to the days (several ranges OR-ed
    # together make SQLite give up that index).
    days = None
    if len(raw_days) <= last - first:
        days = bucket_expr(visits.c.started_ms, plan, query).in_(raw_days)
    return union_all(rolled, raw_buckets(query, plan, [span], days)), "mixed"


def _last_whole_day(query: Query) -> int:
    """The period's last day rollups may answer for: not one cut short (a comparison up to
    the same time). Nor today alone: its rollup lags the collector by up to a minute, and
    "Visitors 1" beside "4 current visitors" (read from raw events) would contradict itself;
    one day of raw rows costs little, and longer periods dwarf the lag."""
    period = query.period
    last = day_number(period.end) - period.cut
    today = day_number(local_date(int(time.time() * 1000), query.site.tz))
    return last - 1 if period.days == 1 and last == today else last


def _days_not_kept(conn: Connection, query: Query, key: RollupKey, lo: int, hi: int) -> list[int]:
    """Days lo..hi that have visits of the key's filter value but no rows kept for it (it
    was not among that day's top values): the raw rows answer for those days."""
    if not key.filter:
        return []
    flt = query.filter_for(key.filter)
    assert flt is not None
    value = flt.values[0]
    c = rollup_table.c

    def days(*where: ColumnElement[bool]) -> set[int]:
        stmt = select(c.day).where(c.site_id == query.site.id, c.day >= lo, c.day <= hi, *where)
        return set(conn.scalars(stmt))

    seen = days(
        c.filter_dim == "", c.filter_value == "", c.dimension == key.filter, c.value == value
    )
    kept = days(c.filter_dim == key.filter, c.filter_value == value, c.dimension == "")
    return sorted(seen - kept)


def _rollup_rows(query: Query, plan: Plan, key: RollupKey, lo: int, hi: int) -> Select:
    def column(name: str) -> ColumnElement:
        if name == key.filter:
            return rollup_table.c.filter_value
        return rollup_table.c[VALUE_COLUMNS[key.dims.index(name)]]

    where = [
        rollup_table.c.site_id == query.site.id,
        rollup_table.c.filter_dim == key.filter,
        rollup_table.c.dimension == ",".join(key.dims),
        rollup_table.c.day >= lo,
        rollup_table.c.day <= hi,
    ]
    if not key.filter:
        where.append(rollup_table.c.filter_value == "")
    flt = compile_filters(query.filters, column)
    if flt is not None:
        where.append(flt)
    dims = [column(d).label(dim_key(i)) for i, d in enumerate(plan.dims)]
    columns = [*dims, rollup_table.c.day.label("bucket"), *(rollup_table.c[p] for p in plan.parts)]
    return select(*columns).where(*where)


def _dirty_day(conn: Connection, site: SiteRef, after_id: int) -> int | None:
    """The earliest visit day touched by events stored after `after_id` (None: none)."""
    first = conn.scalar(
        select(func.min(visits.c.started_ms))
        .select_from(events.join(visits, events.c.visit_id == visits.c.id))
        .where(events.c.id > after_id, events.c.site_id == site.id)
    )
    return None if first is None else day_number(local_date(first, site.tz))


def _next_busy_day(conn: Connection, site: SiteRef, day: int, today: int) -> int | None:
    """The first day from `day` through `today` with visits, or with rows of an earlier
    build (to replace, or to delete when their visits moved to another day); None if none.

    The refresh skips the days between: rebuilding an empty day writes nothing, so its cost
    follows the data, not the calendar (a visit decades old costs one chunk, not a build of
    every day since). Each lookup is one index seek.
    """
    since = local_midnight_ms(day_from_number(day), site.tz)
    first_ms = conn.scalar(
        select(func.min(visits.c.started_ms)).where(
            visits.c.site_id == site.id, visits.c.started_ms >= since
        )
    )
    c = rollup_table.c
    # Every day with rollup rows has its total row (dimension "", over all visits).
    rolled = conn.scalar(
        select(func.min(c.day)).where(
            c.site_id == site.id,
            c.filter_dim == "",
            c.filter_value == "",
            c.dimension == "",
            c.day >= day,
        )
    )
    busy = [
        None if first_ms is None else day_number(local_date(first_ms, site.tz)),
        rolled,
        hits.first_day(conn, site, day),
    ]
    first = min((d for d in busy if d is not None), default=None)
    return first if first is not None and first <= today else None


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


class _Build:
    """The rollup rows of days `start`..`end`, computed into the temporary table `rows`
    with the compiler's own pieces; only temporary tables are written, so on SQLite the
    database's write lock stays free meanwhile (see `refresh_site`).

    # TRICKY: the chunk's visits, and their per-visit event facts, are copied to temporary
    tables once (per visit, and per visit and value of each event dimension, every visit
    dimension riding along); each of the ~200 keys then groups a small copy instead of
    joining the big tables again. Only keys of two event dimensions join events again.
    """

    def __init__(
        self,
        conn: Connection,
        site: SiteRef,
        start: date,
        end: date,
        goals: Sequence[GoalSpec] = (),
    ) -> None:
        self.conn, self.site, self.goals = conn, site, goals
        self.period = make_period("custom", start, end, site.tz)
        query = Query(site=site, period=self.period)
        bucket = bucket_expr(visits.c.started_ms, Plan((), ROLLUP_PARTS, "day"), query)
        self.visit_dims = [d.name for d in DIMENSIONS.values() if d.scope == "visit"]
        copied = select(
            visits.c.id,
            visits.c.visitor_id,
            visits.c.is_bounce,
            visits.c.duration_ms,
            visits.c.pageviews,
            visits.c.started_ms,
            bucket.label("bucket"),
            *(visits.c[DIMENSIONS[d].column] for d in self.visit_dims),
        ).where(
            visits.c.site_id == site.id,
            visits.c.started_ms >= self.period.start_ms,
            visits.c.started_ms < self.period.end_ms,
        )
        self.temps: list[Table] = []
        self.chunk = self._temp("rollup_visits", copied)
        self.hits = hits.new_table(conn, "rollup_hits")
        self.temps.append(self.hits)
        hits.compute(conn, site, goals, self.chunk, self.hits)
        self.facts: dict[str, Table] = {}
        columns = [c for c in rollup_table.c if c.name != "id"]
        self.rows = Table(
            "rollup_rows",
            MetaData(),
            *(Column(c.name, c.type) for c in columns),
            prefixes=["TEMPORARY"],
        )
        self.rows.create(conn)
        self.temps.append(self.rows)
        for key in ROLLUP_KEYS:
            self._insert(key)
        top = self._temp("rollup_top", self._top_values())
        for name in FILTER_DIMENSIONS:
            for key in FILTERED_KEYS:
                if name not in key:
                    self._insert(key, name, top)

    def _temp(self, name: str, stmt: Select) -> Table:
        table = _temp_table(self.conn, name, stmt)
        self.temps.append(table)
        return table

    def _column(self, name: str) -> ColumnElement:
        dim = DIMENSIONS[name]
        return (events if dim.is_event else self.chunk).c[dim.column]

    def _facts(self, names: tuple[str, ...]) -> tuple[FromClause, list[ColumnElement]]:
        """Per-visit facts (see `event_facts`) carrying `names`, and those names' columns."""
        event_names = tuple(n for n in names if DIMENSIONS[n].is_event)
        if len(event_names) > 1:
            query = Query(site=self.site, period=self.period, dimensions=names)
            cols = [self._column(n) for n in names]
            sub = event_facts(query, self.chunk, self.chunk.c.bucket, cols).subquery()
            return sub, [sub.c[dim_key(i)] for i in range(len(names))]
        lead = event_names[0] if event_names else ""
        order = [*event_names, *self.visit_dims]
        if lead not in self.facts:
            lead_query = Query(site=self.site, period=self.period, dimensions=event_names)
            cols = [self._column(n) for n in order]
            stmt = event_facts(lead_query, self.chunk, self.chunk.c.bucket, cols)
            self.facts[lead] = self._temp(f"rollup_facts{len(self.facts)}", stmt)
        table = self.facts[lead]
        return table, [table.c[dim_key(order.index(n))] for n in names]

    def _top_values(self) -> Select:
        """Each filter dimension's TOP_VALUES values of each day, by visits (ties by value):
        the ones kept per filter value. Empty values are left out (no report links them)."""
        r = self.rows.c
        rank = func.row_number().over(
            partition_by=(r.dimension, r.day), order_by=(r.visits.desc(), r.value)
        )
        ranked = (
            select(r.dimension, r.day, r.value, rank.label("rank"))
            .where(r.filter_dim == "", r.dimension.in_(FILTER_DIMENSIONS), r.value != "")
            .subquery()
        )
        return select(ranked.c.dimension, ranked.c.day, ranked.c.value).where(
            ranked.c.rank <= TOP_VALUES
        )

    def _insert(self, key: tuple[str, ...], filter_dim: str = "", top: Table | None = None) -> None:
        """The rows of `key`; with a filter dimension, over each of its top values alone
        (grouped by it too: the raw path filtering on one value groups the same visits)."""
        names = (filter_dim, *key) if filter_dim else key
        facts, columns = self._facts(names)
        grouped = group_facts(facts, columns, ROLLUP_PARTS)
        if top is not None:
            kept = select(top.c.day, top.c.value).where(top.c.dimension == filter_dim)
            grouped = grouped.where(tuple_(facts.c.bucket, columns[0]).in_(kept))
        rows = grouped.subquery()
        values = [rows.c[dim_key(i)] for i in range(len(names))]
        filter_value = values.pop(0) if filter_dim else literal("")
        values += [literal("")] * (len(VALUE_COLUMNS) - len(key))
        source = select(
            literal(self.site.id),
            rows.c.bucket,
            literal(filter_dim),
            filter_value,
            literal(",".join(key)),
            *values,
            *(rows.c[p] for p in ROLLUP_PARTS),
        )
        columns_out = [
            "site_id",
            "day",
            "filter_dim",
            "filter_value",
            "dimension",
            *VALUE_COLUMNS,
            *ROLLUP_PARTS,
        ]
        self.conn.execute(insert(self.rows).from_select(columns_out, source))

    def write_day(self, day: int) -> None:
        """Replace the site's rollup rows of `day` with the computed ones."""
        conn = self.conn
        # Two servers refreshing the same site at once: the second waits. If the one
        # writing last computed first, it also saves the older event id (`refresh_site`),
        # so the next refresh redoes what it missed.
        lock_site_writes(conn, self.site)
        conn.execute(
            delete(rollup_table).where(
                rollup_table.c.site_id == self.site.id, rollup_table.c.day == day
            )
        )
        columns = [c.name for c in self.rows.c]
        conn.execute(
            insert(rollup_table).from_select(
                columns, select(self.rows).where(self.rows.c.day == day)
            )
        )
        hits.write_day(conn, self.site, self.goals, self.hits, day)

    def drop(self) -> None:
        for table in reversed(self.temps):
            table.drop(self.conn)


def _save_state(conn: Connection, site: SiteRef, **values: int) -> None:
    values = {**values, "timezone": site.timezone}  # type: ignore[dict-item]
    updated = conn.execute(
        state_table.update().where(state_table.c.site_id == site.id).values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(insert(state_table).values(site_id=site.id, **values))


def refresh_site(
    db: Database,
    site: SiteRef,
    *,
    now_ms: int | None = None,
    full: bool = False,
    rebuild_from: date | None = None,
) -> tuple[date, date] | None:
    """Bring one site's rollups and goal hits up to date; returns the days rebuilt (None:
    nothing to do). After a bulk rebuild or backfill, the tables written are analyzed
    (see `_refresh_site`).

    `rebuild_from`: also rebuild every day from that one (visits rewritten in place, as
    `tracker reclassify` does, leave no new event id behind to notice)."""
    written: set[Table] = set()
    days = _refresh_site(db, site, written, now_ms=now_ms, full=full, rebuild_from=rebuild_from)
    analyze(db, written)
    return days


def _refresh_site(
    db: Database,
    site: SiteRef,
    written: set[Table],
    *,
    now_ms: int | None = None,
    full: bool = False,
    rebuild_from: date | None = None,
) -> tuple[date, date] | None:
    """`refresh_site`, adding to `written` the tables whose planner statistics it left
    behind: the rollups' and goal hits' after new data of ANALYZE_AFTER_DAYS days or more
    (a first build, a changed time zone, an import of past events, a reclassification),
    the goal hits' after a new goal's backfill over every covered day. The minute's
    refresh of the last day or two adds none: autovacuum keeps up with that."""
    days, bulk = _refresh_rollups(db, site, now_ms=now_ms, full=full, rebuild_from=rebuild_from)
    if bulk:
        written.update((rollup_table, state_table, *hits.DERIVED))
    if _backfill_goal_hits(db, site):
        written.update(hits.DERIVED)
    return days


def _backfill_goal_hits(db: Database, site: SiteRef) -> int:
    """Hits of the goals added since the rollups were last built, for every covered day;
    returns how many goals."""
    with db.engine.connect() as conn:
        last = covered_until(conn, site)
        conn.rollback()
        if last is None:
            return 0
        try:
            return hits.backfill(conn, site, day_from_number(last))
        except BaseException:
            conn.invalidate()  # its temporary table goes with it
            raise


def _refresh_rollups(
    db: Database,
    site: SiteRef,
    *,
    now_ms: int | None,
    full: bool,
    rebuild_from: date | None,
) -> tuple[tuple[date, date] | None, bool]:
    """The days rebuilt (None: nothing to do), and whether the rebuild was a bulk one: its
    new data (every day on a first build, the days from `rebuild_from`, the days of the
    events stored since the last build, not those ID_MARGIN re-checks) reaches back
    ANALYZE_AFTER_DAYS days or more from today."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    today = day_number(local_date(now_ms, site.tz))
    with db.engine.connect() as conn:
        max_id = conn.scalar(select(func.max(events.c.id))) or 0
        state = conn.execute(select(state_table).where(state_table.c.site_id == site.id)).first()
        if full or state is None or state.timezone != site.timezone:
            first_ms = first_visit_ms(conn, site)
            start = None if first_ms is None else day_number(local_date(first_ms, site.tz))
            fresh, last_id = True, 0
            new_from = start
        elif max_id == state.last_event_id and state.last_day == today and not rebuild_from:
            return None, False  # not one event stored anywhere since the last build
        else:
            dirty = _dirty_day(conn, site, state.last_event_id - ID_MARGIN)
            forced = day_number(rebuild_from) if rebuild_from else None
            start = min(d for d in (state.last_day, dirty, forced) if d is not None)
            fresh, last_id = False, state.last_event_id
            if dirty is not None and today - dirty + 1 >= ANALYZE_AFTER_DAYS:
                # On a small database the margin reaches days back: events of those days
                # are rebuilt, not new. Only the events stored since count.
                dirty = _dirty_day(conn, site, state.last_event_id)
            new_from = min((d for d in (dirty, forced) if d is not None), default=None)
    if start is None:
        return None, False
    start = min(start, today)
    bulk = new_from is not None and today - new_from + 1 >= ANALYZE_AFTER_DAYS
    if fresh:
        with db.engine.begin() as conn:
            conn.execute(delete(rollup_table).where(rollup_table.c.site_id == site.id))
            conn.execute(delete(state_table).where(state_table.c.site_id == site.id))
            hits.forget(conn, site)
    with db.engine.connect() as conn:
        goals = load_goals(conn, site)
        conn.rollback()
        try:
            final = False
            with conn.begin():
                chunk_start = _next_busy_day(conn, site, start, today)
            while chunk_start is not None:
                chunk_end = min(chunk_start + CHUNK_DAYS - 1, today)
                final = chunk_end == today
                with conn.begin():
                    build = _Build(
                        conn,
                        site,
                        day_from_number(chunk_start),
                        day_from_number(chunk_end),
                        goals,
                    )
                # One short write transaction per day: ingest waits for SQLite's one writer.
                for day in range(chunk_start, chunk_end + 1):
                    with conn.begin():
                        build.write_day(day)
                        if day == chunk_end:
                            _save_state(
                                conn,
                                site,
                                last_day=chunk_end,
                                last_event_id=max_id if final else last_id,
                                built_ms=now_ms,
                            )
                with conn.begin():
                    build.drop()
                    chunk_start = (
                        None if final else _next_busy_day(conn, site, chunk_end + 1, today)
                    )
            if not final:  # the days after the last busy one are empty: covered as they are
                with conn.begin():
                    lock_site_writes(conn, site)
                    _save_state(conn, site, last_day=today, last_event_id=max_id, built_ms=now_ms)
            if fresh:  # every day was written for these goals
                with conn.begin():
                    hits.mark_built(conn, goals)
        except BaseException:
            conn.invalidate()  # its temporary tables go with it
            raise
    return (day_from_number(start), day_from_number(today)), bulk


def refresh(db: Database, *, now_ms: int | None = None, full: bool = False) -> int:
    """Refresh every site's rollups; returns how many sites were rebuilt.

    A site whose last rebuild took d seconds waits THROTTLE * d before the next one, so a
    very busy site costs at most ~1/THROTTLE of a core however often the job runs. The
    tables bulk rebuilds wrote are analyzed once, after every site (see `_refresh_site`).
    """
    with db.engine.connect() as conn:
        sites = [
            SiteRef(id=r.id, domain=r.domain, timezone=r.timezone)
            for r in conn.execute(select(Site.id, Site.domain, Site.timezone))
        ]
    done = 0
    written: set[Table] = set()
    for site in sites:
        began = time.monotonic()
        due = (db.url, site.id)
        if not full and _next_due.get(due, 0.0) > began:
            continue
        try:
            done += _refresh_site(db, site, written, now_ms=now_ms, full=full) is not None
        except Exception:  # noqa: BLE001 - one site's failure must not stop the others
            log.exception("rollup refresh failed for %s", site.domain)
        ended = time.monotonic()
        _next_due[due] = ended + THROTTLE * (ended - began)
    analyze(db, written)
    return done
