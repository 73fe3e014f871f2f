"""What the Campaigns tab shows, worked out from the stats layer's campaign report: cells
as text, sort and drill-down links, the level and goal choices, and the CSV rows.

The tab is the stats page's other tab: same period, comparison and filters (`PageState`), its
own display choices in the URL (`campaigns_level`, `campaigns_sort`), so it is bookmarked
and shared like the overview.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tracker.db import Database
from tracker.export import neutralize
from tracker.money import format_minor
from tracker.stats import GOAL, Filter, site_goals
from tracker.stats.campaigns import (
    COLUMNS,
    LEVELS,
    MONEY,
    CampaignReport,
    CampaignRow,
    campaign_report,
    changed_for_better,
    goal_of,
)
from tracker.web.dashboard import CAMPAIGN_LEVEL as LEVEL_PARAM
from tracker.web.dashboard import CAMPAIGN_SORT as SORT_PARAM
from tracker.web.dashboard import Column, Link, PageState
from tracker.web.format import compact, decimal, metric_change, one_decimal_percent

LEVEL_LABELS = {
    "campaign": "Campaign",
    "source": "Source",
    "medium": "Medium",
    "term": "Term",
    "content": "Content",
}
# Clicking a row filters on it and shows the next level down.
NEXT_LEVEL = {"campaign": "source", "source": "medium", "medium": "term", "term": "content"}
HEADINGS = {
    "cost": "Cost",
    "impressions": "Impr.",
    "ad_clicks": "Ad clicks",
    "ctr": "CTR",
    "visits": "Visits",
    "cpc": "Cost / visit",
    "bounce_rate": "Bounce rate",
    "conversions": "Conv.",
    "conversion_rate": "Conv. rate",
    "cpa": "Cost / conv.",
    "revenue": "Revenue",
    "roas": "ROAS",
}
TITLES = {
    "ctr": "Ad clicks per 100 impressions",
    "cpc": "Cost per visit (CPC): cost / visits",
    "cpa": "Cost per conversion (CPA): cost / conversions",
    "roas": "Return on ad spend: revenue / cost",
    "ad_clicks": "Clicks the ad platform counted",
}


@dataclass(frozen=True)
class Cell:
    text: str
    change: str  # "+12%", "-3 pts" or ""
    trend: str  # good, bad or flat


@dataclass(frozen=True)
class Line:
    label: str
    url: str | None  # drills down (None at the last level)
    cells: list[Cell]
    apart: str  # money in other currencies, shown apart: "+ 12.00 USD cost"


@dataclass(frozen=True)
class CampaignTab:
    levels: list[Link]
    goals: list[Link]  # "Any goal" and each goal (the page's goal filter)
    columns: list[Column]
    titles: list[str]
    lines: list[Line]
    totals: Line
    unmatched: list[tuple[str, str]]  # cost rows no visit matched: (campaign, cost)
    without_cost: list[str]
    report: CampaignReport
    csv_url: str


def level_of(state: PageState) -> str:
    chosen = state.ui.get(LEVEL_PARAM, "")
    return chosen if chosen in LEVELS else "campaign"


def order_of(state: PageState) -> tuple[str, str]:
    name, _, direction = state.ui.get(SORT_PARAM, "").partition(":")
    if name not in COLUMNS:
        return ("cost", "desc")
    return (name, "asc" if direction == "asc" else "desc")


def campaign_tab(db: Database, state: PageState) -> CampaignTab:
    level = level_of(state)
    report = campaign_report(db, state.query, level, order_of(state))
    currency = report.currency
    return CampaignTab(
        levels=[
            Link(label, state.url(ui={LEVEL_PARAM: key}), key == level)
            for key, label in LEVEL_LABELS.items()
        ],
        goals=_goal_links(db, state),
        columns=_columns(state, currency),
        titles=[TITLES.get(c, "") for c in COLUMNS],
        lines=[_line(state, level, row, currency) for row in report.rows],
        totals=_line(state, level, report.totals, currency, label="Total"),
        unmatched=[(r.label, _money(r.values["cost"], currency)) for r in report.unmatched_cost],
        without_cost=report.without_cost if report.costed else [],
        report=report,
        csv_url=state.endpoint("stats.campaigns_csv", state.params()),
    )


def _goal_links(db: Database, state: PageState) -> list[Link]:
    """Each goal (the first when the page names none), and any goal at all."""
    goals = site_goals(db, state.access.site)
    if not goals:
        return []
    counted = goal_of(db, state.query)
    links = []
    for goal in goals:
        query = state.query.with_filter(Filter(GOAL, "is", (goal.name,)))
        links.append(Link(goal.name, state.url(query), counted.values == (goal.name,)))
    if len(goals) > 1:
        every = tuple(g.name for g in goals)
        query = state.query.with_filter(Filter(GOAL, "is", every))
        links.append(Link("Any goal", state.url(query), set(counted.values) == set(every)))
    return links


def _columns(state: PageState, currency: str) -> list[Column]:
    name, direction = order_of(state)
    columns = []
    for column in COLUMNS:
        label = HEADINGS[column]
        if column in MONEY and currency:
            label = f"{label} ({currency})"
        on = column == name
        again = f"{column}:asc" if on and direction == "desc" else column
        sorted_ = ({"desc": "descending", "asc": "ascending"}[direction]) if on else ""
        columns.append(Column(label, state.url(ui={SORT_PARAM: again}), sorted_))
    return columns


def _line(state: PageState, level: str, row: CampaignRow, currency: str, label: str = "") -> Line:
    url = None
    if not label and level in NEXT_LEVEL and row.spellings:
        query = state.query.with_filter(Filter(LEVELS[level], "is", row.spellings))
        url = state.url(query, ui={LEVEL_PARAM: NEXT_LEVEL[level]})
    cells = []
    for column in COLUMNS:
        change = row.change.get(column)
        better = changed_for_better(column, change)
        trend = "flat" if better is None else "good" if better else "bad"
        shown = metric_change(column, change)
        cells.append(Cell(cell_text(column, row.values[column], currency), shown, trend))
    apart = [f"{format_minor(v, c)} {c} cost" for c, v in sorted(row.other_cost.items())]
    apart += [f"{format_minor(v, c)} {c} revenue" for c, v in sorted(row.other_revenue.items())]
    return Line(label or row.label, url, cells, " · ".join(apart))


def _money(minor: int | None, currency: str) -> str:
    return "-" if minor is None else format_minor(minor, currency)


def cell_text(column: str, value: Any, currency: str) -> str:
    """A value as the table shows it; "-" where it cannot be said (a division by zero)."""
    if value is None:
        return "-"
    if column in MONEY:
        return format_minor(value, currency)
    if column in ("ctr", "bounce_rate", "conversion_rate"):
        return one_decimal_percent(value)
    if column == "roas":
        return decimal(value)
    return compact(value)


def campaign_csv(tab: CampaignTab) -> str:
    """The report's rows and totals, exact values (money as decimals in `currency`)."""
    report = tab.report
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([report.level, *COLUMNS, "currency", "other_currencies"])
    for row in [*report.rows, report.totals]:
        label = "(total)" if row is report.totals else neutralize(row.label)
        writer.writerow([label, *_csv_values(row.values, report.currency), report.currency,
                         _apart_text(row)])  # fmt: skip
    return out.getvalue()


def _csv_values(values: Mapping[str, Any], currency: str) -> list[Any]:
    return [
        "" if values[c] is None else format_minor(values[c], currency) if c in MONEY else values[c]
        for c in COLUMNS
    ]


def _apart_text(row: CampaignRow) -> str:
    parts = [f"cost {format_minor(v, c)} {c}" for c, v in sorted(row.other_cost.items())]
    parts += [f"revenue {format_minor(v, c)} {c}" for c, v in sorted(row.other_revenue.items())]
    return "; ".join(parts)
