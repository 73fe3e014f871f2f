"""The compiler: a Query to SQLAlchemy Core, one function for every report.

Shape of every statement (the same on SQLite and PostgreSQL):

    outer:   GROUP BY dimensions -> SUM(parts), ORDER BY, LIMIT n+1 OFFSET
      from   per-bucket rows: dimension values, a bucket (local day, or hour), parts
             = raw rows grouped per bucket (this module)
               UNION ALL pre-aggregated days (rollups module)

Raw rows are visits (visit dimensions and filters only) or events joined to their visit
(event dimensions, event filters, or parts only events have). Both select visits by their
start: a visit and all its events belong to the period and the day of its first event.
Distinct visitors are counted per bucket (a local day, or an hour) and then summed: visitor
ids rotate daily, so the sum is the definition, and it adds across rollups and raw days.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from typing import cast as typed
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    CompoundSelect,
    FromClause,
    FunctionElement,
    Join,
    Label,
    MetaData,
    Select,
    Subquery,
    Table,
    Text,
    UnaryExpression,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import replacement_traverse

from tracker.db.models import Event, Visit
from tracker.stats.dimensions import DIMENSIONS, PAGE
from tracker.stats.filters import Filter, compile_filters
from tracker.stats.goals import (
    GOAL,
    any_matches,
    daily_counts,
    goal_clause,
    goal_events,
    goal_matches,
    selected_goals,
)
from tracker.stats.metrics import EVENT_PARTS, METRICS
from tracker.stats.periods import DAY_MS, HOUR_MS, day_number, month_start, offset_segments
from tracker.stats.query import GoalSpec, Query

visits = Visit.__table__
events = Event.__table__


@dataclass(frozen=True)
class Plan:
    """What the per-bucket rows must carry for a query."""

    dims: tuple[str, ...]  # non-time dimensions, in query order (columns d0, d1, ...)
    parts: tuple[str, ...]
    bucket: str  # "day" or "hour"


def plan_for(query: Query, parts: tuple[str, ...]) -> Plan:
    dims = tuple(d for d in query.dimensions if not DIMENSIONS[d].is_time)
    return Plan(dims, parts, "hour" if query.time_dimension == "time:hour" else "day")


def dim_key(index: int) -> str:
    return f"d{index}"


def column_filters(query: Query) -> tuple[Filter, ...]:
    """Filters on a stored column: all but a goal filter, which selects whole visits."""
    return tuple(f for f in query.filters if f.dimension != GOAL)


def needs_events(query: Query, parts: Sequence[str]) -> bool:
    return (
        any(DIMENSIONS[d].is_event for d in query.dimensions)
        or any(DIMENSIONS[f.dimension].is_event for f in column_filters(query))
        or any(p in EVENT_PARTS for p in parts)
    )


def dimension_column(name: str) -> ColumnElement:
    dim = DIMENSIONS[name]
    column = (events if dim.is_event else visits).c[dim.column]
    # TRICKY: props is a JSON column; PostgreSQL's json has no equality, so grouping and
    # filtering use its text, which both databases keep exactly as it was written.
    return cast(column, Text) if name == "event:props" else column


def segment_case(
    ts: ColumnElement,
    segments: Sequence[tuple[int, int]],
    value: Callable[[int, int], ColumnElement],
) -> ColumnElement:
    """`value(start_ms, offset_ms)` of the offset segment (periods.offset_segments) `ts` is in.

    # TRICKY: neither database knows the site's zone rules portably, so Python finds the
    changes and the database only compares integers.
    """
    if len(segments) == 1:
        return value(*segments[0])
    whens = [
        (ts < nxt, value(start, off))
        for (start, off), (nxt, _) in zip(segments, segments[1:], strict=False)
    ]
    return case(*whens, else_=value(*segments[-1]))


def offset_expr(ts: ColumnElement, start_ms: int, end_ms: int, tz: ZoneInfo) -> ColumnElement:
    """The site's UTC offset (ms) at `ts`: a CASE over the few DST changes in range."""
    segments = offset_segments(start_ms, end_ms, tz)
    return segment_case(ts, segments, lambda _start, off: literal(off, BigInteger))


