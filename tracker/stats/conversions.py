"""Conversion reports: the Goals breakdown and the metrics completed after the sums.

`run` hands these a `Runner` (its own one-query function), so they build on the same
compiled SQL as every other report:

- a breakdown by `event:goal` runs the query once per goal, under that goal's filter: its
  visits are the goal's conversions, its visitors the converting visitors, its events the
  matching events;
- `conversion_rate` = conversions / visits of the same row without the goal (run once
  more without the goal filter, restricted to the rows shown);
- `total_revenue` and `average_revenue` sum the matching events' revenue per currency
  (run once more grouped by `event:revenue_currency`); amounts in another currency are
  kept apart, never converted; the average of a currency is over the conversions that
  paid in it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tracker.money import format_minor
from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.filters import Filter
from tracker.stats.goals import GOAL
from tracker.stats.metrics import CONVERSION_LATER, FILLED_LATER
from tracker.stats.query import GoalSpec, Query

# (query, the rows' non-time dimension values to restrict to, or None) -> rows
Runner = Callable[[Query, Sequence[tuple[Any, ...]] | None], list[dict[str, Any]]]
# (query) -> its one row from the goal's matching events alone, or None: not enough.
Counter = Callable[[Query], dict[str, Any] | None]
# (query, visit dimensions) -> revenue rows (those dimensions, CURRENCY, revenue, visits)
# from the goal's matching events alone, or None: not enough.
Payer = Callable[[Query, Sequence[str]], list[dict[str, Any]] | None]
CURRENCY = "event:revenue_currency"
# Past this many rows the conversion rate's visits are read for every value, not
# restricted to the rows': a value per bound parameter, where PostgreSQL takes at most
# 65,535 (the CSV, or a sort by conversion rate, of a 100,000-page site), and a list that
# long cost more than the breakdown it narrows. A row's visits are the same either way.
MAX_RESTRICTED_ROWS = 1_000


def executed_metrics(query: Query) -> tuple[str, ...]:
    """The metrics to sum: those asked, without the ones completed later, plus conversions
    (what they are completed from)."""
    metrics = [m for m in query.metrics if m not in FILLED_LATER]
    if CONVERSION_LATER & set(query.metrics) and "conversions" not in metrics:
        metrics.append("conversions")
    return tuple(metrics)


def goal_rows(query: Query, runner: Runner, counter: Counter) -> list[dict[str, Any]]:
    """One block of rows per goal (in the goals' order), each under that goal's filter;
    from the goal's own events where they suffice (`counter`), else the full report."""
    rows = []
    inner = dataclasses.replace(
        query,
        dimensions=tuple(d for d in query.dimensions if d != GOAL),
        limit=None,
        offset=0,
    )
    for goal in _goals_shown(query):
        under = inner.with_filter(Filter(GOAL, "is", (goal.name,)))
        counted = counter(under)
        for row in [counted] if counted is not None else runner(under, None):
            if not under.dimensions and not row.get("conversions", row.get("visitors")):
                continue  # a goal nobody reached has no row, like any empty value
            rows.append({GOAL: goal.name, **row})
    return rows[query.offset : query.offset + query.limit] if query.limit else rows


def _goals_shown(query: Query) -> list[GoalSpec]:
    flt = query.filter_for(GOAL)
    if flt is None:
        return list(query.goals)
    named = set(flt.values)
    return [g for g in query.goals if (g.name in named) == (flt.op == "is")]


def complete(query: Query, rows: list[dict[str, Any]], runner: Runner, payer: Payer) -> None:
    """Fill conversion_rate, total_revenue and average_revenue of the rows in place."""
    asked = CONVERSION_LATER & set(query.metrics)
    if not asked or not rows:
        return
    if "conversion_rate" in asked:
        base = _base_visits(query, rows, runner)
        for row in rows:
            total = base.get(_key(row, _base_dims(query)), 0)
            row["conversion_rate"] = round(row["conversions"] * 100 / total, 1) if total else None
    if asked & {"total_revenue", "average_revenue"}:
        keys = [d for d in query.dimensions if not DIMENSIONS[d].is_time]
        revenue = _revenue(query, rows, keys, runner, payer)
        for row in rows:
            sums = revenue.get(_key(row, keys), {})
            ordered = _ordered(sums, _currency_of(query, row))
            if "total_revenue" in asked:
                row["total_revenue"] = {c: format_minor(v.minor, c) for c, v in ordered}
            if "average_revenue" in asked:
                row["average_revenue"] = {
                    c: format_minor(_average(v.minor, v.conversions), c) for c, v in ordered
                }


def _key(row: dict[str, Any], dims: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[d] for d in dims)


def _base_dims(query: Query) -> tuple[str, ...]:
    """The rows' dimensions but the goal (time buckets included: a rate per day)."""
    return tuple(d for d in query.dimensions if d != GOAL)


def _base_visits(
    query: Query, rows: list[dict[str, Any]], runner: Runner
) -> dict[tuple[Any, ...], int]:
    """Visits of each row's values with no goal: the conversion rate's denominator."""
    dims = _base_dims(query)
    base = dataclasses.replace(
        query.without_filter(GOAL),
        metrics=("visits",),
        dimensions=dims,
        limit=None,
        offset=0,
        order_by=(),
    )
    plain = [d for d in dims if not DIMENSIONS[d].is_time]
    restrict = None
    if plain and len(plain) == len(dims) and len(rows) <= MAX_RESTRICTED_ROWS:
        restrict = sorted({_key(r, plain) for r in rows})
    return {_key(r, dims): r["visits"] for r in runner(base, restrict)}


@dataclass(frozen=True)
class Paid:
    """One currency's revenue in a row: its sum, and the conversions that paid in it (an
    average order value per currency, not diluted by orders paid in another)."""

    minor: int
    conversions: int


def _revenue(
    query: Query,
    rows: list[dict[str, Any]],
    keys: Sequence[str],
    runner: Runner,
    payer: Payer,
) -> dict[tuple[Any, ...], dict[str, Paid]]:
    """Revenue in minor units per row and currency (goal rows: each under its goal)."""
    plain = [k for k in keys if k != GOAL]
    grouped = dataclasses.replace(
        query,
        metrics=("revenue", "visits"),
        dimensions=(*plain, CURRENCY),
        limit=None,
        offset=0,
        order_by=(),
        compare=None,
        compare_period=None,
    )
    found: dict[tuple[Any, ...], dict[str, Paid]] = {}
    # Only custom events carry revenue: page and click goals have none to sum.
    paying = {g.name for g in query.goals if g.kind == "event"}
    goals = [None] if GOAL not in keys else sorted({r[GOAL] for r in rows} & paying)
    for goal in goals:
        under = grouped if goal is None else grouped.with_filter(Filter(GOAL, "is", (goal,)))
        paid = payer(under, plain)
        for r in runner(under, None) if paid is None else paid:
            if not r[CURRENCY] or not r["revenue"]:
                continue
            key = tuple(goal if k == GOAL else r[k] for k in keys)
            found.setdefault(key, {})[r[CURRENCY]] = Paid(r["revenue"], r["visits"])
    return found


def _currency_of(query: Query, row: dict[str, Any]) -> str:
    """The currency shown first: the goal's own."""
    name = row.get(GOAL)
    if name is None:
        flt = query.filter_for(GOAL)
        name = flt.values[0] if flt is not None and flt.op == "is" else None
    return next((g.currency for g in query.goals if g.name == name), "")


def _ordered(sums: dict[str, Paid], first: str) -> list[tuple[str, Paid]]:
    return sorted(sums.items(), key=lambda item: (item[0] != first, -item[1].minor, item[0]))


def _average(minor: int, conversions: int) -> int:
    if not conversions:
        return 0
    return int((Decimal(minor) / conversions).to_integral_value())
