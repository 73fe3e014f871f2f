"""The campaign report: per campaign (or source, medium, term, content), money in and
results out: cost, impressions, ad clicks, CTR, visits, cost per visit, bounce rate,
conversions and their rate, cost per conversion, revenue and ROAS, with totals.

Rows are campaign tags compared as `utm_key`s: "Spring Sale" and "spring sale" in visits
and "SPRING SALE" in the cost rows are one row, shown in the spelling most visits used.
Traffic comes from two Queries through `run` (visits; conversions and revenue under the
page's goal, else under any goal) and cost from tracker.stats.spend, so each figure is
the one the Stats API gives for the same tag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from tracker.db import Database
from tracker.db.models import GoalTagDay
from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.filters import Filter, compile_filter
from tracker.stats.goals import GOAL, load_goals, site_goals
from tracker.stats.metrics import change
from tracker.stats.periods import Period, day_number, local_date, make_period
from tracker.stats.query import GoalSpec, Query
from tracker.stats.run import run, sort_rows
from tracker.stats.spend import (
    Spend,
    amount_minor,
    attributable,
    ctr,
    per,
    roas,
    site_currency,
    spend_by,
)
from tracker.utm import utm_key

tag_days = GoalTagDay.__table__

LEVELS = {
    "campaign": "visit:utm_campaign",
    "source": "visit:utm_source",
    "medium": "visit:utm_medium",
    "term": "visit:utm_term",
    "content": "visit:utm_content",
}
# The columns, in the order the page shows them; money in the site currency's minor units.
COLUMNS = (
    "cost",
    "impressions",
    "ad_clicks",
    "ctr",
    "visits",
    "cpc",
    "bounce_rate",
    "conversions",
    "conversion_rate",
    "cpa",
    "revenue",
    "roas",
)
MONEY = frozenset({"cost", "cpc", "cpa", "revenue"})
# Changes against the comparison period in points, not percent.
POINTS = frozenset({"ctr", "bounce_rate", "conversion_rate"})
LOWER_IS_BETTER = frozenset({"cost", "cpc", "cpa", "bounce_rate"})


@dataclass
class Tally:
    """One tag's sums before ratios: what rows of several spellings add up to."""

    spellings: dict[str, int] = field(default_factory=dict)  # visit value -> visits
    visitors: int = 0
    visits: int = 0
    bounces: int = 0
    conversions: int = 0
    revenue: dict[str, int] = field(default_factory=dict)  # minor units per currency
    spend: Spend = field(default_factory=Spend)

    def add(self, other: Tally) -> None:
        for spelling, visits in other.spellings.items():
            self.spellings[spelling] = self.spellings.get(spelling, 0) + visits
        self.visitors += other.visitors
        self.visits += other.visits
        self.bounces += other.bounces
        self.conversions += other.conversions
        for currency, minor in other.revenue.items():
            self.revenue[currency] = self.revenue.get(currency, 0) + minor
        self.spend.add(other.spend)

    @property
    def label(self) -> str:
        """The spelling most visits used, else the cost rows' own."""
        if self.spellings:
            return min(self.spellings, key=lambda s: (-self.spellings[s], s))
        return self.spend.label


@dataclass
class CampaignRow:
    key: str  # the tag's utm_key ("" for the totals)
    label: str
    spellings: tuple[str, ...]  # as visits wrote it: a filter on the row lists them all
    values: dict[str, Any]  # COLUMNS -> number, or None where it cannot be said
    other_cost: dict[str, int]  # cost in currencies other than the report's, apart
    other_revenue: dict[str, int]
    change: dict[str, Any] = field(default_factory=dict)


@dataclass
class CampaignReport:
    level: str
    currency: str  # the report's money ("" when no cost or goal names one)
    rows: list[CampaignRow]
    totals: CampaignRow
    # Cost not matching any visit of the period; visits whose tag has no cost.
    unmatched_cost: list[CampaignRow]
    without_cost: list[str]
    has_goals: bool
    # False when the page's filters say nothing cost rows know (a country, a page).
    costed: bool


