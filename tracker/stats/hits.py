"""Goal hits: each goal's matching events, kept per local day beside the rollups, and
each goal's daily counts summed from them (`goal_days`, and per UTM tags of the visits,
`goal_tag_days`: what the campaign report reads).

Matching a wide goal (`/blog/*`) against a month of raw events takes seconds; the Goals
card, conversion mode and funnels read these rows instead (`goals.goal_matches`). The
rollup refresh computes a chunk's hits with its rollup rows, and their counts, then writes
each goal's day in small transactions (`write_day`), for the goals it loaded when it
began. A goal added since has no hits
until `backfill` writes every covered day of it and marks it built; until then reports
match it on raw events. Goal definitions never change (a goal is renamed, moved or
deleted, not edited), so a built goal stays built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Table,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql import visitors

from tracker.db.models import Event, Goal, GoalDay, GoalHit, GoalTagDay, Visit
from tracker.stats import temptables
from tracker.stats.compiler import Plan, bucket_expr
from tracker.stats.coverage import first_visit_ms, lock_site_writes
from tracker.stats.goals import any_matches, load_goals, matches
from tracker.stats.periods import local_date, make_period
from tracker.stats.query import GoalSpec, Query, SiteRef

hits_table = cast(Table, GoalHit.__table__)
days_table = cast(Table, GoalDay.__table__)
tag_days_table = cast(Table, GoalTagDay.__table__)
DERIVED = (hits_table, days_table, tag_days_table)
TAGS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
goals_table = cast(Table, Goal.__table__)
events = Event.__table__
visits = Visit.__table__
COLUMNS = [c.name for c in hits_table.c if c.name != "id"]


def new_table(conn: Connection, name: str) -> Table:
    """An empty temporary table of hit rows (dropped by the caller), indexed for
    `write_day`'s slices by `summarize`."""
    table = _like(hits_table, name, index=("day", "goal_id", "visit_id"))
    temptables.create(conn, table)
    return table


# The events any goal matches (`compute`): a hit's columns but its goal and site, and the
# event columns goals match on (`matches`).
_HIT_COLUMNS = [name for name in COLUMNS if name not in ("goal_id", "site_id")]
_MATCHED = temptables.definition(
    "goal_matched",
    [(name, hits_table.c[name].type) for name in _HIT_COLUMNS]
    + [(name, events.c[name].type) for name in ("kind", "path", "target", "name", "props")],
)


def compute(
    conn: Connection, site: SiteRef, goals: Sequence[GoalSpec], source: FromClause, into: Table
) -> None:
    """Insert into `into` the hits of `goals` in the visits of `source`, which has each
    visit's id, visitor_id, started_ms and local day (`bucket`).

    # TRICKY: the events of the visits are read once, those any goal matches copied to a
    temporary table, and each goal's picked from that copy: a join per goal read every
    event again (1M events, 6 goals: 0.79 -> 0.30 s of CPU a week)."""
    if not goals:
        return
    of_visit = {
        "visitor_id": source.c.visitor_id,
        "started_ms": source.c.started_ms,
        "day": source.c.bucket,
    }
    matched = (
        select(*(of_visit[n] if n in of_visit else events.c[n] for n in _MATCHED.c.keys()))
        .select_from(events.join(source, events.c.visit_id == source.c.id))
        .where(any_matches(goals))
    )
    temptables.create(conn, _MATCHED)
    conn.execute(insert(_MATCHED).from_select(_MATCHED.c.keys(), matched))
    for goal in goals:
        rows = select(literal(goal.id), literal(site.id), *(_MATCHED.c[n] for n in _HIT_COLUMNS))
        conn.execute(insert(into).from_select(COLUMNS, rows.where(_on_matched(matches(goal)))))
    _MATCHED.drop(conn)


def _on_matched(clause: ColumnElement[bool]) -> ColumnElement[bool]:
    """A condition on the events table, on the matched events' copy instead."""

    def swap(element: Any, **_: Any) -> Any:
        if isinstance(element, Column) and element.table is events:
            return _MATCHED.c[element.name]
        return None

    return visitors.replacement_traverse(clause, {}, swap)


