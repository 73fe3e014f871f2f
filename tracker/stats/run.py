"""Running a Query: the one call views make. Rows, time series, comparisons.

`run(db, query)` sums additive parts in SQL (from rollups where they cover the period,
raw rows elsewhere), combines them into metrics, fills empty time buckets with zeros, and,
when the query compares, runs the same query over the comparison period and attaches each
row's previous value and change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, tuple_

from tracker.columnar import engine as columnar
from tracker.db import Database
from tracker.stats import conversions, exits, scroll, spend
from tracker.stats.compiler import (
    Plan,
    dim_key,
    dimension_column,
    goal_counts,
    goal_revenue,
    outer,
    plan_for,
)
from tracker.stats.coverage import first_visit_ms
from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.filters import SOURCE, Filter
from tracker.stats.goals import GOAL, with_goals
from tracker.stats.metrics import FILLED_LATER, METRICS, PARTS, change, combine, parts_for
from tracker.stats.periods import (
    Period,
    day_from_number,
    hour_starts,
    local_date,
    local_label,
    month_start,
    shift_months,
    week_start,
)
from tracker.stats.query import Query, SiteLike, site_ref
from tracker.stats.rollups import bucket_source

UTM_SOURCE = "visit:utm_source"


@dataclass
class Result:
    """Rows of `{dimension: value, metric: value}`; with a comparison, each row also has
    `comparison` ({metric: previous value}) and `change` ({metric: change})."""

    rows: list[dict[str, Any]]
    query: Query
    has_more: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    comparison: Result | None = None

    @property
    def totals(self) -> dict[str, Any]:
        """The single row of a query without dimensions."""
        return self.rows[0] if self.rows else {}


def run(db: Database, query: Query, *, rollups: bool = True) -> Result:
    """Answer a query. `rollups=False` reads raw rows only, neither rollups nor the
    columnar store (tests compare the paths)."""
    spend.check(query)
    scroll.check(query)
    store = db.columnar_root if rollups else None
    with db.engine.connect() as conn:
        query = with_goals(conn, query, hits=rollups)
        result = _answer(conn, query, rollups=rollups, store=store)
        if query.compare and query.compare_period:
            restrict = _row_keys(result)
            previous = _comparison_query(query)
            result.comparison = _answer(conn, previous, restrict, rollups=rollups, store=store)
            _attach_comparison(result, result.comparison)
        if SOURCE in query.dimensions:
            _spell_sources(conn, result, rollups=rollups, store=store)
    return result


def _answer(
    conn: Connection,
    query: Query,
    restrict: Sequence[tuple[Any, ...]] | None = None,
    *,
    rollups: bool,
    store: Path | None,
) -> Result:
    """One period's rows, ordered and paged; sorted here when SQL cannot order them."""
    if not any(name in FILLED_LATER for name, _ in query.order_by):
        return _answer_rows(conn, query, restrict, rollups=rollups, store=store)
    # The order needs metrics completed after the sums (a conversion rate): every row is
    # completed, then sorted and paged like SQL would.
    whole = dataclasses.replace(query, limit=None, offset=0)
    result = _answer_rows(conn, whole, restrict, rollups=rollups, store=store)
    rows = sort_rows(result.rows, query.dimensions, query.order_by)
    end = query.offset + query.limit if query.limit else None
    result.has_more = end is not None and len(rows) > end
    result.rows = rows[query.offset : end]
    result.query = query
    return result


def sort_rows(
    rows: list[dict[str, Any]],
    dimensions: Sequence[str],
    order_by: Sequence[tuple[str, str]],
) -> list[dict[str, Any]]:
    """Rows in a query's order, as `compiler.outer` orders them in SQL: unknown values
    last when descending, first when ascending; ties by the dimension values."""
    ordered = sorted(rows, key=lambda row: tuple(_sortable(row[d]) for d in dimensions))
    for name, direction in reversed(order_by):
        ordered.sort(key=lambda row: _sortable(row[name]), reverse=direction == "desc")
    return ordered


def _sortable(value: Any) -> tuple[bool, Any]:
    """A comparable key; amounts per currency sort by the first (the goal's own currency)."""
    if isinstance(value, dict):
        value = Decimal(next(iter(value.values()))) if value else None
    return (value is not None, 0 if value is None else value)


