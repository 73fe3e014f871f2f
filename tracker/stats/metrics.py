"""Metrics: a registry of additive parts, combined into ratios last.

Every stored number a report needs is one of PARTS, a plain sum that adds across days,
rollups and raw rows (visitors too: ids rotate daily, so distinct visitors are counted per
day of the site and summed). A metric names the parts it reads and how to combine them;
ratios (bounce rate, views per visit, durations) are computed once, after every sum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, Numeric, cast, func, literal

PARTS = (
    "visitors",
    "visits",
    "bounces",
    "pageviews",
    "events",
    "duration_ms",
    "time_on_page_ms",
    "time_on_page_known",
    # Scroll depth: the maximum percent each pageview reported, summed, and how many
    # pageviews reported one (those without a report are left out of the average).
    "scroll_sum",
    "scroll_known",
    # Revenue in minor units: under a goal filter, of the goal's matching events; summed
    # per currency (the query groups by event:revenue_currency), never across currencies.
    "revenue_minor",
)
# Parts kept in stats_rollups (revenue is always summed from raw events, per currency).
ROLLUP_PARTS = tuple(p for p in PARTS if p != "revenue_minor")
# Parts only event rows can give (the visits table has no per-page times or event kinds).
EVENT_PARTS = frozenset(
    {
        "events",
        "time_on_page_ms",
        "time_on_page_known",
        "scroll_sum",
        "scroll_known",
        "revenue_minor",
    }
)

Value = int | float | None


def _ratio(num: str, den: str, scale: float, digits: int) -> Callable[[Mapping[str, int]], Value]:
    def combine(parts: Mapping[str, int]) -> Value:
        if not parts[den]:
            return None
        return round(parts[num] * scale / parts[den], digits)

    return combine


def _whole_percent(num: str, den: str) -> Callable[[Mapping[str, int]], Value]:
    """The average num / den as a whole number, halves rounded up (in integers: exact)."""

    def combine(parts: Mapping[str, int]) -> Value:
        if not parts[den]:
            return None
        return (2 * parts[num] + parts[den]) // (2 * parts[den])

    return combine


def _count(part: str) -> Callable[[Mapping[str, int]], Value]:
    return lambda parts: int(parts[part])


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    parts: tuple[str, ...]
    combine: Callable[[Mapping[str, int]], Value]
    # How a change against the comparison period is shown: "percent" or "points".
    change: str = "percent"
    # Higher is better (green arrow) except for bounce rate.
    higher_is_better: bool = True
    # False: used inside the stats layer only (a sum that must not mix currencies).
    public: bool = True
    # What the number means, where a label alone does not say (the column's tooltip).
    definition: str = ""

    def sort_key(self, sums: Mapping[str, ColumnElement]) -> ColumnElement:
        """The metric as a SQL expression over summed parts, to ORDER BY before LIMIT."""
        if len(self.parts) == 1:
            return sums[self.parts[0]]
        num, den = sums[self.parts[0]], sums[self.parts[1]]
        return cast(num, Float) / func.nullif(cast(den, Numeric), literal(0))


def _later(name: str, label: str, **options: Any) -> Metric:
    """A metric `run` completes after the sums (it reads none of them itself)."""
    return Metric(name, label, ("visits",), lambda parts: None, **options)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("visitors", "Visitors", ("visitors",), _count("visitors")),
        Metric("visits", "Visits", ("visits",), _count("visits")),
        Metric("pageviews", "Pageviews", ("pageviews",), _count("pageviews")),
        Metric(
            "views_per_visit",
            "Views per visit",
            ("pageviews", "visits"),
            _ratio("pageviews", "visits", 1, 2),
        ),
        Metric(
            "bounce_rate",
            "Bounce rate",
            ("bounces", "visits"),
            _ratio("bounces", "visits", 100, 1),
            change="points",
            higher_is_better=False,
        ),
        Metric(
            "visit_duration",
            "Visit duration",
            ("duration_ms", "visits"),
            _ratio("duration_ms", "visits", 0.001, 1),
        ),
        Metric(
            "time_on_page",
            "Time on page",
            ("time_on_page_ms", "time_on_page_known"),
            _ratio("time_on_page_ms", "time_on_page_known", 0.001, 1),
        ),
        Metric(
            "scroll_depth",
            "Scroll depth",
            ("scroll_sum", "scroll_known"),
            _whole_percent("scroll_sum", "scroll_known"),
            change="points",
            definition=(
                "Average of the deepest scroll each pageview reached, in percent of the "
                "page; pageviews that never reported one are left out."
            ),
        ),
        Metric("events", "Events", ("events",), _count("events")),
        # Goal metrics (tracker/stats/goals.py): a goal filter keeps converting visits, so
        # conversions are its visits; the rate and revenue are completed by `run`, which
        # needs the visits of the same rows without the goal, and amounts per currency.
        Metric("conversions", "Conversions", ("visits",), _count("visits")),
        _later("conversion_rate", "Conversion rate", change="points"),
        _later("total_revenue", "Revenue"),
        _later("average_revenue", "Average revenue"),
        # Ad spend (tracker/stats/spend.py), completed by `run` from the cost rows of the
        # row's campaign tag: amounts per currency, ROAS a ratio.
        _later("cost", "Cost", higher_is_better=False),
        _later("cpc", "Cost per visit", higher_is_better=False),
        _later("cpa", "Cost per conversion", higher_is_better=False),
        _later("roas", "ROAS"),
        # Exits over the page's pageviews (tracker/stats/exits.py), completed by `run`.
        _later("exit_rate", "Exit rate", change="points", higher_is_better=False),
        Metric("bounces", "Bounces", ("bounces",), _count("bounces"), public=False),
        Metric(
            "revenue",
            "Revenue (minor units)",
            ("revenue_minor",),
            _count("revenue_minor"),
            public=False,
        ),
    )
}
PUBLIC_METRICS = tuple(name for name, m in METRICS.items() if m.public)
# Completed by `run` after the sums (see above); not sortable in SQL.
CONVERSION_LATER = frozenset({"conversion_rate", "total_revenue", "average_revenue"})
SPEND_METRICS = frozenset({"cost", "cpc", "cpa", "roas"})
FILLED_LATER = CONVERSION_LATER | SPEND_METRICS | {"exit_rate"}


def parts_for(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The parts the metrics need, in PARTS order."""
    needed = {p for m in metrics for p in METRICS[m].parts}
    return tuple(p for p in PARTS if p in needed)


def combine(metrics: tuple[str, ...], parts: Mapping[str, int]) -> dict[str, Value]:
    return {m: METRICS[m].combine(parts) for m in metrics}


def change(metric: str, current: Value, previous: Value) -> Value:
    """Change against the comparison period: percent for counts, points for rates.

    None when it cannot be said (no previous value, or a percent change from zero).
    """
    if not isinstance(current, int | float) or not isinstance(previous, int | float):
        return None  # unknown, or revenue (amounts per currency)
    if METRICS[metric].change == "points":
        return round(current - previous, 1)
    if previous == 0:
        return None if current else 0
    return round((current - previous) * 100 / previous)