def bucket_expr(ts: ColumnElement, plan: Plan, query: Query) -> ColumnElement:
    off = offset_expr(ts, query.period.start_ms, query.period.end_ms, query.site.tz)
    if plan.bucket == "hour":
        # The UTC start of the local hour: distinct for the repeated hour of a fall-back day.
        return ((ts + off) // HOUR_MS) * HOUR_MS - off
    return (ts + off) // DAY_MS


def _ranges_clause(ts: ColumnElement, ranges: Sequence[tuple[int, int]]) -> ColumnElement[bool]:
    if not ranges:
        return false()
    return or_(*(and_(ts >= lo, ts < hi) for lo, hi in ranges))


def raw_buckets(
    query: Query,
    plan: Plan,
    ranges: Sequence[tuple[int, int]] | None,
    extra: ColumnElement[bool] | None = None,
    *,
    direct: bool = False,
    constant: Collection[str] = (),
) -> Select:
    """Per-bucket rows from raw visits/events whose visit started in one of `ranges` (UTC ms);
    None: every row read is the site's and in the period already (the columnar store's
    views, tracker.columnar.engine), so nothing is compared per row.

    `direct`: the same rows in the forms DuckDB (the columnar store's engine) runs faster:
    from events alone where the visit's columns read are copied into them (`events_alone`);
    else, with event filters but no event dimension, events summed per visit id before the join
    (`matched_visit_facts`); with an event dimension, events summed per bucket where no
    part is per visit (`event_buckets`). `constant`: with `direct`, the visit columns the
    same for all of a visitor's visits of a UTC day in every part read (`page_visitor_buckets`)."""
    stored = stored_goal_clause(query) if direct else None
    if stored is not None:
        # The visits' goals as the parts store them: no goal matched, no ids looked up.
        found = _raw_buckets(
            query, plan, ranges, extra, stored, direct=True, matched=False, constant=constant
        )
        return on_stored_visits(found)
    converted = goal_clause(query, stored_converting_ids if direct else None)
    matched = converted is not None
    return _raw_buckets(
        query, plan, ranges, extra, converted, direct=direct, matched=matched, constant=constant
    )


def _raw_buckets(
    query: Query,
    plan: Plan,
    ranges: Sequence[tuple[int, int]] | None,
    extra: ColumnElement[bool] | None,
    converted: ColumnElement[bool] | None,
    *,
    direct: bool,
    matched: bool,
    constant: Collection[str],
) -> Select:
    """`raw_buckets`, the visits a goal filter keeps being those meeting `converted`:
    `matched`, its goals matched on events in the statement; else read from the visits'
    stored goals (`stored_goal_clause`)."""
    site: ColumnElement = visits.c.site_id
    started: ColumnElement = visits.c.started_ms
    if matched and query.filter_for(GOAL).op == "is":  # type: ignore[union-attr]
        # TRICKY: without statistics, SQLite would scan every visit of the period and probe
        # the converting ids; out of its indexes' reach, it looks those visits up by id.
        site, started = unindexed(site), unindexed(started)
    where: list[ColumnElement[bool]] = []
    if ranges is not None:
        where += [site == query.site.id, _ranges_clause(started, ranges)]
    if converted is not None:
        where.append(converted)
    if extra is not None:
        where.append(extra)
    bucket = bucket_expr(visits.c.started_ms, plan, query)
    dims = [dimension_column(d) for d in plan.dims]
    if direct and matched and not needs_events(query, plan.parts):
        unconverted = [w for w in where if w is not converted]
        found = converting_visit_buckets(query, plan, bucket, dims, unconverted)
        if found is not None:
            return found
    within = _converting_join(query, plan) if direct and matched else None
    # The goal's IN clause, where the events are joined to the converting visits instead.
    kept = where if within is None else [w for w in where if w is not converted]
    if direct and extra is None:
        found = page_visitor_buckets(query, plan, bucket, dims, kept, within, constant)
        if found is not None:
            return found
    if direct and needs_events(query, plan.parts):
        alone = events_alone(_event_rows(query, plan, bucket, dims, kept, direct=True), within)
        if alone is not None:
            return alone
    if direct and needs_events(query, plan.parts) and not _on_events(plan):
        event_where, visit_where = _split_filters(query)
        facts = matched_visit_facts(query, bucket, dims, event_where).where(*where, *visit_where)
        sub = facts.subquery("facts")
        keys = [sub.c[dim_key(i)] for i in range(len(dims))]
        return group_facts(sub, keys, plan.parts, nested=True)
    if needs_events(query, plan.parts):
        return _event_rows(query, plan, bucket, dims, where, direct=direct)
    flt = compile_filters(column_filters(query), dimension_column)
    facts = visit_facts(visits, bucket, dims).where(*where, *([] if flt is None else [flt]))
    if direct and _counts_revisitors(query, plan):
        facts = on_stored_visits(facts).add_columns(stored_visits.c[REVISITS].label("revisits"))
    sub = facts.subquery("facts")
    keys = [sub.c[dim_key(i)] for i in range(len(dims))]
    return group_facts(sub, keys, plan.parts, nested=direct)


def _on_events(plan: Plan) -> bool:
    return any(DIMENSIONS[d].is_event for d in plan.dims)


def _converting_join(query: Query, plan: Plan) -> Subquery | None:
    """For DuckDB, a breakdown by an event dimension under a goal filter (`is`): the
    converting visits' ids for `events_alone` to join the events to, in place of the
    goal's IN clause: DuckDB's hash join runs faster than its semi-join (the popular goal
    by page at 1M, DuckDB alone: 196 -> 161 ms CPU at load 8). None otherwise: `is not`,
    and visit reports, whose rows may be read in the events' order (`visit_ordered_buckets`),
    which a join need not keep.

    TRICKY: exact only because `stored_converting_ids` gives each visit once, as
    `visit_ordered_buckets` counts each once: a visit's events are together in its part,
    read in order."""
    flt = query.filter_for(GOAL)
    if flt is None or flt.op != "is" or not _on_events(plan):
        return None
    return stored_converting_ids(query, selected_goals(query, flt)).subquery("converting")


def _event_rows(
    query: Query,
    plan: Plan,
    bucket: ColumnElement,
    dims: list[ColumnElement],
    where: Sequence[ColumnElement[bool]],
    *,
    direct: bool,
) -> Select:
    """Per-bucket rows from events joined to their visit, filtered by `where` and the
    query's column filters."""
    flt = compile_filters(column_filters(query), dimension_column)
    where = [*where, *([] if flt is None else [flt])]
    direct_parts = set(plan.parts) <= DIRECT_PARTS
    if direct and not _on_events(plan):
        revisits = _counts_revisitors(query, plan)
        if not direct_parts or (revisits and _runs_per_visit(query, plan.parts)):
            return visit_ordered_buckets(query, bucket, dims, plan.parts, where, revisits=revisits)
    if direct_parts:
        return event_buckets(query, visits, bucket, dims, plan.parts, where, nested=direct)
    if _on_events(plan):
        facts = event_facts(query, visits, bucket, dims, plan.parts).where(*where)
    else:
        facts = visit_sums_joined(query, bucket, dims, where, plan.parts)
    sub = facts.subquery("facts")
    keys = [sub.c[dim_key(i)] for i in range(len(dims))]
    return group_facts(sub, keys, plan.parts, nested=direct)


def visit_ordered_buckets(
    query: Query,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    parts: Sequence[str],
    where: Sequence[ColumnElement[bool]],
    *,
    revisits: bool = False,
) -> Select:
    """`group_facts` over `event_facts` without event dimensions, for DuckDB over the
    columnar store's events, without grouping the events by visit: a visit's facts are
    taken from its first matching event, the one whose previous matching event (lag over
    the scan) belongs to another visit. `revisits` (`_buckets_within_parts`): only the
    visitors with other visits in their part are grouped by visitor, the others counted
    by their visit's first matching event (the headline under a broad page filter at 1M,
    870k events: DuckDB CPU 110 -> 88 ms). Pageviews and visits' facts alone under
    pageview filters: one row per visit (`_visit_runs`).

    TRICKY: exact only because each part keeps a visit's events together (ordered by
    visit, tracker.columnar.export), a visit is in one part, and DuckDB streams a window
    with an empty OVER () in the scan's order (order preserved, whatever its threads).
    Grouping 870k matching events by visit was two thirds of an event-filtered headline."""
    if _runs_per_visit(query, parts):
        return _visit_runs(query, bucket, dims, parts, where, revisits=revisits)
    first = case(
        (func.lag(events.c.visit_id).over().is_distinct_from(events.c.visit_id), 1), else_=0
    )
    added = _event_parts(query)
    rows = select(
        *(d.label(dim_key(i)) for i, d in enumerate(dims)),
        bucket.label("bucket"),
        visits.c.visitor_id.label("visitor_id"),
        first.label("first"),
        _bounce(visits).label("bounce"),
        visits.c.duration_ms.label("duration_ms"),
        *(added[name].label(name) for name in ("pageviews", "events", "revenue")),
        added["time_on_page_ms"].label("time_on_page_ms"),
        added["scroll"].label("scroll"),
        *([stored_events.c.visitor_revisits.label("revisits")] if revisits else []),
    ).select_from(_joined(visits))
    event_rows = _of_kinds(rows.where(*where), query).subquery("event_rows")
    c = event_rows.c
    exprs = {
        "visits": lambda: func.sum(c.first),
        "bounces": lambda: func.sum(c.first * c.bounce),
        "duration_ms": lambda: func.sum(c.first * c.duration_ms),
        "pageviews": lambda: func.sum(c.pageviews),
        "events": lambda: func.sum(c.events),
        "revenue_minor": lambda: func.sum(c.revenue),
        "time_on_page_ms": lambda: func.sum(c.time_on_page_ms),
        "time_on_page_known": lambda: func.count(c.time_on_page_ms),
        "scroll_sum": lambda: func.sum(c.scroll),
        "scroll_known": lambda: func.count(c.scroll),
    }
    sums = [exprs[p]().label(p) for p in parts if p != "visitors"]
    return _summed_per_visitor(event_rows, len(dims), parts, sums, c.first if revisits else None)


def _summed_per_visitor(
    source: FromClause,
    n_dims: int,
    parts: Sequence[str],
    sums: list[Label[Any]],
    first: ColumnElement | int | None,
) -> Select:
    """`per_visitor` over `source`'s rows summed (`sums`) per dimension values, bucket and
    visitor; with `first` (1 on a visit's one row), by visitor only for the visitors with
    other visits in their part (its `revisits`, `_revisitor_grouping`)."""
    c = source.c
    keys = [c[dim_key(i)] for i in range(n_dims)]
    visitor: ColumnElement = c.visitor_id
    if first is not None:
        visitor, once = _revisitor_grouping(c.revisits, c.visitor_id, first)
        sums = [*sums, once]
    rows = select(*keys, c.bucket, visitor.label("visitor_id"), *sums)
    rows = rows.group_by(*keys, c.bucket, visitor)
    return per_visitor(rows.subquery("per_visitor"), n_dims, parts)


# Parts `_visit_runs` counts: the visit's own facts, and its matching pageviews.
_RUN_PARTS = {"visitors", "visits", "bounces", "pageviews", "duration_ms"}


def _runs_per_visit(query: Query, parts: Collection[str]) -> bool:
    """Whether a report without event dimensions counts only visits' facts and matching
    pageviews (`_visit_runs`). Visitors and pageviews alone are counted so too where
    visitors are grouped by id only if they came back (the 10M bench dataset by day under
    `event:page==/*`: 8.9M pageviews grouped per day and visitor 680-1,060 ms; 4M visits'
    runs, the returning visitors' grouped, 490-590; every visitor grouped, 740-810: not
    done)."""
    return set(parts) <= _RUN_PARTS and event_kinds(query) == ("pageview",)


def _visit_runs(
    query: Query,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    parts: Sequence[str],
    where: Sequence[ColumnElement[bool]],
    *,
    revisits: bool,
) -> Select:
    """`visit_ordered_buckets` where every matching event is a pageview and only the
    visits' facts and pageviews are counted: one row per matching visit is grouped, not one
    per matching pageview. A visit's facts come from its last matching row (the next
    one's visit is another, or there is none), its pageviews are the length of its run of
    matching rows: that row's number less the previous visit's last row's, both streamed in
    the scan's order. At 10M, a broad page filter's headline: 8.9M rows grouped become 4M
    (DuckDB alone 1,070-1,210 -> 950-1,000 ms)."""
    visit_id = events.c.visit_id
    rows = select(
        *(d.label(dim_key(i)) for i, d in enumerate(dims)),
        bucket.label("bucket"),
        visits.c.visitor_id.label("visitor_id"),
        func.lead(visit_id).over().is_distinct_from(visit_id).label("last"),
        func.row_number().over().label("row"),
        _bounce(visits).label("bounce"),
        visits.c.duration_ms.label("duration_ms"),
        *([stored_events.c.visitor_revisits.label("revisits")] if revisits else []),
    ).select_from(_joined(visits))
    r = _of_kinds(rows.where(*where), query).subquery("event_rows").c
    ends = select(*r).where(r.last).subquery("run_ends").c
    length = ends.row - func.coalesce(func.lag(ends.row).over(), 0)
    runs_rows = select(*ends, length.label("pageviews")).subquery("runs")
    runs = runs_rows.c
    sums = {
        "visits": func.count(),
        "bounces": func.sum(runs.bounce),
        "duration_ms": func.sum(runs.duration_ms),
        "pageviews": func.sum(runs.pageviews),
    }
    summed = [sums[p].label(p) for p in parts if p != "visitors"]
    return _summed_per_visitor(runs_rows, len(dims), parts, summed, 1 if revisits else None)


# Parts `page_visitor_buckets` counts.
_PAGE_VISITOR_PARTS = {"visitors", "pageviews"}


def page_visitor_buckets(
    query: Query,
    plan: Plan,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    where: Sequence[ColumnElement[bool]],
    within: Subquery | None = None,
    constant: Collection[str] = (),
) -> Select | None:
    """Per-bucket visitors and pageviews of a page breakdown, for DuckDB over the columnar
    store's events, counting a page's visitors without grouping its pageviews by visitor
    (two thirds of a page breakdown under a broad visit filter: 810k groups of 841k rows).
    `within`: the only visits read (`events_alone`). `constant`: the visit columns the
    same for all of a visitor's visits of a UTC day in every part read.

    Where the report keeps or drops all of a visitor's pageviews of a path on a UTC day
    together (`_keeps_whole_visitor_days`), a page's visitors are its pageviews flagged
    the first of the path among their visitor's that day (`visitor_first_of_path`): no
    grouping by visitor at all.

    A visitor who viewed the path in one visit of the part is counted by that visit's
    first pageview of the path (`first_of_path`); only the pageviews of a path viewed in
    several of its visitor's visits (REPEATS_PATH) are grouped by visitor. Exact when every
    row of a (visit, path) is kept or dropped together: filters on the visit (a goal
    filter keeps or drops whole visits) and on the page only, pageviews only; and when a
    bucket never holds two parts' visits (parts are whole UTC days): a zone at UTC offset
    0 over the period (whole hours for an hourly bucket). None otherwise, or for other
    parts. Pages are grouped by their path's number, and named last (`_named_paths`)."""
    parts = set(plan.parts)
    if "visitors" not in parts or not parts <= _PAGE_VISITOR_PARTS:
        return None
    if event_kinds(query) != ("pageview",) or not _on_events(plan):
        return None
    named = [*plan.dims, *(f.dimension for f in column_filters(query))]
    if any(DIMENSIONS[n].is_event and n != PAGE for n in named):
        return None
    if not _buckets_within_parts(query, plan):
        return None
    flt = compile_filters(column_filters(query), dimension_column)
    where = [*where, *([] if flt is None else [flt])]
    dims = [
        stored_events.c[PATH_ID] if n == PAGE else d for n, d in zip(plan.dims, dims, strict=True)
    ]
    if within is None and _keeps_whole_visitor_days(query, plan, named, constant):
        found = _visitor_page_buckets(query, plan, bucket, dims, where)
    else:
        found = _revisitor_page_buckets(query, plan, bucket, dims, where, within)
    return None if found is None else _named_paths(found, plan)


def _revisitor_page_buckets(
    query: Query,
    plan: Plan,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    where: Sequence[ColumnElement[bool]],
    within: Subquery | None,
) -> Select | None:
    """`page_visitor_buckets` grouping by visitor only the pageviews of a path their
    visitor viewed in another of its visits in their part (REPEATS_PATH), counting the
    others by their visit's first pageview of the path (`first_of_path`): such a visitor
    counts for the path if and only if that one visit is kept. On the wide bench dataset
    3,700 of the 188,000 pageviews of returning visitors (DuckDB alone, `utm_campaign!=`
    by page, 111-136 -> 83-94 ms)."""
    # The others' rows fall in one group per dimension values and bucket (a NULL
    # visitor), and count by the flag; across buckets, in one group per dimension values
    # (their bucket NULL too).
    across = query.time_dimension is None
    repeats = stored_events.c[REPEATS_PATH]
    revisitor = case((repeats, visits.c.visitor_id))
    day = case((repeats, bucket)) if across else bucket
    once = and_(stored_events.c.first_of_path, ~repeats)
    rows = select(
        *(d.label(dim_key(i)) for i, d in enumerate(dims)),
        day.label("bucket"),
        revisitor.label("visitor_id"),
        func.sum(case((once, 1), else_=0)).label("once"),
        func.count().label("pageviews"),
    ).select_from(_joined(visits))
    rows = _of_kinds(rows.where(*where).group_by(*dims, day, revisitor), query)
    alone = events_alone(rows, within)
    if alone is None:
        return None
    return per_visitor(alone.subquery("per_visitor"), len(dims), plan.parts, across_buckets=across)


def _named_paths(found: Select, plan: Plan) -> Select:
    """`found`'s rows, grouped by the number of each page's path in the site's path
    dictionary (`stored_paths`), with the path in its place: DuckDB groups integers faster
    than texts (the wide dataset's 100k paths, a page breakdown under a visit filter:
    165-215 -> 109-134 ms of DuckDB CPU), and names only the rows grouped."""
    rows = found.subquery("by_path_id")
    columns = [rows.c[name] for name in rows.c.keys()]
    source: FromClause = rows
    for i, name in enumerate(plan.dims):
        if name == PAGE:
            key = rows.c[dim_key(i)]
            source = source.outerjoin(stored_paths, stored_paths.c[PATH_ID] == key)
            columns[i] = stored_paths.c.path.label(dim_key(i))
    return select(*columns).select_from(source)


def _keeps_whole_visitor_days(
    query: Query, plan: Plan, named: Sequence[str], constant: Collection[str]
) -> bool:
    """Whether a page breakdown keeps or drops all of a visitor's pageviews of a path on
    a UTC day together, and its buckets are those days: no goal filter (it keeps whole
    visits, not visitors), its dimensions and filters on the page or on visit columns the
    same for all of a visitor's visits of a day (`constant`); daily buckets in a zone at
    UTC offset 0."""
    if query.filter_for(GOAL) is not None or plan.bucket != "day":
        return False
    return all(
        n == PAGE or (DIMENSIONS[n].scope == "visit" and DIMENSIONS[n].column in constant)
        for n in named
    )


def _visitor_page_buckets(
    query: Query,
    plan: Plan,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    where: Sequence[ColumnElement[bool]],
) -> Select | None:
    """`page_visitor_buckets` counting each visitor by its first pageview of the path that
    UTC day (`visitor_first_of_path`), grouped by dimension values (and bucket) alone."""
    across = query.time_dimension is None
    keys = [
        *(d.label(dim_key(i)) for i, d in enumerate(dims)),
        _bucket_or_all(bucket, across).label("bucket"),
    ]
    group = [*dims, *([] if across else [bucket])]
    first = case((stored_events.c.visitor_first_of_path, 1), else_=0)
    sums = {"visitors": func.sum(first), "pageviews": func.count()}
    rows = select(*keys, *(sums[p].label(p) for p in plan.parts)).select_from(_joined(visits))
    return events_alone(_of_kinds(rows.where(*where).group_by(*group), query))


def _counts_revisitors(query: Query, plan: Plan) -> bool:
    """Whether a visit report over the store's visits or events groups by visitor only the
    visitors with other visits in their part (`_revisitor_grouping`): it counts visitors,
    and its buckets lie within parts."""
    return "visitors" in plan.parts and _buckets_within_parts(query, plan)


def _revisitor_grouping(
    revisits: ColumnElement, visitor_id: ColumnElement, first: ColumnElement | int
) -> tuple[ColumnElement, Label[Any]]:
    """The visitor to group by when only visitors with other visits in their part
    (`revisits`) are grouped by id, the others falling in a NULL visitor's row; and the
    `once` sum `per_visitor` counts those others by (`first`: 1 on a visit's one row)."""
    once = func.sum(case((revisits, 0), else_=first)).label("once")
    return case((revisits, visitor_id)), once


def _buckets_within_parts(query: Query, plan: Plan) -> bool:
    """Whether every bucket of the query lies within one UTC day, so within one part of
    the columnar store (whole UTC days), whose flags (`visitor_revisits`) see only its
    own visits: a zone at UTC offset 0 over the period, whole hours for hourly buckets."""
    period = query.period
    unit = HOUR_MS if plan.bucket == "hour" else DAY_MS
    offsets = offset_segments(period.start_ms, period.end_ms, query.site.tz)
    return not any(off % unit for _, off in offsets)


def converting_visit_buckets(
    query: Query,
    plan: Plan,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    where: Sequence[ColumnElement[bool]],
) -> Select | None:
    """Per-bucket rows of a visit report under a goal filter (`is`), for DuckDB over the
    columnar store's events: the converting visits' facts taken from each one's first
    matching event (its copies of them), the one whose previous matching event (lag over
    the scan) belongs to another visit; no lookup of their ids among every visit or event.
    Exact as `visit_ordered_buckets` is (a visit's events together, in one part). `where`:
    on the visit, the goal aside. None for `is not`, or without the copies. Visitors
    without other visits in their part are counted without grouping by visitor, as in
    `visit_ordered_buckets`."""
    flt = query.filter_for(GOAL)
    if flt is None or flt.op != "is":
        return None
    first = case(
        (func.lag(events.c.visit_id).over().is_distinct_from(events.c.visit_id), 1), else_=0
    )
    on_visits = compile_filters(column_filters(query), dimension_column)
    revisits = _counts_revisitors(query, plan)
    rows = (
        visit_facts(visits, bucket, list(dims))
        .add_columns(first.label("first"))
        .add_columns(*([stored_events.c.visitor_revisits.label("revisits")] if revisits else []))
        .select_from(_joined(visits))
        .where(
            *where,
            *([] if on_visits is None else [on_visits]),
            any_matches(selected_goals(query, flt)),
        )
    )
    alone = events_alone(rows)
    if alone is None:
        return None
    matched = alone.subquery("matched")
    facts = select(matched).where(matched.c.first == 1).subquery("facts")
    keys = [facts.c[dim_key(i)] for i in range(len(dims))]
    return group_facts(facts, keys, plan.parts, nested=True)


# The visit's columns the columnar store's events carry as `visit_<name>`
# (tracker.columnar.export): its facts and every visit dimension, so DuckDB reads every
# event report from events alone, without the join to visits (the join was half the time
# of a page-filtered report, and a visit filter on a page breakdown needed it), and a visit
# report under a goal from the goal's matching events (`converting_visit_buckets`).
VISIT_COPIES = (
    "started_ms",
    "visitor_id",
    "is_bounce",
    "duration_ms",
    "pageviews",
    *dict.fromkeys(d.column for d in DIMENSIONS.values() if d.scope == "visit"),
)
# The column of the columnar store's visits (and, as `visit_goals`, of their events) whose
# bit i says the visit converts on its part's i-th goal (tracker.columnar.layout.Part.goals),
# matched by the builder on the database (tracker.columnar.export).
STORED_GOALS = "goals"
# The visit's columns as the columnar store's events name them: the visit's id and site
# are the event's own.
_COPY_NAMES = {
    "id": "visit_id",
    "site_id": "site_id",
    **{n: f"visit_{n}" for n in (*VISIT_COPIES, STORED_GOALS)},
}
# The flag of a visit whose visitor has other visits in its part, which the columnar
# store's visits and events carry (`_revisitor_grouping`).
REVISITS = "visitor_revisits"
# The columns the columnar store's events carry besides their own and their visit's copies
# (tracker.columnar.export), read by `page_visitor_buckets`.
REPEATS_PATH = "visitor_repeats_path"
STORED_FLAGS = ("first_of_path", REVISITS, "visitor_first_of_path", REPEATS_PATH)
# The column of the columnar store's events holding their path's number in the site's
# path dictionary, `stored_paths` (tracker.columnar.paths): page breakdowns group by it.
PATH_ID = "path_id"
stored_visits = Table(
    "visits",
    MetaData(),
    *(Column(c.name, c.type) for c in visits.c),
    Column(STORED_GOALS, BigInteger),
    Column(REVISITS, Boolean),
)
stored_events = Table(
    "events",
    MetaData(),
    *(Column(c.name, c.type) for c in events.c),
    *(Column(f"visit_{n}", visits.c[n].type) for n in VISIT_COPIES),
    *(Column(name, Boolean) for name in STORED_FLAGS),
    Column(_COPY_NAMES[STORED_GOALS], BigInteger),
    Column(PATH_ID, BigInteger),
)
stored_paths = Table(
    "paths",
    MetaData(),
    Column(PATH_ID, BigInteger),
    Column("path", events.c.path.type),
)


def stored_goal_clause(query: Query) -> ColumnElement[bool] | None:
    """The visits a goal filter keeps, by the goals the columnar store's visits carry
    (`stored_visits`): those with a bit of the filter's goals set (`is`), or none
    (`is not`). None without a goal filter, or when one of its goals has no bit the same
    in every part read (`GoalSpec.stored_bit`): those are matched on the events."""
    flt = query.filter_for(GOAL)
    if flt is None:
        return None
    bits = [g.stored_bit for g in selected_goals(query, flt)]
    if None in bits:
        return None
    mask = sum(1 << typed(int, bit) for bit in set(bits))
    converts = stored_visits.c[STORED_GOALS].bitwise_and(literal(mask, BigInteger)) != 0
    return converts if flt.op == "is" else ~converts


def on_stored_visits(stmt: Select) -> Select:
    """`stmt` reading the columnar store's visits (`stored_visits`, which carry their goals)
    where it reads the database's visits table."""

    def replaced(element: Any, **_: Any) -> Any:
        if element is visits:
            return stored_visits
        if isinstance(element, Column) and element.table is visits:
            return stored_visits.c[element.name]
        return None

    return typed(Select, replacement_traverse(stmt, {}, replaced))


def events_alone(stmt: Select, within: Subquery | None = None) -> Select | None:
    """`stmt`, over events joined to their visit, reading the visit's columns from the
    copies the columnar store's events carry; None when it needs another of the visit's.
    `within`: the ids (`visit_id`, each once) of the only visits whose events are read,
    joined to them."""
    missing = False
    source: FromClause = stored_events
    if within is not None:
        source = stored_events.join(within, within.c.visit_id == stored_events.c.visit_id)

    def replaced(element: Any, **_: Any) -> Any:
        nonlocal missing
        if isinstance(element, Join) and element.left is events and element.right is visits:
            return source
        if element is events:
            return stored_events
        if isinstance(element, Column) and element.table is events:
            return stored_events.c[element.name]
        if isinstance(element, Column) and any(element.table is t for t in (visits, stored_visits)):
            name = _COPY_NAMES.get(element.name)
            missing = missing or name is None
            return None if name is None else stored_events.c[name]
        return None

    alone = replacement_traverse(stmt, {}, replaced)
    return None if missing else typed(Select, alone)


def stored_converting_ids(query: Query, goals: Sequence[GoalSpec]) -> Select:
    """Ids of the period's visits converting on `goals` among the columnar store's events,
    for DuckDB: the goals matched on events alone (no join to visits, no goal_hits), one
    row per visit (its first matching event, as `visit_ordered_buckets` finds it: a smaller
    set to look ids up in); the store's views hold the period's visits only. As a set of
    ids, exact whatever the scan's order (each run of a visit's matching events has a first
    row); each id once where a visit's events are read together (`_converting_join`)."""
    first = func.lag(events.c.visit_id).over().is_distinct_from(events.c.visit_id)
    rows = (
        select(events.c.visit_id, first.label("first"))
        .select_from(_joined(visits))
        .where(any_matches(goals))
    )
    alone = events_alone(rows)
    assert alone is not None  # the visit's start is copied into its events
    matched = alone.subquery("matched")
    return select(matched.c.visit_id).where(matched.c.first)


class unindexed(FunctionElement[Any]):  # noqa: N801 - a SQL construct
    """A column SQLite may not use an index for (`+column`); itself elsewhere."""

    inherit_cache = True

    def __init__(self, column: ColumnElement) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed(element: unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


def _bounce(source: FromClause) -> ColumnElement:
    return case((source.c.is_bounce, 1), else_=0)


def visit_facts(source: FromClause, bucket: ColumnElement, dims: list[ColumnElement]) -> Select:
    """One row per visit of `source` (visits, or a copy): its facts, bucket and dimensions
    (named, so they keep their names read from the columnar store's copies)."""
    return select(
        *(d.label(dim_key(i)) for i, d in enumerate(dims)),
        bucket.label("bucket"),
        source.c.visitor_id.label("visitor_id"),
        _bounce(source).label("bounce"),
        source.c.duration_ms.label("duration_ms"),
        source.c.pageviews.label("pageviews"),
    )


def event_kinds(query: Query) -> tuple[str, ...] | None:
    """Kinds an event row must have: those every event dimension and filter agree on."""
    kinds: set[str] | None = None
    names = [*query.dimensions, *(f.dimension for f in column_filters(query))]
    for dim in (DIMENSIONS[n] for n in names):
        if dim.is_event and dim.kinds:
            kinds = set(dim.kinds) if kinds is None else kinds & set(dim.kinds)
    return None if kinds is None else tuple(sorted(kinds))


def _event_parts(query: Query) -> dict[str, ColumnElement]:
    """Per event row: what it adds to pageviews, events, revenue, times on page and scroll
    depths (a pageview's deepest reported scroll; NULL where it reported none)."""
    is_pageview = events.c.kind == "pageview"
    # Under a goal filter, `events` counts the goal's matching events (a visit may buy twice).
    counted = goal_events(query)
    if counted is None:
        counted = events.c.kind != "engagement"
    paid = counted if query.filter_for(GOAL) else events.c.kind == "event"
    return {
        "pageviews": case((is_pageview, 1), else_=0),
        "events": case((counted, 1), else_=0),
        "revenue": case((paid, events.c.revenue_minor)),
        "time_on_page_ms": case((is_pageview, events.c.time_on_page_ms)),
        "scroll": case((is_pageview, events.c.scroll)),
    }


def _joined(source: FromClause) -> FromClause:
    return events.join(source, events.c.visit_id == source.c.id)


def _of_kinds(stmt: Select, query: Query) -> Select:
    kinds = event_kinds(query)
    if kinds is None:
        return stmt
    return stmt.where(events.c.kind.in_(kinds) if kinds else false())


# The columns of `event_facts` each part is summed from (`group_facts`); `visits` counts
# its rows.
_FACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "visitors": ("visitor_id",),
    "visits": (),
    "bounces": ("bounce",),
    "duration_ms": ("duration_ms",),
    "pageviews": ("pageviews",),
    "events": ("events",),
    "revenue_minor": ("revenue",),
    "time_on_page_ms": ("time_on_page_ms",),
    "time_on_page_known": ("time_on_page_known",),
    "scroll_sum": ("scroll_sum",),
    "scroll_known": ("scroll_known",),
}


def _fact_columns(parts: Sequence[str] | None) -> set[str] | None:
    """The columns `parts` are summed from, and the visitor (`group_facts` nested sums
    per visitor whatever the parts); None: every one."""
    if parts is None:
        return None
    return {"visitor_id", *(name for p in parts for name in _FACT_COLUMNS[p])}


def event_facts(
    query: Query,
    source: FromClause,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    parts: Sequence[str] | None = None,
) -> Select:
    """Events joined to their visit in `source`, one row per visit and dimension values.

    Visit facts (visitor, bounce, duration) are taken once per visit, however many of its
    events match; pageviews, events and times on page are counted from the events.
    `parts`: only the columns those parts are summed from (SQLite computes every column
    of a grouped subquery, read or not: a page breakdown's took a quarter longer with all).
    """
    wanted = _fact_columns(parts)
    # Group by the visit and event-level values only; whatever depends on the visit alone
    # rides along as max() (cheaper than grouping by it, and valid SQL on PostgreSQL).
    event_keys = [d for d in dims if _is_event_column(d)]
    per_visit = {
        "visitor_id": func.max(source.c.visitor_id),
        "bounce": func.max(_bounce(source)),
        "duration_ms": func.max(source.c.duration_ms),
    }
    once = [
        *(
            (d if _is_event_column(d) else func.max(d)).label(dim_key(i))
            for i, d in enumerate(dims)
        ),
        func.max(bucket).label("bucket"),
        *(v.label(k) for k, v in per_visit.items() if wanted is None or k in wanted),
    ]
    stmt = select(*once, *_event_sums(query, wanted)).select_from(_joined(source))
    return _of_kinds(stmt.group_by(*event_keys, source.c.id), query)


def visit_sums_joined(
    query: Query,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    where: Sequence[ColumnElement[bool]],
    parts: Sequence[str],
) -> Select:
    """`event_facts` without an event dimension, as the databases run it faster: the
    matching events (`where`, on them and their visit) summed per visit id first, then
    joined to their visit for its facts, read as they are rather than as max() over its
    events (SQLite, a day of the bench's 1M dataset, `event:page!=/` headline: 39 -> 24 ms
    of CPU). Only the columns `parts` are summed from, as `event_facts`."""
    wanted = _fact_columns(parts)
    per_visit = select(events.c.visit_id, *_event_sums(query, wanted)).select_from(_joined(visits))
    per_visit = _of_kinds(per_visit.where(*where).group_by(events.c.visit_id), query)
    summed = per_visit.subquery("summed")
    facts = {
        "visitor_id": visits.c.visitor_id,
        "bounce": _bounce(visits),
        "duration_ms": visits.c.duration_ms,
    }
    return select(
        *(d.label(dim_key(i)) for i, d in enumerate(dims)),
        bucket.label("bucket"),
        *(v.label(k) for k, v in facts.items() if wanted is None or k in wanted),
        *(c for c in summed.c if c.name != "visit_id"),
    ).select_from(visits.join(summed, summed.c.visit_id == visits.c.id))


def summed_visit_facts(
    query: Query, source: FromClause, bucket: ColumnElement, dims: Sequence[ColumnElement]
) -> Select:
    """`event_facts` without an event dimension, for a source of few visits copied apart
    (the rollup build's chunk): the events summed per visit id first, then joined to their
    visit, whose columns are read as they are, not as max() per visit (1M events, a week:
    0.97 -> 0.61 s of SQLite's CPU with 18 visit dimensions)."""
    sums = _event_sums(query)
    per_visit = select(events.c.visit_id, *sums).select_from(_joined(source))
    summed = _of_kinds(per_visit.group_by(events.c.visit_id), query).subquery("summed")
    return _beside_their_sums(source, summed, bucket, dims)


def _beside_their_sums(
    source: FromClause, summed: Subquery, bucket: ColumnElement, dims: Sequence[ColumnElement]
) -> Select:
    """A row per visit of `source` that has one in `summed` (its events' sums, by
    visit_id): the visit's dimensions, bucket and facts beside those sums."""
    return select(
        *(d.label(dim_key(i)) for i, d in enumerate(dims)),
        bucket.label("bucket"),
        source.c.visitor_id,
        _bounce(source).label("bounce"),
        source.c.duration_ms,
        *(c for c in summed.c if c.name != "visit_id"),
    ).select_from(source.join(summed, summed.c.visit_id == source.c.id))


def _event_sums(query: Query, wanted: set[str] | None = None) -> list[ColumnElement]:
    """A visit's pageviews, events, revenue, times on page and scroll depths, over its
    matching events (`wanted`: only those named)."""
    added = _event_parts(query)
    sums = [
        func.sum(added["pageviews"]).label("pageviews"),
        func.sum(added["events"]).label("events"),
        func.coalesce(func.sum(added["revenue"]), 0).label("revenue"),
        func.sum(added["time_on_page_ms"]).label("time_on_page_ms"),
        func.count(added["time_on_page_ms"]).label("time_on_page_known"),
        func.sum(added["scroll"]).label("scroll_sum"),
        func.count(added["scroll"]).label("scroll_known"),
    ]
    return [s for s in sums if wanted is None or s.name in wanted]


def _split_filters(query: Query) -> tuple[list[ColumnElement[bool]], list[ColumnElement[bool]]]:
    """The query's column filters: those on events, those on visits."""
    filters = column_filters(query)

    def clauses(on_events: bool) -> list[ColumnElement[bool]]:
        kept = tuple(f for f in filters if DIMENSIONS[f.dimension].is_event == on_events)
        clause = compile_filters(kept, dimension_column)
        return [] if clause is None else [clause]

    return clauses(True), clauses(False)


def matched_visit_facts(
    query: Query,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    event_where: Sequence[ColumnElement[bool]],
) -> Select:
    """`event_facts` of a query without event dimensions, as DuckDB runs it faster: the
    matching events summed per visit first (grouped by its id alone), then joined to their
    visit. One row per visit with a matching event, its facts and those sums."""
    summed = _of_kinds(
        select(events.c.visit_id, *_event_sums(query))
        .where(*event_where)
        .group_by(events.c.visit_id),
        query,
    ).subquery("matched")
    return _beside_their_sums(visits, summed, bucket, dims)


# Parts `event_buckets` sums straight from events: distinct visitors, and what each event
# adds. Visits, bounces and durations are per visit: DuckDB counts them faster from
# `event_facts`'s row per visit than as distinct ids beside the visitors.
DIRECT_PARTS = EVENT_PARTS | {"visitors", "pageviews"}


def event_buckets(
    query: Query,
    source: FromClause,
    bucket: ColumnElement,
    dims: Sequence[ColumnElement],
    parts: Sequence[str],
    where: Sequence[ColumnElement[bool]] = (),
    *,
    nested: bool = True,
) -> Select:
    """Per-bucket rows straight from events joined to their visit in `source`, for parts
    in DIRECT_PARTS: what `group_facts` sums over `event_facts`, without a row per visit
    first. A visit's events share its bucket and visitor, so the distinct visitors are the
    same; the other parts add up per event. `nested`: distinct visitors counted as
    `per_visitor` does (DuckDB's count(DISTINCT) beside sums is a second aggregate and a
    join); else count(DISTINCT) in one grouping, which SQLite runs in half the time of
    `event_facts`'s row per visit and event values."""
    added = _event_parts(query)
    exprs = {
        "pageviews": lambda: func.sum(added["pageviews"]),
        "events": lambda: func.sum(added["events"]),
        "time_on_page_ms": lambda: func.sum(added["time_on_page_ms"]),
        "time_on_page_known": lambda: func.count(added["time_on_page_ms"]),
        "scroll_sum": lambda: func.sum(added["scroll"]),
        "scroll_known": lambda: func.count(added["scroll"]),
        "revenue_minor": lambda: func.sum(added["revenue"]),
    }
    keys = [*(d.label(dim_key(i)) for i, d in enumerate(dims)), bucket.label("bucket")]
    if not nested:

        def flat(part: str) -> ColumnElement:
            if part == "visitors":
                return func.count(source.c.visitor_id.distinct())
            if part in _VISITOR_SUMS:  # as `per_visitor` sums them: an empty sum is 0
                return _VISITOR_SUMS[part](added[_ADDED[part]])
            return exprs[part]()

        stmt = select(*keys, *(flat(p).label(p) for p in parts)).select_from(_joined(source))
        return _of_kinds(stmt.where(*where).group_by(*dims, bucket), query)
    sums = [exprs[p]().label(p) for p in parts if p != "visitors"]
    visitor = source.c.visitor_id.label("visitor_id")
    stmt = select(*keys, visitor, *sums).select_from(_joined(source)).where(*where)
    stmt = _of_kinds(stmt.group_by(*dims, bucket, source.c.visitor_id), query)
    return per_visitor(stmt.subquery("per_visitor"), len(dims), parts)


# The event row's value (`_event_parts`) each summed part of _VISITOR_SUMS adds up.
_ADDED = {"time_on_page_ms": "time_on_page_ms", "scroll_sum": "scroll", "revenue_minor": "revenue"}


# How the sums of `per_visitor`'s rows (one per dimension values, bucket and visitor) make
# each part: visitors are those rows, the rest add up (an empty sum of times is 0).
_VISITOR_SUMS: dict[str, Callable[[ColumnElement], ColumnElement]] = {
    "time_on_page_ms": lambda c: func.coalesce(func.sum(c), 0),
    "scroll_sum": lambda c: func.coalesce(func.sum(c), 0),
    "revenue_minor": lambda c: func.coalesce(func.sum(c), 0),
}


def per_visitor(
    rows: FromClause, n_dims: int, parts: Sequence[str], *, across_buckets: bool = False
) -> Select:
    """Per-bucket rows from `rows`, already summed per dimension values (d0..), bucket
    and visitor_id: distinct visitors are the rows with a visitor, the other parts sums.
    The same numbers as count(DISTINCT visitor_id) beside sums, in one aggregate less.
    Rows may carry `once`: visitors counted without their id, in rows of a NULL visitor
    (those with no other visit in their part, `visitor_revisits`). `across_buckets`: the
    buckets summed here already (`_bucket_or_all`)."""
    c = rows.c
    dims = [c[dim_key(i)] for i in range(n_dims)]

    def part(name: str) -> ColumnElement:
        if name == "visitors":
            counted = func.count(c.visitor_id)
            return counted + func.sum(c.once) if "once" in c else counted
        return _VISITOR_SUMS.get(name, func.sum)(c[name])

    bucket = _bucket_or_all(c.bucket, across_buckets)
    stmt = select(*dims, bucket.label("bucket"), *(part(p).label(p) for p in parts))
    return stmt.group_by(*dims, *([] if across_buckets else [bucket]))


def _bucket_or_all(bucket: ColumnElement, across: bool) -> ColumnElement:
    """The bucket rows are summed per; with `across`, one for all (0), for a report
    without a time dimension: `outer` sums its rows per dimension values whatever their
    bucket, so per-bucket rows only made a larger grouping (the wide dataset's page
    breakdowns: a row per page and day)."""
    return literal(0, BigInteger) if across else bucket


def _is_event_column(column: ColumnElement) -> bool:
    return getattr(column, "table", None) is events


def group_facts(
    facts: FromClause, dims: Sequence[ColumnElement], parts: Sequence[str], *, nested: bool = False
) -> Select:
    """Per-visit facts summed per dimension values (columns of `facts`) and bucket.
    `nested`: summed per visitor first (`per_visitor`), the form DuckDB runs faster, `dims`
    being `facts`' d0.. columns; where `facts` carry `revisits` (the store's
    `visitor_revisits`), by visitor only for those."""
    c = facts.c
    exprs = {
        "visitors": lambda: func.count(c.visitor_id.distinct()),
        "visits": lambda: func.count(),
        "bounces": lambda: func.sum(c.bounce),
        "pageviews": lambda: func.sum(c.pageviews),
        "events": lambda: func.sum(c.events),
        "duration_ms": lambda: func.sum(c.duration_ms),
        "time_on_page_ms": lambda: func.coalesce(func.sum(c.time_on_page_ms), 0),
        "time_on_page_known": lambda: func.sum(c.time_on_page_known),
        "scroll_sum": lambda: func.coalesce(func.sum(c.scroll_sum), 0),
        "scroll_known": lambda: func.sum(c.scroll_known),
        "revenue_minor": lambda: func.sum(c.revenue),
    }
    keys = [*(d.label(dim_key(i)) for i, d in enumerate(dims)), c.bucket]
    if not nested:
        stmt = select(*keys, *(exprs[p]().label(p) for p in parts))
        return stmt.group_by(*dims, c.bucket)
    if "time_on_page_ms" in parts:
        exprs["time_on_page_ms"] = lambda: func.sum(c.time_on_page_ms)
    if "scroll_sum" in parts:
        exprs["scroll_sum"] = lambda: func.sum(c.scroll_sum)
    sums = [exprs[p]().label(p) for p in parts if p != "visitors"]
    first = 1 if "revisits" in c else None  # a row per visit
    return _summed_per_visitor(facts, len(dims), parts, sums, first)


def _time_key(query: Query, bucket: ColumnElement) -> ColumnElement:
    if query.time_dimension == "time:week":
        # Day 0 (1970-01-01) was a Thursday: (n + 3) % 7 is the weekday, Monday = 0.
        return bucket - (bucket + 3) % 7
    if query.time_dimension == "time:month":
        starts = _month_starts(query.period.start, query.period.end)
        whens = [(bucket >= n, literal(n)) for n in reversed(starts[1:])]
        return case(*whens, else_=literal(starts[0])) if whens else literal(starts[0])
    return bucket


def _month_starts(start: date, end: date) -> list[int]:
    starts, day = [], month_start(start)
    while day <= end:
        starts.append(day_number(day))
        day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return starts


def outer(query: Query, plan: Plan, source: Select | CompoundSelect) -> Select:
    """Sum the per-bucket rows by dimension, order and page them (LIMIT n+1: is there more?)."""
    src = source.subquery("buckets")
    sums = {p: cast(func.sum(src.c[p]), BigInteger) for p in plan.parts}
    keys: dict[str, ColumnElement] = {}
    non_time = iter(range(len(plan.dims)))
    for name in query.dimensions:
        if DIMENSIONS[name].is_time:
            keys[name] = _time_key(query, src.c.bucket)
        else:
            keys[name] = src.c[dim_key(next(non_time))]
    labelled = [expr.label(f"k{i}") for i, expr in enumerate(keys.values())]
    stmt = select(*labelled, *(s.label(p) for p, s in sums.items())).group_by(*keys.values())
    stmt = stmt.order_by(*_order(query, keys, sums))
    if query.limit:
        stmt = stmt.limit(query.limit + 1).offset(query.offset)
    return stmt


def _order(
    query: Query, keys: Mapping[str, ColumnElement], sums: Mapping[str, ColumnElement]
) -> list[UnaryExpression]:
    order = list(query.order_by)
    if not order:
        if query.time_dimension:
            order = [(query.time_dimension, "asc")]
        else:
            order = [(query.metrics[0], "desc")]
    clauses = []
    for name, direction in order:
        expr = keys[name] if name in keys else METRICS[name].sort_key(sums)
        clauses.append(
            expr.desc().nulls_last() if direction == "desc" else expr.asc().nulls_first()
        )
    # Ties break on the dimension values so pages never overlap or skip rows.
    clauses.extend(k.asc() for k in keys.values())
    return clauses


# What a goal's own events can answer without reading the rest of its converting visits.
GOAL_COUNTS = frozenset({"visitors", "visits", "conversions", "events"})


def goal_counts(query: Query) -> Select | None:
    """Visitors, conversions and events of the one goal the query filters on, from that
    goal's matches alone (the Goals card); None where the full report is needed (other
    dimensions, event filters, other metrics). Same numbers as the full report: visitors
    are counted per day and summed, conversions are distinct visits."""
    flt = query.filter_for(GOAL)
    plain = column_filters(query)
    if (
        query.dimensions
        or flt is None
        or flt.op != "is"
        or len(flt.values) != 1
        or not set(query.metrics) <= GOAL_COUNTS
        or any(DIMENSIONS[f.dimension].is_event for f in plain)
    ):
        return None
    (goal,) = selected_goals(query, flt)
    summed = None if plain else daily_counts(query, goal)
    if summed is not None:
        return summed
    found = goal_matches(query, goal).subquery("found")
    stmt = select(found.c.visitor_id, found.c.visit_id, found.c.started_ms)
    on_visits = compile_filters(plain, dimension_column)
    if on_visits is not None:
        stmt = stmt.join(visits, visits.c.id == found.c.visit_id).where(on_visits)
    day = bucket_expr(found.c.started_ms, Plan((), (), "day"), query)
    hits = stmt.add_columns(day.label("day")).subquery("hits")
    per_day = (
        select(
            func.count(hits.c.visitor_id.distinct()).label("visitors"),
            func.count(hits.c.visit_id.distinct()).label("visits"),
            func.count().label("events"),
        )
        .group_by(hits.c.day)
        .subquery("per_day")
    )
    return select(*(func.coalesce(func.sum(c), 0).label(c.name) for c in per_day.c))


def goal_revenue(query: Query, keys: Sequence[str]) -> Select | None:
    """Revenue per currency of the one goal the query filters on, by the visit dimensions
    `keys`, from that goal's matches alone: rows of the keys (d0, d1...), `currency`,
    `revenue` (minor units) and `visits` (conversions that paid in it). None where the
    full report is needed (event dimensions or filters, several goals)."""
    flt = query.filter_for(GOAL)
    plain = column_filters(query)
    if (
        flt is None
        or flt.op != "is"
        or len(flt.values) != 1
        or any(DIMENSIONS[d].is_event for d in keys)
        or any(DIMENSIONS[f.dimension].is_event for f in plain)
    ):
        return None
    (goal,) = selected_goals(query, flt)
    found = goal_matches(query, goal).subquery("found")
    columns = [dimension_column(d).label(dim_key(i)) for i, d in enumerate(keys)]
    stmt = select(
        *columns,
        found.c.revenue_currency.label("currency"),
        func.sum(found.c.revenue_minor).label("revenue"),
        func.count(found.c.visit_id.distinct()).label("visits"),
    ).where(found.c.revenue_minor.is_not(None), found.c.revenue_currency != "")
    on_visits = compile_filters(plain, dimension_column)
    if columns or on_visits is not None:
        stmt = stmt.select_from(found.join(visits, visits.c.id == found.c.visit_id))
    if on_visits is not None:
        stmt = stmt.where(on_visits)
    return stmt.group_by(*columns, found.c.revenue_currency)