# A table written and the temporary table of its computed rows, for one site.
Target = tuple[SiteRef, Table, Table]
# A range of a key's values: its columns, from (included), to (excluded); None: unbounded.
Range = tuple[list[Column], tuple[Any, ...] | None, tuple[Any, ...] | None]
# Rows copied per write transaction (each replaces a stored one: deleted, then inserted,
# three indexes each way): SQLite's writer (ingest) waits at most that long.
WRITE_ROWS = 2_000
# SQLite's page cache (KiB) of the connection writing the hits and rollups (`write_cache`).
WRITE_CACHE_KB = 64 * 1024


@contextmanager
def write_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a page cache of WRITE_CACHE_KB for the connection meanwhile, its own
    restored after (the pooled connection goes back as it came).

    # TRICKY: with SQLite's default (2 MB), a slice's pages of goal_hits and its three
    indexes were read again and spilled mid-transaction. A rebuild of 1M events, slices of
    2,000 rows, the day's pages cached: at most 18 ms of CPU in a write transaction (41 ms
    before, slices of 5,000 and the default cache), the rebuild 132 -> 97 s."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    conn.exec_driver_sql(f"PRAGMA cache_size = -{WRITE_CACHE_KB}")
    conn.commit()  # no write: the transaction the pragma began, ended
    try:
        yield
    finally:
        if not conn.invalidated:
            conn.rollback()
            conn.exec_driver_sql(f"PRAGMA cache_size = {before}")
            conn.commit()


@dataclass(frozen=True)
class Computed:
    """Computed hits (temporary table `hits`) and, summed from them, their daily and tag-day
    counts (`days`, `tag_days`): every read, the join to visits included, is done before a
    day is written, so write transactions only copy rows."""

    hits: Table
    days: Table
    tag_days: Table

    @property
    def tables(self) -> tuple[Table, ...]:
        return (self.tag_days, self.days, self.hits)


def summarize(conn: Connection, computed: Table) -> Computed:
    """The counts of the hits in `computed` into new temporary tables (dropped by the
    caller with `Computed.tables`), indexed for `write_day`'s slices."""
    days = _like(days_table, f"{computed.name}_{days_table.name}")
    tags = _like(
        tag_days_table,
        f"{computed.name}_{tag_days_table.name}",
        index=("day", "goal_id", "utm_source"),
    )
    for table in (days, tags):
        temptables.create(conn, table)
    _insert_days(conn, computed, days)
    _insert_tag_days(conn, computed, tags)
    for table in (computed, tags):
        temptables.create_index(conn, table)
    return Computed(computed, days, tags)


def _like(table: Table, name: str, index: tuple[str, ...] = ()) -> Table:
    """The temporary table `name` with `table`'s columns but its id (the definition shared
    by every refresh, `temptables`), with an index on `index`."""
    columns = [(c.name, c.type) for c in table.c if c.name != "id"]
    return temptables.definition(name, columns, index)


def write_day(
    conn: Connection, site: SiteRef, goal: GoalSpec, computed: Computed, day: int
) -> None:
    """Replace the goal's hits and counts of `day` with the computed ones, in transactions
    of about WRITE_ROWS rows (each replaces a range of keys, so two servers writing at once
    still leave each row once). Reports meanwhile match a built goal on raw events: it is
    marked unbuilt first and built again by the last transaction, with its daily counts."""
    with conn.begin():
        lock_site_writes(conn, site)
        g = goals_table.c
        hidden = conn.execute(
            update(goals_table).where(g.id == goal.id, g.hits_built).values(hits_built=False)
        )
        was_built = hidden.rowcount > 0
    hit_rows = (site, hits_table, computed.hits)
    _copy_slices(
        conn, hit_rows, goal, day, [hits_table.c.visit_id], _visits_span(conn, hit_rows, goal, day)
    )
    tag_key = [tag_days_table.c[name] for name in (*TAGS, "currency")]
    _copy_slices(conn, (site, tag_days_table, computed.tag_days), goal, day, tag_key)
    with conn.begin():
        lock_site_writes(conn, site)
        _replace(conn, (site, days_table, computed.days), goal, day, [])
        if was_built:
            mark_built(conn, [goal])