def campaign_report(
    db: Database, query: Query, level: str, order: tuple[str, str] = ("cost", "desc")
) -> CampaignReport:
    """The report for the query's period, filters and comparison, one row per tag of
    `level`, sorted by `order` (a column, "asc" or "desc")."""
    dim = LEVELS[level]
    has_goals = bool(site_goals(db, query.site))
    with db.engine.connect() as conn:
        currency = site_currency(conn, query.site)
    tallies = _tallies(db, query, dim, has_goals)
    rows = [_row(key, t, currency, has_goals) for key, t in tallies.items() if t.visits]
    unmatched = [_row(k, t, currency, has_goals) for k, t in tallies.items() if not t.visits]
    total = Tally()
    for tally in tallies.values():
        total.add(tally)
    totals = _row("", total, currency, has_goals)
    if query.compare and query.compare_period:
        before = _tallies(db, _previous(query), dim, has_goals)
        for row in rows:
            _compare(row, _row(row.key, before.get(row.key, Tally()), currency, has_goals))
        whole = Tally()
        for tally in before.values():
            whole.add(tally)
        _compare(totals, _row("", whole, currency, has_goals))
    return CampaignReport(
        level=level,
        currency=currency,
        rows=_sorted(rows, order),
        totals=totals,
        unmatched_cost=sorted(unmatched, key=lambda r: -(r.values["cost"] or 0)),
        without_cost=sorted(r.label for r in rows if not r.values["cost"] and not r.other_cost),
        has_goals=has_goals,
        costed=attributable(query),
    )


def _previous(query: Query) -> Query:
    assert query.compare_period is not None
    return dataclasses.replace(query, period=query.compare_period, compare=None)


def _tallies(db: Database, query: Query, dim: str, has_goals: bool) -> dict[str, Tally]:
    """Per utm_key of `dim`: visits, conversions and revenue of the query, and cost."""
    base = dataclasses.replace(
        query.without_filter(GOAL),
        metrics=("visitors", "visits", "bounces"),
        dimensions=(dim,),
        filters=(*query.without_filter(GOAL).filters, Filter(dim, "is_not", ("",))),
        compare=None,
        compare_period=None,
        order_by=(),
        limit=None,
        offset=0,
    )
    tallies: dict[str, Tally] = {}
    for r in run(db, base).rows:
        tally = Tally({r[dim]: r["visits"]}, r["visitors"], r["visits"], r["bounces"])
        tallies.setdefault(utm_key(r[dim]), Tally()).add(tally)
    if has_goals:
        for key, tally in _conversions(db, query, base, dim).items():
            tallies.setdefault(key, Tally()).add(tally)
    if attributable(query):
        with db.engine.connect() as conn:
            for key, spend in spend_by(conn, query, dim).items():
                tallies.setdefault(key, Tally()).spend.add(spend)
    return tallies


def goal_of(db: Database, query: Query) -> Filter:
    """The goal conversions are counted for: the query's goal filter, else the site's
    first goal (the one its owner put first)."""
    chosen = query.filter_for(GOAL)
    if chosen is not None:
        return chosen
    return Filter(GOAL, "is", (site_goals(db, query.site)[0].name,))


def _conversions(db: Database, query: Query, base: Query, dim: str) -> dict[str, Tally]:
    """Conversions and revenue per utm_key of `dim`: from the goal's tag days for the
    days its hits cover, from the full report for the rest (or for all of it when the
    goal, a set of goals or a filter leaves the tag days no answer)."""
    goal = goal_of(db, query)
    with db.engine.connect() as conn:
        spec = _one_built_goal(conn, query, goal)
        stored: dict[str, Tally] = {}
        covered = None
        if spec is not None and spec.hits_until_ms is not None:
            covered = local_date(spec.hits_until_ms - 1, query.site.tz)
            last = min(covered, query.period.end)
            if last >= query.period.start:
                stored = _tag_days(conn, query, spec.id, dim, last)
    rest = query.period if covered is None else _after(query.period, covered, query.site.tz)
    if rest is not None:
        converted = dataclasses.replace(
            base,
            period=rest,
            metrics=("conversions", "total_revenue"),
            filters=(*base.filters, goal),
        )
        for r in run(db, converted).rows:
            revenue = {c: amount_minor(a, c) for c, a in r["total_revenue"].items()}
            tally = Tally(conversions=r["conversions"], revenue=revenue)
            stored.setdefault(utm_key(r[dim]), Tally()).add(tally)
    return stored