def _answer_rows(
    conn: Connection,
    query: Query,
    restrict: Sequence[tuple[Any, ...]] | None,
    *,
    rollups: bool,
    store: Path | None,
) -> Result:
    """One period's rows: a plain report, or goal rows; goal metrics completed. Its meta's
    `paths` says which path answered each of its sums, in order ("goal_matches": a goal's
    own matches, in the database)."""
    paths: list[str] = []

    def runner(q: Query, keys: Sequence[tuple[Any, ...]] | None) -> list[dict[str, Any]]:
        found = _run(conn, q, keys, rollups=rollups, store=store)
        paths.append(found.meta["source"])
        return found.rows

    def counter(q: Query) -> dict[str, Any] | None:
        stmt = goal_counts(q)
        if stmt is None:
            return None
        paths.append("goal_matches")
        sums = conn.execute(stmt).one()._mapping
        return combine(q.metrics, {p: int(sums.get(p) or 0) for p in PARTS})

    def payer(q: Query, keys: Sequence[str]) -> list[dict[str, Any]] | None:
        stmt = goal_revenue(q, keys)
        if stmt is None:
            return None
        paths.append("goal_matches")
        return [
            {
                **{k: row._mapping[dim_key(i)] for i, k in enumerate(keys)},
                conversions.CURRENCY: row.currency,
                "revenue": int(row.revenue or 0),
                "visits": int(row.visits),
            }
            for row in conn.execute(stmt)
        ]

    # Spend is worked out from visits, conversions and revenue, asked or not.
    widened = dataclasses.replace(
        query, metrics=(*query.metrics, *spend.needed(query), *exits.needed(query))
    )
    executed = dataclasses.replace(
        widened,
        metrics=conversions.executed_metrics(widened),
        order_by=tuple(o for o in query.order_by if o[0] not in FILLED_LATER),
    )
    if GOAL in query.dimensions:
        result = Result(rows=conversions.goal_rows(executed, runner, counter), query=query)
        result.meta = {"source": "raw", "period": query.period}
        if restrict is not None:
            keys = [d for d in query.dimensions if not DIMENSIONS[d].is_time]
            wanted = set(map(tuple, restrict))
            result.rows = [r for r in result.rows if tuple(r[k] for k in keys) in wanted]
    else:
        result = _run(conn, executed, restrict, rollups=rollups, store=store)
        result.query = query
        paths.append(result.meta["source"])
    conversions.complete(widened, result.rows, runner, payer)
    spend.complete(conn, query, result.rows)
    exits.complete(query, result.rows, runner)
    result.meta["paths"] = tuple(paths)
    for row in result.rows:
        for extra in (set(executed.metrics) | set(widened.metrics)) - set(query.metrics):
            row.pop(extra, None)
    return result


def _spell_sources(conn: Connection, result: Result, *, rollups: bool, store: Path | None) -> None:
    """Show case-folded sources in their most frequent spelling in the period.

    A tagged source no list knows is stored case-folded (`newsletter-uk`), so letter case
    never splits it; its spellings are in `utm_source`, whose per-day rollups say which one
    most visits used (`Newsletter-UK`). Rows keep their stored value until here, so
    comparisons line up first.
    """
    folded = {
        row[SOURCE]
        for row in result.rows
        if isinstance(row[SOURCE], str) and row[SOURCE] == row[SOURCE].casefold()
    }
    if not folded:
        return
    query = result.query
    tagged = dataclasses.replace(
        query,
        metrics=("visits",),
        dimensions=(UTM_SOURCE,),
        filters=(),
        compare=None,
        compare_period=None,
        order_by=(("visits", "desc"), (UTM_SOURCE, "asc")),
        limit=None,
        offset=0,
    )
    spelling: dict[str, str] = {}
    for row in _run(conn, tagged, rollups=rollups, store=store).rows:  # most visits first
        key = str(row[UTM_SOURCE]).strip().casefold()
        if key in folded:
            spelling.setdefault(key, str(row[UTM_SOURCE]).strip())
    for row in result.rows:
        row[SOURCE] = spelling.get(row[SOURCE], row[SOURCE])


def first_day(db: Database, site: SiteLike) -> date | None:
    """The local day of the site's first visit (where period=all starts), None if none."""
    ref = site_ref(site)
    with db.engine.connect() as conn:
        first = first_visit_ms(conn, ref)
    return None if first is None else local_date(first, ref.tz)


def _row_keys(result: Result) -> list[tuple[Any, ...]] | None:
    """The non-time dimension values of the rows shown; None for totals and time series."""
    keys = [d for d in result.query.dimensions if not DIMENSIONS[d].is_time]
    if not keys:
        return None
    return [tuple(row[k] for k in keys) for row in result.rows]


def _run(
    conn: Connection,
    query: Query,
    restrict: Sequence[tuple[Any, ...]] | None = None,
    *,
    rollups: bool,
    store: Path | None = None,
) -> Result:
    parts = parts_for(query.metrics)
    plan = plan_for(query, parts)
    query, extra = _restricted(query, restrict)
    raw, used = _sums(conn, query, plan, extra, rollups=rollups, store=store)
    has_more = bool(query.limit) and len(raw) > (query.limit or 0)
    if has_more:
        raw = raw[: query.limit]
    rows = _rows(query, parts, raw)
    if not query.dimensions and not rows:
        rows = [combine(query.metrics, dict.fromkeys(PARTS, 0))]
    if query.dimensions == (query.time_dimension,) and query.time_dimension:
        rows = _fill_series(query, rows)
    meta = {"source": used, "period": query.period, "compare_period": query.compare_period}
    return Result(rows=rows, query=query, has_more=has_more, meta=meta)