def _visits_span(conn: Connection, target: Target, goal: GoalSpec, day: int) -> list[Any]:
    """The first visit id of the goal's hits of the day, stored or computed, and one past
    the last: the outer bounds of its slices.

    # TRICKY: unbounded, the first slice's DELETE would walk the goal's index of visits
    from its very first hit (every earlier day) while holding the write lock."""
    site, table, computed = target
    with conn.begin():
        spans = [
            conn.execute(
                select(func.min(t.c.visit_id), func.max(t.c.visit_id)).where(
                    t.c.goal_id == goal.id, t.c.day == day, *where
                )
            ).one()
            for t, where in ((table, [table.c.site_id == site.id]), (computed, []))
        ]
    firsts = [row[0] for row in spans if row[0] is not None]
    lasts = [row[1] for row in spans if row[1] is not None]
    return [(min(firsts),), (max(lasts) + 1,)] if firsts else [None, None]


def _copy_slices(
    conn: Connection,
    target: Target,
    goal: GoalSpec,
    day: int,
    key: list[Column],
    span: list[Any] | None = None,
) -> None:
    """The goal's computed rows of the day copied over the table's, in one transaction per
    range of `key` holding WRITE_ROWS computed rows or so, within `span` (first key, one
    past the last; unbounded by default)."""
    site, _, computed = target
    c = computed.c
    with conn.begin():
        keys = conn.execute(
            select(*(c[k.name] for k in key))
            .where(c.day == day, c.goal_id == goal.id)
            .order_by(*(c[k.name] for k in key))
        ).all()
    # Rows of one key (a visit's hits) stay in one slice.
    first, end = span or [None, None]
    bounds = [first, *dict.fromkeys(tuple(k) for k in keys[WRITE_ROWS::WRITE_ROWS]), end]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        with conn.begin():
            lock_site_writes(conn, site)
            _replace(conn, target, goal, day, [(key, lo, hi)])


def _replace(
    conn: Connection, target: Target, goal: GoalSpec, day: int, ranges: list[Range]
) -> None:
    """The goal's rows of `day` in `ranges` (all when none) replaced by the computed ones
    (in the caller's transaction)."""
    site, table, computed = target
    kept = [table.c.site_id == site.id, table.c.day == day, table.c.goal_id == goal.id]
    mine = [computed.c.day == day, computed.c.goal_id == goal.id]
    for key, lo, hi in ranges:
        kept += _within([table.c[k.name] for k in key], lo, hi)
        mine += _within([computed.c[k.name] for k in key], lo, hi)
    conn.execute(delete(table).where(*kept))
    columns = [c.name for c in computed.c]
    conn.execute(insert(table).from_select(columns, select(computed).where(*mine)))


def _within(
    columns: list[Column], lo: tuple[Any, ...] | None, hi: tuple[Any, ...] | None
) -> list[ColumnElement[bool]]:
    """Rows whose `columns` lie from `lo` (included) to `hi` (excluded); None: unbounded."""
    key = tuple_(*columns)
    where = []
    if lo is not None:
        where.append(key >= tuple_(*(literal(v) for v in lo)))
    if hi is not None:
        where.append(key < tuple_(*(literal(v) for v in hi)))
    return where


def _insert_days(conn: Connection, computed: Table, into: Table) -> None:
    """The daily counts of the computed hits (a goal reached by nobody that day: no row)."""
    c = computed.c
    counts = select(
        c.goal_id,
        c.day,
        c.site_id,
        func.count(c.visitor_id.distinct()),
        func.count(c.visit_id.distinct()),
        func.count(),
    ).group_by(c.goal_id, c.day, c.site_id)
    columns = ["goal_id", "day", "site_id", "visitors", "conversions", "events"]
    conn.execute(insert(into).from_select(columns, counts))


