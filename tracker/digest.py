"""The emailed report of a site for one week or month, and how it reads (text and HTML).

Its numbers come from the stats layer's Query for the period's whole local days (the
site's time zone), compared with the previous period: the Query the stats page builds
from the report's link (`period=custom&from=...&to=...`, the page's default comparison),
so the mail and the page show the same numbers. Breakdowns are the page's reports with
the page's order (the first column, descending), cut to TOP rows; campaigns come from the
Campaigns tab's report (cost, conversions, CPA and ROAS where cost rows and goals exist).

The HTML is tables with inline styles and nothing remote (no image, no script, no style
sheet): mail clients drop or block the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape

from tracker.db import Database
from tracker.db.models import Site
from tracker.stats import GOAL, METRICS, Query, parse_query, run, site_goals
from tracker.stats.campaigns import campaign_report
from tracker.stats.periods import month_start
from tracker.subscribers import MONTHLY, WEEKLY
from tracker.web.campaign_view import cell_text
from tracker.web.format import metric_change, metric_value

TOP = 5
HEADLINE = ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration")
# (title, dimension, columns): as the stats page's reports of the same dimension.
BREAKDOWNS = (
    ("Top sources", "visit:source", ("visitors", "visits", "bounce_rate")),
    ("Channels", "visit:channel", ("visitors", "visits", "bounce_rate")),
    ("Top pages", "event:page", ("visitors", "pageviews")),
)
GOALS = ("Goals", GOAL, ("visitors", "conversions", "conversion_rate"))
CAMPAIGN_COLUMNS = ("visits", "cost", "conversions", "cpa", "roas")
CAMPAIGN_TITLES = {
    "visits": "Visits",
    "cost": "Cost",
    "conversions": "Conversions",
    "cpa": "CPA",
    "roas": "ROAS",
}
IN_CURRENCY = ("cost", "cpa")

_templates = Environment(
    loader=PackageLoader("tracker", "web/templates"),
    autoescape=select_autoescape(["html"]),
)


def last_complete_period(kind: str, today: date) -> tuple[date, date]:
    """The last whole week (Monday to Sunday) or calendar month before `today`."""
    if kind == WEEKLY:
        end = today - timedelta(days=today.weekday() + 1)
        return end - timedelta(days=6), end
    if kind == MONTHLY:
        end = month_start(today) - timedelta(days=1)
        return month_start(end), end
    raise ValueError(f"unknown report kind {kind!r}")


def page_params(start: date, end: date) -> dict[str, str]:
    """The stats page's URL parameters for the period (its default comparison applies)."""
    return {"period": "custom", "from": start.isoformat(), "to": end.isoformat()}


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    change: str  # "+12%", "-3 pts", "" when there is nothing to compare with
    trend: str  # good, bad or flat
    previous: str


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]  # the label, then one text per column


@dataclass(frozen=True)
class Digest:
    domain: str
    kind: str
    start: date
    end: date
    link: str
    figures: list[Figure]
    tables: list[Table]
    totals: dict[str, Any]  # the headline's raw values, as `run` gave them

    @property
    def subject(self) -> str:
        what = "Weekly" if self.kind == WEEKLY else "Monthly"
        visitors = next(f for f in self.figures if f.label == METRICS["visitors"].label)
        change = f" ({visitors.change})" if visitors.change else ""
        period = f"{self.domain}, {self.period_text}"
        return f"{what} report for {period}: {visitors.value} visitors{change}"

    @property
    def period_text(self) -> str:
        if self.kind == MONTHLY:
            return self.start.strftime("%B %Y")
        return f"{self.start:%-d %b} – {self.end:%-d %b %Y}"


def report_query(site: Site, start: date, end: date, now: datetime | None = None) -> Query:
    """The headline Query of the period, compared with the previous period."""
    return parse_query(
        site, page_params(start, end), now=now, metrics=HEADLINE, compare="previous_period"
    )


def build_digest(
    db: Database, site: Site, kind: str, start: date, end: date, base_url: str
) -> Digest:
    query = report_query(site, start, end)
    totals = run(db, query).totals
    figures = [_figure(metric, totals) for metric in HEADLINE]
    whole = dataclasses.replace(query, compare=None, compare_period=None)
    tables = [_breakdown(db, whole, *spec) for spec in BREAKDOWNS]
    campaigns = _campaigns(db, query)
    if campaigns.rows:
        tables.insert(2, campaigns)
    if site_goals(db, site):
        tables.append(_breakdown(db, whole, *GOALS))
    link = f"{base_url.rstrip('/')}/sites/{site.domain}?{urlencode(page_params(start, end))}"
    return Digest(site.domain, kind, start, end, link, figures, tables, dict(totals))


def _figure(metric: str, totals: dict[str, Any]) -> Figure:
    change = totals.get("change", {}).get(metric)
    previous = totals.get("comparison", {}).get(metric)
    trend = "flat"
    if change:
        trend = "good" if (change > 0) == METRICS[metric].higher_is_better else "bad"
    return Figure(
        label=METRICS[metric].label,
        value=metric_value(metric, totals.get(metric)),
        change=metric_change(metric, change),
        trend=trend,
        previous=metric_value(metric, previous),
    )


def _breakdown(
    db: Database, query: Query, title: str, dimension: str, columns: tuple[str, ...]
) -> Table:
    result = run(
        db, dataclasses.replace(query, metrics=columns, dimensions=(dimension,), limit=TOP)
    )
    rows = [
        (str(row[dimension] or "(none)"), *(metric_value(m, row[m]) for m in columns))
        for row in result.rows
    ]
    return Table(title, tuple(METRICS[m].label for m in columns), rows)


def _campaigns(db: Database, query: Query) -> Table:
    report = campaign_report(db, query, "campaign", order=("visits", "desc"))
    rows = [
        (row.label, *(cell_text(c, row.values[c], report.currency) for c in CAMPAIGN_COLUMNS))
        for row in report.rows[:TOP]
    ]
    money = f" ({report.currency})" if report.currency else ""
    titles = tuple(
        CAMPAIGN_TITLES[c] + (money if c in IN_CURRENCY else "") for c in CAMPAIGN_COLUMNS
    )
    return Table("Campaigns", titles, rows)


def render_html(digest: Digest, unsubscribe_url: str = "") -> str:
    return _templates.get_template("report_mail.html").render(
        digest=digest, unsubscribe_url=unsubscribe_url
    )


def render_text(digest: Digest, unsubscribe_url: str = "") -> str:
    lines = [digest.subject, ""]
    for figure in digest.figures:
        change = f" ({figure.change} vs {figure.previous})" if figure.change else ""
        lines.append(f"{figure.label}: {figure.value}{change}")
    for table in digest.tables:
        lines += ["", table.title, "-" * len(table.title)]
        if not table.rows:
            lines.append("No data in this period.")
        for label, *cells in table.rows:
            pairs = ", ".join(f"{c}: {v}" for c, v in zip(table.columns, cells, strict=True))
            lines.append(f"{label} — {pairs}")
    lines += ["", f"See the numbers on the stats page: {digest.link}"]
    if unsubscribe_url:
        lines += ["", f"Stop these mails: {unsubscribe_url}"]
    return "\n".join(lines) + "\n"