def _rows(
    query: Query, parts: Sequence[str], raw: Sequence[Mapping[Any, Any]]
) -> list[dict[str, Any]]:
    """`outer`'s rows as the query's dimension values and metrics. What is the same for
    every row is looked up once: a CSV or a report sorted by a metric completed later has
    a row per value (100,000 pages), and per-row lookups were most of its Python time."""
    dims = [(name, f"k{i}", DIMENSIONS[name].is_time) for i, name in enumerate(query.dimensions)]
    combiners = [(m, METRICS[m].combine) for m in query.metrics]
    rows = []
    for values in raw:
        row: dict[str, Any] = {
            name: _dimension_value(name, values[key], query) if is_time else values[key]
            for name, key, is_time in dims
        }
        sums = {p: int(values[p] or 0) for p in parts}
        for metric, combined in combiners:
            row[metric] = combined(sums)
        rows.append(row)
    return rows


def _sums(
    conn: Connection,
    query: Query,
    plan: Plan,
    extra: ColumnElement[bool] | None,
    *,
    rollups: bool,
    store: Path | None,
) -> tuple[Sequence[Mapping[Any, Any]], str]:
    """`outer`'s rows (k0.., parts) and which path answered: the columnar store where it
    holds the period's first days (tracker.columnar.engine), else the database."""
    if store is not None:
        found = columnar.answer(conn, store, query, plan, extra)
        if found is not None:
            return found
    source, used = bucket_source(conn, query, plan, extra, rollups=rollups)
    return conn.execute(outer(query, plan, source)).mappings().all(), used


def _restricted(
    query: Query, restrict: Sequence[tuple[Any, ...]] | None
) -> tuple[Query, ColumnElement[bool] | None]:
    """Limit a comparison breakdown to the rows the current period showed.

    One dimension: a filter on it (rollups can still answer), replacing the query's own
    filter on it, which the rows shown all passed; several: a tuple IN clause.
    """
    names = [d for d in query.dimensions if not DIMENSIONS[d].is_time]
    if restrict is None or not names:
        return query, None
    if len(names) == 1 and restrict:
        return query.with_filter(Filter(names[0], "is", tuple(r[0] for r in restrict))), None
    columns = [dimension_column(d) for d in names]
    return query, tuple_(*columns).in_(restrict)


def _dimension_value(name: str, value: Any, query: Query) -> Any:
    if name == "time:hour":
        return local_label(int(value), query.site.tz)
    if DIMENSIONS[name].is_time:
        return day_from_number(int(value)).isoformat()
    return value


def time_buckets(query: Query, period: Period | None = None) -> list[str]:
    """Every bucket label of the period for the query's time dimension, in order."""
    period = period or query.period
    dim = query.time_dimension
    if dim == "time:hour":
        tz = query.site.tz
        return [local_label(t, tz) for t in hour_starts(period.start_ms, period.end_ms, tz)]
    labels: list[str] = []
    day = period.start
    while day <= period.end:
        if dim == "time:day":
            labels.append(day.isoformat())
            day += timedelta(days=1)
        elif dim == "time:week":
            labels.append(week_start(day).isoformat())
            day = week_start(day) + timedelta(days=7)
        else:
            labels.append(month_start(day).isoformat())
            day = shift_months(month_start(day), 1)
    return labels


def _fill_series(query: Query, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    dim = query.time_dimension
    assert dim is not None
    found = {row[dim]: row for row in rows}
    zero = combine(query.metrics, dict.fromkeys(PARTS, 0))
    return [found.get(label) or {dim: label, **zero} for label in time_buckets(query)]


def _comparison_query(query: Query) -> Query:
    assert query.compare_period is not None
    return dataclasses.replace(
        query,
        period=query.compare_period,
        compare=None,
        compare_period=None,
        offset=0,
        limit=None,
    )


def _attach_comparison(result: Result, previous: Result) -> None:
    query = result.query
    keys = [d for d in query.dimensions if not DIMENSIONS[d].is_time]
    if query.time_dimension and not keys:
        # Time series line up by position: day 1 against day 1 of the previous period.
        pairs = list(zip(result.rows, previous.rows + [{}] * len(result.rows), strict=False))
    else:
        by_key = {tuple(r[k] for k in keys): r for r in previous.rows}
        pairs = [(row, by_key.get(tuple(row[k] for k in keys), {})) for row in result.rows]
    zero = combine(query.metrics, dict.fromkeys(PARTS, 0))
    for row, found in pairs:
        old = found or zero
        row["comparison"] = {m: old.get(m) for m in query.metrics}
        row["change"] = {m: change(m, row[m], old.get(m)) for m in query.metrics}