def _insert_tag_days(conn: Connection, computed: Table, into: Table) -> None:
    """The daily conversions of the computed hits in tagged visits, per tags: one row of
    every converting visit (currency ""), one per currency paid with its revenue."""
    c = computed.c
    tags = [visits.c[t] for t in TAGS]
    tagged = or_(*(t != "" for t in tags))
    joined = computed.join(visits, visits.c.id == c.visit_id)
    keys = [c.goal_id, c.site_id, c.day, *tags]
    every = select(*keys, literal(""), func.count(c.visit_id.distinct()), literal(0))
    paid = select(
        *keys, c.revenue_currency, func.count(c.visit_id.distinct()), func.sum(c.revenue_minor)
    ).where(c.revenue_minor.is_not(None), c.revenue_currency != "")
    columns = ["goal_id", "site_id", "day", *TAGS, "currency", "conversions", "revenue_minor"]
    for rows, grouped in ((every, keys), (paid, [*keys, c.revenue_currency])):
        rows = rows.select_from(joined).where(tagged).group_by(*grouped)
        conn.execute(insert(into).from_select(columns, rows))


def first_day(conn: Connection, site: SiteRef, since: int | None = None) -> int | None:
    """The first local day (from `since`) holding any of the site's hits (goal days and tag
    days are summed from them), None if none."""
    c = hits_table.c
    where = [c.site_id == site.id] if since is None else [c.site_id == site.id, c.day >= since]
    return conn.scalar(select(func.min(c.day)).where(*where))


def unbuild(conn: Connection, site: SiteRef) -> None:
    """Reports match the site's goals on raw events again: its days are being cut anew (a
    rebuild from scratch), their hits replaced day by day."""
    conn.execute(
        update(goals_table).where(goals_table.c.site_id == site.id).values(hits_built=False)
    )


def mark_built(conn: Connection, goals: Sequence[GoalSpec]) -> None:
    if goals:
        ids = [g.id for g in goals]
        conn.execute(update(goals_table).where(goals_table.c.id.in_(ids)).values(hits_built=True))


def _unbuilt(conn: Connection, site: SiteRef) -> list[GoalSpec]:
    g = goals_table.c
    built = set(conn.scalars(select(g.id).where(g.site_id == site.id, g.hits_built)))
    return [goal for goal in load_goals(conn, site) if goal.id not in built]


def backfill(conn: Connection, site: SiteRef, last: date) -> int:
    """Write every hit of the site's goals not built yet, for visits started through day
    `last`, and mark them built; returns how many goals. Computed first into a temporary
    table, then copied a goal and a day at a time in small transactions (`write_day`), so
    SQLite's write lock is held only for those (reports match the goals on raw events
    until they are marked built)."""
    with write_cache(conn):
        return _backfill(conn, site, last)


def _backfill(conn: Connection, site: SiteRef, last: date) -> int:
    with conn.begin():
        goals = _unbuilt(conn, site)
        first_ms = first_visit_ms(conn, site) if goals else None
    if not goals:
        return 0
    computed = None
    days: list[int] = []
    if first_ms is not None:
        first = local_date(first_ms, site.tz)
        period = make_period("custom", first, last, site.tz)
        bucket = bucket_expr(visits.c.started_ms, Plan((), (), "day"), Query(site, period))
        source = (
            select(visits.c.id, visits.c.visitor_id, visits.c.started_ms, bucket.label("bucket"))
            .where(
                visits.c.site_id == site.id,
                visits.c.started_ms >= period.start_ms,
                visits.c.started_ms < period.end_ms,
            )
            .subquery("backfilled")
        )
        with conn.begin():
            table = new_table(conn, "goal_backfill")
            compute(conn, site, goals, source, table)
            computed = summarize(conn, table)
            days = list(conn.scalars(select(table.c.day).distinct().order_by(table.c.day)))
    with conn.begin():
        lock_site_writes(conn, site)
        ids = [g.id for g in goals]
        for table in DERIVED:
            conn.execute(delete(table).where(table.c.goal_id.in_(ids)))
    if computed is not None:
        for day in days:
            for goal in goals:
                write_day(conn, site, goal, computed, day)
    with conn.begin():
        mark_built(conn, goals)
        for temp in computed.tables if computed is not None else ():
            temp.drop(conn)
    return len(goals)