def _one_built_goal(conn: Connection, query: Query, goal: Filter) -> GoalSpec | None:
    """The goal, when it is one goal and every other filter is on tags (what tag days
    know); None otherwise."""
    if goal.op != "is" or len(goal.values) != 1:
        return None
    if any(f.dimension not in LEVELS.values() for f in query.filters if f.dimension != GOAL):
        return None
    return next(
        (g for g in load_goals(conn, query.site, hits=True) if g.name == goal.values[0]), None
    )


def _after(period: Period, covered: date, tz: ZoneInfo) -> Period | None:
    """The period's days after `covered`, or None."""
    if covered >= period.end:
        return None
    return make_period("custom", max(period.start, covered + timedelta(days=1)), period.end, tz)


def _tag_days(
    conn: Connection, query: Query, goal_id: int, dim: str, last: date
) -> dict[str, Tally]:
    t = tag_days.c
    column = t[DIMENSIONS[dim].column]
    where = [
        t.goal_id == goal_id,
        t.day >= day_number(query.period.start),
        t.day <= day_number(last),
        column != "",
        *(compile_filter(f, lambda name: t[DIMENSIONS[name].column]) for f in query.filters
          if f.dimension != GOAL),
    ]  # fmt: skip
    stmt = (
        select(
            column.label("value"), t.currency, func.sum(t.conversions), func.sum(t.revenue_minor)
        )
        .where(*where)
        .group_by(column, t.currency)
    )
    found: dict[str, Tally] = {}
    for value, currency, conversions, revenue in conn.execute(stmt):
        tally = (
            Tally(revenue={currency: int(revenue)})
            if currency
            else Tally(conversions=int(conversions))
        )
        found.setdefault(utm_key(value), Tally()).add(tally)
    return found


def _row(key: str, tally: Tally, currency: str, has_goals: bool) -> CampaignRow:
    cost = tally.spend.only(currency) if tally.spend.minor else None
    revenue = tally.revenue.get(currency, 0) if has_goals else None
    conversions = tally.conversions if has_goals else None
    values = {
        "cost": cost,
        "impressions": tally.spend.impressions,
        "ad_clicks": tally.spend.clicks,
        "ctr": ctr(tally.spend.clicks, tally.spend.impressions),
        "visits": tally.visits,
        "cpc": per(cost, tally.visits),
        "bounce_rate": _percent(tally.bounces, tally.visits),
        "conversions": conversions,
        "conversion_rate": _percent(tally.conversions, tally.visits) if has_goals else None,
        "cpa": per(cost, conversions),
        "revenue": revenue,
        "roas": roas(revenue, cost),
    }
    return CampaignRow(
        key=key,
        label=tally.label or key,
        spellings=tuple(sorted(tally.spellings)),
        values=values,
        other_cost={c: v for c, v in tally.spend.minor.items() if c != currency},
        other_revenue={c: v for c, v in tally.revenue.items() if c != currency},
    )


def _percent(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def _compare(row: CampaignRow, previous: CampaignRow) -> None:
    for column in COLUMNS:
        now, before = row.values[column], previous.values[column]
        row.change[column] = _change(column, now, before)


def _change(column: str, now: Any, before: Any) -> Any:
    """Points for rates, percent for the rest: `metrics.change` of a metric of that kind."""
    if column in POINTS:
        return change("bounce_rate", now, before)
    return change("visits", now, before)


def _sorted(rows: list[CampaignRow], order: tuple[str, str]) -> list[CampaignRow]:
    column, direction = order
    if column not in COLUMNS:
        column, direction = "cost", "desc"
    flat = [{"label": r.label.casefold(), column: r.values[column], "row": r} for r in rows]
    return [item["row"] for item in sort_rows(flat, ("label",), ((column, direction),))]


def changed_for_better(column: str, change_value: Any) -> bool | None:
    """Whether a change is good news (lower cost and bounce rate are), None when flat."""
    if not change_value:
        return None
    return (change_value > 0) != (column in LOWER_IS_BETTER)
