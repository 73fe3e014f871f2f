"""Rollups: the per-bucket rows of every one-dimension report, kept per local day.

Raw queries over a month of events take seconds; the stats page must take milliseconds.
So for each site, local day, rollup dimension (and "" for the total) and value, the
additive parts are stored in `stats_rollups`. They are written by the compiler's own raw
query (INSERT ... SELECT of `raw_buckets`), so a rollup row is by construction what the
raw path computes; `bucket_source` reads them back for the days they cover and reads raw
rows for the rest, and the outer query sums both the same way. Filtered reports that no
rollup key holds read the columnar store for closed days (tracker.columnar.engine).

Freshness: `refresh` rebuilds, for each site, the days touched by events stored since its
last build, and the days from the last one it built through today, skipping the days with
neither visits nor rows (there is nothing to write: the cost follows the data, not the
calendar). A site without new events costs one look at the ids stored since. The
`stats_rollups` job runs it every minute; in between, rolled-up days (today included) can
lag by that much. A site whose time zone changed is rebuilt from scratch. Each day is
written in transactions of at most WRITE_ROWS rows (a range of one dimension's values), so
SQLite's one writer is never kept from storing events for long; a report running meanwhile
reads each value's row either as it was or as it is now. A refresh that rebuilt a week of
days or more (a first build, an import of past events) ends with ANALYZE of the tables it
wrote, on PostgreSQL (tracker.db.statistics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Connection,
    FromClause,
    Select,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.types import NullType

from tracker.db import Database, analyze
from tracker.db.models import Event, Site, StatsRollup, Visit
from tracker.stats import hits, temptables
from tracker.stats.compiler import (
    Plan,
    bucket_expr,
    dim_key,
    event_facts,
    group_facts,
    raw_buckets,
    summed_visit_facts,
)
from tracker.stats.coverage import covered_until, first_visit_ms, lock_site_writes, state_table
from tracker.stats.dimensions import DIMENSIONS, ROLLUP_KEYS
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
# Rows replaced per transaction (each deleted and inserted), the connection's page cache
# enlarged meanwhile (`hits.write_cache`): SQLite's writer (ingest) waits at most that long.
WRITE_ROWS = 2_000
# A rollup row's dimension values, in the order of its key's dimensions.
VALUE_COLUMNS = ("value", "value2")
# Per process: when each site of each database may be rebuilt again (see `refresh`).
THROTTLE = 10
_next_due: dict[tuple[str, int], float] = {}
# Event ids are not committed in order on PostgreSQL; re-checking the last ones is cheap.
# SQLite has one writer: its ids are committed in order.
ID_MARGIN = {"postgresql": 10_000}
# A refresh whose new data spans this many days or more (through today) analyzes the
# tables it wrote (PostgreSQL).
ANALYZE_AFTER_DAYS = CHUNK_DAYS


RollupKey = tuple[str, ...]
# Rollup rows per pageview of a report's days past which the columnar store answers
# instead (`rollups_hold`): SQLite sums a rollup row in about the time
# DuckDB takes for four pageviews (wide bench dataset, 1M events: a page breakdown's 421k
# rows in 186-323 ms; the store's scan of its 890k pageviews in 91-184 ms).
ROLLUP_ROWS_PER_PAGEVIEW = 0.25
# ... and past this many rows only: fewer take SQLite a few ms.
ROLLUP_ROWS_AT_LEAST = 20_000


def _adds_up(flt: Filter, parts: tuple[str, ...]) -> bool:
    """Whether rows of the values `flt` keeps can be summed, when the query does not group
    by its dimension: one value always; several only for a visit dimension (each visit has
    one value) and parts other than visitors (a visitor may have visits with several)."""
    if flt.op == "is" and len(flt.values) == 1:
        return True
    return not DIMENSIONS[flt.dimension].is_event and "visitors" not in parts


def rollup_key(query: Query, parts: tuple[str, ...]) -> RollupKey | None:
    """The rollup key holding exactly the dimensions a query groups and filters by.

    Exactly: the query sums rows over the values of each dimension it filters on but does
    not group by, which only some filters allow (`_adds_up`).
    """
    if query.time_dimension == "time:hour" or not set(parts) <= set(ROLLUP_PARTS):
        return None
    grouped = {d for d in query.dimensions if not DIMENSIONS[d].is_time}
    if not all(_adds_up(f, parts) for f in query.filters if f.dimension not in grouped):
        return None
    names = grouped | {f.dimension for f in query.filters}
    return next((key for key in ROLLUP_KEYS if set(key) == names), None)


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
    days = _rolled_days(conn, query, plan) if rollups and extra is None else None
    if days is None:
        return raw_buckets(query, plan, [(period.start_ms, period.end_ms)], extra), "raw"
    key, lo, hi = days
    rolled = _rollup_rows(query, plan, key, lo, hi)
    if hi >= day_number(period.end):
        return rolled, "rollup"
    span = (local_midnight_ms(day_from_number(hi + 1), query.site.tz), period.end_ms)
    return union_all(rolled, raw_buckets(query, plan, [span])), "mixed"


def _rolled_days(conn: Connection, query: Query, plan: Plan) -> tuple[RollupKey, int, int] | None:
    """The rollup key holding the query and the first and last of its days rollups answer
    for, or None where they answer for none."""
    key = rollup_key(query, plan.parts)
    last = covered_until(conn, query.site) if key is not None else None
    lo = day_number(query.period.start)
    hi = min(_last_whole_day(query), -1 if last is None else last)
    return None if key is None or lo > hi else (key, lo, hi)


def rollups_hold(
    conn: Connection, query: Query, plan: Plan, extra: ColumnElement[bool] | None = None
) -> bool:
    """Whether rollups alone answer for every day of the query (`bucket_source` reads
    them only), and hold too few rows for a scan of its pageviews to answer sooner."""
    days = _rolled_days(conn, query, plan) if extra is None else None
    if days is None or days[2] < day_number(query.period.end):
        return False
    return not _outweigh_pageviews(conn, query, days)


def _outweigh_pageviews(conn: Connection, query: Query, days: tuple[RollupKey, int, int]) -> bool:
    """Whether the rollup rows a report would read for its days outnumber their pageviews
    times ROLLUP_ROWS_PER_PAGEVIEW, and ROLLUP_ROWS_AT_LEAST: a site of many pages, where
    a scan of its pageviews (the columnar store's) answers sooner. Judged on the last of
    the days, whose rows are counted no further than that bound along the key's index
    (counting a month's 220k rows took PostgreSQL 50-80 ms); a report keeping one value of
    the key's first dimension seeks its rows there."""
    key, lo, hi = days
    if any(f.op == "is" and len(f.values) == 1 and f.dimension == key[0] for f in query.filters):
        return False
    t = rollup_table.c
    last = [t.site_id == query.site.id, t.day == hi]
    pageviews = int(conn.scalar(select(func.sum(t.pageviews)).where(*last, t.dimension == "")) or 0)
    at_least = -(-ROLLUP_ROWS_AT_LEAST // (hi - lo + 1))
    enough = max(at_least, int(pageviews * ROLLUP_ROWS_PER_PAGEVIEW))
    rows = select(t.id).where(*last, t.dimension == ",".join(key)).limit(enough).subquery()
    return (conn.scalar(select(func.count()).select_from(rows)) or 0) >= enough


def _last_whole_day(query: Query) -> int:
    """The period's last day rollups may answer for: not one cut short (a comparison up to
    the same time). Nor today alone: its rollup lags the collector by up to a minute, and
    "Visitors 1" beside "4 current visitors" (read from raw events) would contradict itself;
    one day of raw rows costs little, and longer periods dwarf the lag."""
    period = query.period
    last = day_number(period.end) - period.cut
    today = day_number(local_date(int(time.time() * 1000), query.site.tz))
    return last - 1 if period.days == 1 and last == today else last


def _rollup_rows(query: Query, plan: Plan, key: RollupKey, lo: int, hi: int) -> Select:
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
    # Every day with rollup rows has its total row (dimension "").
    rolled = conn.scalar(
        select(func.min(c.day)).where(c.site_id == site.id, c.dimension == "", c.day >= day)
    )
    busy = [
        None if first_ms is None else day_number(local_date(first_ms, site.tz)),
        rolled,
        hits.first_day(conn, site, day),
    ]
    first = min((d for d in busy if d is not None), default=None)
    return first if first is not None and first <= today else None


def _temp_table(conn: Connection, name: str, stmt: Select) -> Table:
    """Materialize `stmt` into a temporary table (dropped by the caller), of the shared
    definition of its name and columns (`temptables`)."""
    # Every column selected here is a table's or labelled: it has a key.
    columns: list[temptables.ColumnSpec] = [
        (cast(str, c.key), BigInteger() if isinstance(c.type, NullType) else c.type)
        for c in stmt.selected_columns
    ]
    table = temptables.definition(name, columns)
    temptables.create(conn, table)
    conn.execute(insert(table).from_select([key for key, _ in columns], stmt))
    return table


# The computed rollup rows of a chunk. Each write transaction copies one slice of a day:
# found by index, not by a scan of the chunk's rows while SQLite's write lock is held.
_ROWS = temptables.definition(
    "rollup_rows",
    [(c.name, c.type) for c in rollup_table.c if c.name != "id"],
    index=("day", "dimension", "value"),
)


@dataclass(frozen=True)
class _Slice:
    """A day's rows of one dimension with values from `lo` (included) to `hi` (excluded);
    None: unbounded."""

    dimension: str
    lo: str | None = None
    hi: str | None = None

    def of(self, table: Table) -> ColumnElement[bool]:
        c = table.c
        where = [c.dimension == self.dimension]
        if self.lo is not None:
            where.append(c.value >= self.lo)
        if self.hi is not None:
            where.append(c.value < self.hi)
        return and_(*where)


def _riding(lead: str, visit_dims: Sequence[str]) -> list[str]:
    """The visit dimensions the facts of `lead` (an event dimension, "" for none) carry:
    those of the keys they answer (see `_Build._facts`): every one for "", none for an event
    dimension alone (18 max() columns per visit and value were most of its facts' CPU)."""
    wanted = {d for key in ROLLUP_KEYS if _lead(key) == lead for d in key}
    return [d for d in visit_dims if d in wanted]


def _lead(key: RollupKey) -> str:
    """The event dimension of a key with at most one ("" for none)."""
    return next((d for d in key if DIMENSIONS[d].is_event), "")


class _Build:
    """The rollup rows of days `start`..`end`, computed into the temporary table `rows`
    with the compiler's own pieces; only temporary tables are written, so on SQLite the
    database's write lock stays free meanwhile (see `refresh_site`).

    # TRICKY: the chunk's visits, and their per-visit event facts, are copied to temporary
    tables once (per visit with its visit dimensions, and per visit and value of each event
    dimension, `_riding`); each of the ~25 keys then groups a small copy instead of
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
        computed = hits.new_table(conn, "rollup_hits")
        hits.compute(conn, site, goals, self.chunk, computed)
        self.hits = hits.summarize(conn, computed)
        self.temps += self.hits.tables
        self.facts: dict[str, Table] = {}
        self.rows = _ROWS
        temptables.create(conn, self.rows)
        self.temps.append(self.rows)
        for key in ROLLUP_KEYS:
            self._insert(key)
        temptables.create_index(conn, self.rows)

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
        order = [*event_names, *_riding(lead, self.visit_dims)]
        if lead not in self.facts:
            lead_query = Query(site=self.site, period=self.period, dimensions=event_names)
            cols = [self._column(n) for n in order]
            facts = event_facts if event_names else summed_visit_facts
            stmt = facts(lead_query, self.chunk, self.chunk.c.bucket, cols)
            self.facts[lead] = self._temp(f"rollup_facts{len(self.facts)}", stmt)
        table = self.facts[lead]
        return table, [table.c[dim_key(order.index(n))] for n in names]

    def _insert(self, key: tuple[str, ...]) -> None:
        """The rows of `key`."""
        facts, columns = self._facts(key)
        rows = group_facts(facts, columns, ROLLUP_PARTS).subquery()
        values = [rows.c[dim_key(i)] for i in range(len(key))]
        values += [literal("")] * (len(VALUE_COLUMNS) - len(key))
        source = select(
            literal(self.site.id),
            rows.c.bucket,
            literal(",".join(key)),
            *values,
            *(rows.c[p] for p in ROLLUP_PARTS),
        )
        columns_out = ["site_id", "day", "dimension", *VALUE_COLUMNS, *ROLLUP_PARTS]
        self.conn.execute(insert(self.rows).from_select(columns_out, source))

    def write_day(self, day: int) -> None:
        """Replace the site's rollup rows and goal hits of `day` with the computed ones, in
        transactions of at most WRITE_ROWS rows: a few whole dimensions, or a range of one
        dimension's values (their order is the database's); then each goal's (`hits.write_day`)."""
        conn, r = self.conn, self.rows.c
        with conn.begin():
            counted = select(r.dimension, func.count()).where(r.day == day).group_by(r.dimension)
            counts: dict[str, int] = {row[0]: row[1] for row in conn.execute(counted)}
        batch: list[_Slice] = []
        size = 0
        for key in ROLLUP_KEYS:
            name = ",".join(key)
            count = counts.get(name, 0)
            if count > WRITE_ROWS:
                for piece in self._slices(day, name):
                    self._replace(day, [piece])
                continue
            if batch and size + count > WRITE_ROWS:
                self._replace(day, batch)
                batch, size = [], 0
            batch.append(_Slice(name))
            size += count
        if batch:
            self._replace(day, batch)
        for goal in self.goals:
            hits.write_day(conn, self.site, goal, self.hits, day)

    def _slices(self, day: int, name: str) -> list[_Slice]:
        """The dimension's rows of the day in slices of WRITE_ROWS rows or so, by value."""
        r = self.rows.c
        with self.conn.begin():
            values = self.conn.scalars(
                select(r.value).where(r.day == day, r.dimension == name).order_by(r.value)
            ).all()
        # A value's rows stay in one slice (a pair key's first value may have many).
        bounds: list[str | None] = [None, *dict.fromkeys(values[WRITE_ROWS::WRITE_ROWS]), None]
        return [_Slice(name, lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False)]

    def _replace(self, day: int, slices: list[_Slice]) -> None:
        """One transaction: the day's rows in `slices` replaced by the computed ones."""
        conn = self.conn
        with conn.begin():
            # Two servers refreshing the same site at once: the second waits. If the one
            # writing last computed first, it also saves the older event id
            # (`refresh_site`), so the next refresh redoes what it missed.
            lock_site_writes(conn, self.site)
            kept = rollup_table.c
            conn.execute(
                delete(rollup_table).where(
                    kept.site_id == self.site.id,
                    kept.day == day,
                    or_(*(piece.of(rollup_table) for piece in slices)),
                )
            )
            computed = select(self.rows).where(
                self.rows.c.day == day, or_(*(piece.of(self.rows) for piece in slices))
            )
            conn.execute(insert(rollup_table).from_select([c.name for c in self.rows.c], computed))

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
    forced = day_number(rebuild_from) if rebuild_from else None
    with db.engine.connect() as conn:
        max_id = conn.scalar(select(func.max(events.c.id))) or 0
        state = conn.execute(select(state_table).where(state_table.c.site_id == site.id)).first()
        fresh = full or state is None or state.timezone != site.timezone
        if fresh:
            held = _first_day_held(conn, site)
            if held is None:
                return None, False
            start, last_day, last_id = held, None, 0
            dirty: set[int] = set()
            new_from: int | None = start
        else:
            assert state is not None
            last_day, last_id = int(state.last_day), int(state.last_event_id)
            if last_day == today and forced is None and not _stored_since(conn, site, last_id):
                conn.rollback()
                if max_id > last_id:  # other sites' events: look after them next time
                    with conn.begin():
                        lock_site_writes(conn, site)
                        _save_state(conn, site, last_event_id=max_id)
                return None, False
            margin = ID_MARGIN.get(conn.dialect.name, 0)
            dirty = _dirty_days(conn, site, last_id - margin)
            start = min(d for d in (last_day, forced) if d is not None)
            new = _dirty_days(conn, site, last_id) if margin else dirty
            new_from = min((d for d in (*new, forced) if d is not None), default=None)
        busy = set(_busy_days(conn, site, min(start, today), today))
        days = sorted(d for d in dirty | busy if d <= today)
    bulk = new_from is not None and today - new_from + 1 >= ANALYZE_AFTER_DAYS
    if fresh:
        # Reports read raw rows until the rebuild covers days again. The old rows are
        # replaced day by day (every busy day from the first held is rebuilt): deleting
        # them at once held SQLite's write lock for seconds.
        with db.engine.begin() as conn:
            lock_site_writes(conn, site)
            conn.execute(delete(state_table).where(state_table.c.site_id == site.id))
            hits.unbuild(conn, site)
    with db.engine.connect() as conn:
        goals = load_goals(conn, site)
        conn.rollback()
        try:
            with hits.write_cache(conn):
                for chunk in _chunks(days):
                    with conn.begin():
                        build = _Build(
                            conn,
                            site,
                            day_from_number(chunk[0]),
                            day_from_number(chunk[-1]),
                            goals,
                        )
                    for day in chunk:
                        build.write_day(day)
                    last_day = max(chunk[-1], -1 if last_day is None else last_day)
                    with conn.begin():
                        build.drop()
                        lock_site_writes(conn, site)
                        # Every day through `last_day` is up to date; new events of those days
                        # stored since `last_id` are rebuilt next time if the run stops here.
                        _save_state(
                            conn, site, last_day=last_day, last_event_id=last_id, built_ms=now_ms
                        )
            with conn.begin():
                lock_site_writes(conn, site)
                _save_state(conn, site, last_day=today, last_event_id=max_id, built_ms=now_ms)
            if fresh:  # every day was written for these goals
                with conn.begin():
                    hits.mark_built(conn, goals)
        except BaseException:
            conn.invalidate()  # its temporary tables go with it
            raise
    first = days[0] if days else today
    return (day_from_number(min(first, today)), day_from_number(today)), bulk


def _first_day_held(conn: Connection, site: SiteRef) -> int | None:
    """The first day with visits, rollup rows or goal hits: where a rebuild from scratch
    starts (rows of a day whose visits are gone, or of another time zone, are replaced)."""
    first_ms = first_visit_ms(conn, site)
    c = rollup_table.c
    rolled = conn.scalar(select(func.min(c.day)).where(c.site_id == site.id, c.dimension == ""))
    held = [
        None if first_ms is None else day_number(local_date(first_ms, site.tz)),
        rolled,
        hits.first_day(conn, site),
    ]
    return min((d for d in held if d is not None), default=None)


def _stored_since(conn: Connection, site: SiteRef, after_id: int) -> bool:
    """Whether the site has events stored after `after_id`: a range of the primary key,
    the events stored since (of every site), never the table."""
    found = conn.scalar(
        select(events.c.id).where(events.c.id > after_id, events.c.site_id == site.id).limit(1)
    )
    return found is not None


def _dirty_days(conn: Connection, site: SiteRef, after_id: int) -> set[int]:
    """The local days of the visits touched by events stored after `after_id`, and the day
    after each: a late event may start its visit earlier, on the day before the one it
    had rows on (a visit keeps one visitor id, so it lies within one UTC day: two local
    days at most)."""
    # Quarter hours: every time zone's offset is a whole number of them, so each falls in
    # one local day; a day has at most 96, however many events.
    quarter = visits.c.started_ms // 900_000
    starts = conn.scalars(
        select(quarter)
        .select_from(events.join(visits, events.c.visit_id == visits.c.id))
        .where(events.c.id > after_id, events.c.site_id == site.id)
        .distinct()
    )
    days = {day_number(local_date(int(q) * 900_000, site.tz)) for q in starts}
    return days | {day + 1 for day in days}


def _busy_days(conn: Connection, site: SiteRef, day: int, today: int) -> Iterator[int]:
    """The days from `day` through `today` that have visits or rows (`_next_busy_day`)."""
    busy = _next_busy_day(conn, site, day, today)
    while busy is not None:
        yield busy
        busy = _next_busy_day(conn, site, busy + 1, today)


def _chunks(days: list[int]) -> Iterator[list[int]]:
    """Sorted days in groups spanning CHUNK_DAYS at most (computed together)."""
    chunk: list[int] = []
    for day in days:
        if chunk and day - chunk[0] >= CHUNK_DAYS:
            yield chunk
            chunk = []
        chunk.append(day)
    if chunk:
        yield chunk


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
