"""What the stats page shows, worked out from Query results: numbers, chart, report rows, links.

The view parses the URL once into a Query (`page_query`); everything here derives further
queries from it (a report is the page's query with one dimension and its metrics) and turns
results into small display objects the template only prints. Every link keeps the period,
the filters and the comparison (`Query.params`), plus this page's own display choices
(chart metric, selected tabs), so any page state can be bookmarked and shared.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from flask import url_for

from tracker.db import Database
from tracker.export import download_name
from tracker.stats import (
    GOAL,
    METRICS,
    Filter,
    Note,
    Period,
    Query,
    QueryError,
    Result,
    first_day,
    funnel,
    funnel_names,
    parse_query,
    run,
    series_notes,
    site_goals,
)
from tracker.web.access import SiteAccess
from tracker.web.chart import Chart, line_chart
from tracker.web.format import (
    FORMATS,
    compact,
    metric_change,
    metric_value,
    one_decimal_percent,
)
from tracker.web.reports import CONVERSION_METRICS, PANELS, Panel, Report, panel_of

KPI_METRICS = (
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
)
# With a goal filter (conversion mode) the headline says what the traffic turned into.
CONVERSION_KPIS = ("visitors", "conversions", "conversion_rate", "total_revenue", "average_revenue")
# Amounts per currency are read, not drawn.
NOT_CHARTED = frozenset({"total_revenue", "average_revenue"})
CARD_ROWS = 9
LIST_ROWS = 100  # a page of a "more" list
# A report's CSV is read this many rows at a time. Each page runs the report's aggregation
# again: a 100,000-page site's Pages CSV at 10,000 rows a page took 10 runs (6.2 s of CPU,
# 1M events); in one page, 1.5 s, for ~50 MB more memory while it streams.
CSV_PAGE_ROWS = 100_000
DEFAULT_COMPARE = "previous_period"
PERIOD_CHOICES = (
    ("today", "Today"),
    ("yesterday", "Yesterday"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("month", "This month"),
    ("last_month", "Last month"),
    ("12mo", "12 months"),
    ("year", "This year"),
    ("all", "All time"),
)
COMPARE_CHOICES = (
    ("previous_period", "previous period"),
    ("year_over_year", "a year before"),
    ("off", "nothing"),
)
# Page-only parameters (not part of the Query): the chart metric and each card's tab.
# The Campaigns tab's level (campaign, source...) and sort column.
CAMPAIGN_LEVEL = "campaigns_level"
CAMPAIGN_SORT = "campaigns_sort"
UI_PARAMS = (
    "metric",
    "funnel",
    CAMPAIGN_LEVEL,
    CAMPAIGN_SORT,
    *(p.tab_param for p in PANELS),
    *(p.sort_param for p in PANELS),
)


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    on: bool = False


@dataclass(frozen=True)
class PageState:
    """The page's query, who is looking, and its display choices; builds every URL."""

    access: SiteAccess
    query: Query
    ui: Mapping[str, str]
    # The endpoint this state's links lead to: the overview, or the Campaigns tab.
    page: str = "stats.dashboard"

    @property
    def converting(self) -> bool:
        """Conversion mode: a goal is selected (`goal=Signup` in the URL)."""
        return self.query.filter_for(GOAL) is not None

    @property
    def kpi_metrics(self) -> tuple[str, ...]:
        return CONVERSION_KPIS if self.converting else KPI_METRICS

    @property
    def metric(self) -> str:
        chosen = self.ui.get("metric", "")
        if chosen in self.kpi_metrics and chosen not in NOT_CHARTED:
            return chosen
        return "conversions" if self.converting else "visitors"

    def params(
        self, query: Query | None = None, ui: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """URL parameters of this state, or of `query` with these display choices changed."""
        query = query or self.query
        params = query.params()
        if query.compare is None:
            params["compare"] = "off"  # else the page's default comparison comes back
        params.update({**self.ui, **(ui or {})})
        return params

    def url(self, query: Query | None = None, ui: Mapping[str, str] | None = None) -> str:
        return self.endpoint(self.page, self.params(query, ui))

    def endpoint(self, endpoint: str, params: Mapping[str, str], **values: Any) -> str:
        base = url_for(endpoint, **self.access.url_args, **values)
        return f"{base}?{urlencode(params)}" if params else base

    def report_query(self, report: Report, limit: int | None, offset: int = 0) -> Query:
        """The page's query broken down by the report's dimension (the same for page, CSV)."""
        return dataclasses.replace(
            self.query,
            metrics=self.report_metrics(report),
            dimensions=report.dimensions,
            filters=(*self.query.filters, *report.query_filters),
            compare=None,
            compare_period=None,
            order_by=self.report_order(report),
            limit=limit,
            offset=offset,
        )

    def report_order(self, report: Report) -> tuple[tuple[str, str], ...]:
        """The column the report is sorted by (`<panel>_sort`), else its first, descending."""
        name, _, direction = self.ui.get(panel_of(report).sort_param, "").partition(":")
        if name not in self.report_metrics(report):
            return ()
        return ((name, "asc" if direction == "asc" else "desc"),)

    def report_metrics(self, report: Report) -> tuple[str, ...]:
        """A report's columns: its own, or in conversion mode how its rows converted."""
        if self.converting and report.dimension != GOAL:
            return CONVERSION_METRICS
        return report.metrics


def page_query(
    db: Database, access: SiteAccess, args: Mapping[str, str], page: str = "stats.dashboard"
) -> PageState:
    """Parse the URL once (QueryError on bad input) into the page's PageState."""
    site = access.site
    query = parse_query(
        site,
        {k: v for k, v in args.items() if k not in UI_PARAMS},
        first_day=first_day(db, site),
        compare=DEFAULT_COMPARE,
    )
    return PageState(access, query, {k: args[k] for k in UI_PARAMS if args.get(k)}, page)


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    change: str
    trend: str  # good, bad or flat: the colour of the change
    link: Link
    previous: str


def _trend(metric: str, change: float | None) -> str:
    if not change:
        return "flat"
    return "good" if (change > 0) == METRICS[metric].higher_is_better else "bad"


def kpis(db: Database, state: PageState) -> list[Kpi]:
    query = dataclasses.replace(state.query, metrics=state.kpi_metrics, dimensions=())
    totals = run(db, query).totals
    out = []
    for metric in state.kpi_metrics:
        change = totals.get("change", {}).get(metric)
        previous = totals.get("comparison", {}).get(metric)
        out.append(
            Kpi(
                label=METRICS[metric].label,
                value=metric_value(metric, totals[metric]),
                change=metric_change(metric, change),
                trend=_trend(metric, change),
                link=Link(
                    METRICS[metric].label,
                    state.url(ui={"metric": metric}),
                    on=metric == state.metric,
                ),
                previous=metric_value(metric, previous) if "comparison" in totals else "",
            )
        )
    return out


def period_text(period: Period) -> str:
    """ "24 Oct 2026 – 22 Nov 2026", or one day."""
    start = period.start.strftime("%-d %b %Y")
    return start if period.start == period.end else f"{start} – {period.end.strftime('%-d %b %Y')}"


def interval(query: Query) -> str:
    """The chart's bucket: hours for one day, days up to a quarter, then weeks, then months."""
    days = query.period.days
    if days == 1:
        return "time:hour"
    if days <= 92:
        return "time:day"
    if query.period.kind in ("12mo", "year") or days > 366:
        return "time:month"
    return "time:week"


def _bucket_start(label: str) -> datetime:
    """A bucket label (an ISO date, or an hour with its offset) as an aware instant."""
    moment = datetime.fromisoformat(label)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _labels(dim: str, label: str) -> tuple[str, str]:
    """(tooltip text, axis text) for a bucket label."""
    if dim == "time:hour":
        hour = datetime.fromisoformat(label).strftime("%H:%M")
        return f"{datetime.fromisoformat(label).strftime('%a %-d %b')}, {hour}", hour
    day = date.fromisoformat(label)
    if dim == "time:month":
        return day.strftime("%B %Y"), day.strftime("%b %y")
    prefix = "Week of " if dim == "time:week" else ""
    return f"{prefix}{day.strftime('%a %-d %b %Y')}", day.strftime("%-d %b")


def chart(db: Database, state: PageState, now: datetime | None = None) -> Chart:
    """The chosen metric over the period, with the comparison period as a faint line."""
    metric, dim = state.metric, interval(state.query)
    result = run(db, dataclasses.replace(state.query, metrics=(metric,), dimensions=(dim,)))
    now = now or datetime.now(UTC)
    tz = state.query.site.tz
    today = now.astimezone(tz)
    values = []
    for row in result.rows:
        start = _bucket_start(row[dim])
        future = start > now if dim == "time:hour" else start.date() > today.date()
        values.append(None if future else row[metric])  # no line into the future
    texts = [_labels(dim, row[dim]) for row in result.rows]
    period = state.query.period
    partial = None
    if period.start_ms <= now.timestamp() * 1000 < period.end_ms:
        partial = max(i for i, v in enumerate(values) if v is not None)
        tooltip, axis = texts[partial]
        texts[partial] = (f"{tooltip} (so far)", axis)
    compare = result.comparison.rows if result.comparison else None
    buckets = series_notes(db, state.query, [row[dim] for row in result.rows])
    return line_chart(
        metric_label=METRICS[metric].label,
        labels=[t[0] for t in texts],
        values=values,
        fmt=FORMATS[metric],
        axis_labels=[t[1] for t in texts],
        notes=[_note_texts(dim, bucket) for bucket in buckets],
        note_labels=[_labels("time:day", row[dim][:10])[0] for row in result.rows]
        if dim == "time:hour"
        else None,
        compare_labels=[_labels(dim, r[dim])[0] for r in compare] if compare else None,
        compare_values=[r[metric] for r in compare] + [None] * (len(values) - len(compare))
        if compare
        else None,
        partial=partial,
    )


def _note_texts(dim: str, bucket: list[Note]) -> list[str]:
    """A bucket's notes as its marker says them: with their day on week and month charts."""
    if dim in ("time:week", "time:month"):
        return [f"{note.day.strftime('%-d %b')}: {note.text}" for note in bucket]
    return [note.text for note in bucket]


def series_query(state: PageState) -> Query:
    """The chart's buckets with every headline number, for the chart's CSV."""
    return dataclasses.replace(
        state.query,
        metrics=state.kpi_metrics,
        dimensions=(interval(state.query),),
        compare=None,
        compare_period=None,
    )


def chart_csv_url(state: PageState) -> str:
    return state.endpoint("stats.chart_csv", state.params())


@dataclass(frozen=True)
class Row:
    label: str
    url: str | None  # adds the row's value as a filter; None for "(none)" rows
    bar: float  # 0-100: the first metric relative to the top row
    cells: list[str]


@dataclass(frozen=True)
class Column:
    """A column heading; following `url` sorts the report by it (again: the other way)."""

    label: str
    url: str
    sorted: str  # "descending", "ascending" or "" (the aria-sort value)
    # What the metric means, where its label alone does not say (the heading's tooltip).
    definition: str = ""
    # Hidden on a phone, its cells too (Report.wide_only).
    wide_only: bool = False


@dataclass(frozen=True)
class Table:
    report: Report
    columns: list[Column]
    rows: list[Row]
    has_more: bool


@cache
def country_names() -> dict[str, str]:
    """ISO 3166 code -> English name, from the tz database's public-domain iso3166.tab."""
    text = resources.files("tracker.data").joinpath("iso3166.tab").read_text("utf-8")
    pairs = (line.split("\t", 1) for line in text.splitlines() if line and line[0] != "#")
    return {code: name for code, name in pairs}


def display_value(dimension: str, value: Any, empty_label: str) -> str:
    if value in ("", None):
        return empty_label
    if dimension == "visit:country":
        return country_names().get(value, value)
    if dimension == "event:props":
        return props_text(value)
    return str(value)


def props_text(raw: str) -> str:
    """Stored props (JSON text) as `plan: pro, size: L`."""
    try:
        props = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(props, dict):
        return raw
    return ", ".join(f"{key}: {value}" for key, value in props.items())


def table(
    state: PageState, report: Report, result: Result, sort_url: Callable[[str], str]
) -> Table:
    """Display rows; `sort_url(value)` links to this table sorted by `<panel>_sort=value`."""
    metrics = state.report_metrics(report)
    first = metrics[0]
    top = max((row[first] or 0 for row in result.rows), default=0) or 1
    rows = []
    for row in result.rows:
        values = [row[d] for d in report.dimensions]
        query = state.query
        for dim, value in zip(report.dimensions, values, strict=True):
            query = query.with_filter(Filter(dim, "is", (value,)))
        known = all(v not in ("", None) for v in values)
        rows.append(
            Row(
                label=" · ".join(
                    display_value(d, v, report.empty_label)
                    for d, v in zip(report.dimensions, values, strict=True)
                ),
                url=state.url(query) if known else None,
                bar=round(100 * (row[first] or 0) / top, 1),
                cells=[metric_value(m, row[m]) for m in metrics],
            )
        )
    return Table(report, _columns(state, report, metrics, sort_url), rows, result.has_more)


def _columns(
    state: PageState, report: Report, metrics: tuple[str, ...], sort_url: Callable[[str], str]
) -> list[Column]:
    order = dict(state.report_order(report) or ((metrics[0], "desc"),))
    columns = []
    for metric in metrics:
        direction = order.get(metric, "")
        again = f"{metric}:asc" if direction == "desc" else metric
        sorted_ = {"desc": "descending", "asc": "ascending"}.get(direction, "")
        found = METRICS[metric]
        wide_only = metric in report.wide_only
        columns.append(Column(found.label, sort_url(again), sorted_, found.definition, wide_only))
    return columns


@dataclass(frozen=True)
class Card:
    panel: Panel
    tabs: list[Link]
    table: Table
    more_url: str
    csv_url: str
    # What an empty card says instead of "Nothing in this period" (a Goals card with no
    # goals yet), and where to act on it.
    empty: Link | None = None


# Cards read from raw events (goal definitions can change at any time): the page loads
# them after it is shown (stats.js fetches `stats.card`), so its numbers never wait on them.
DEFERRED = frozenset({"goals"})


def cards(db: Database, state: PageState) -> list[Card | DeferredCard]:
    return [
        DeferredCard(panel, deferred_url(state, panel.key)) if panel.key in DEFERRED
        else card(db, state, panel)
        for panel in PANELS
    ]  # fmt: skip


@dataclass(frozen=True)
class DeferredCard:
    """A card the page fetches once shown; `url` answers its HTML (also without script:
    the link opens it)."""

    panel: Panel
    url: str


def deferred_url(state: PageState, key: str) -> str:
    return state.endpoint("stats.card", state.params(), key=key)


def card(db: Database, state: PageState, panel: Panel) -> Card:
    report = panel.report(state.ui.get(panel.tab_param))
    result = run(db, state.report_query(report, CARD_ROWS))

    def sort_url(value: str) -> str:
        return state.url(ui={panel.sort_param: value}) + f"#{panel.key}"

    tabs = [
        Link(r.tab, state.url(ui={panel.tab_param: r.key}) + f"#{panel.key}", r is report)
        for r in panel.reports
    ]
    params = state.params()
    no_goals = report.dimension == GOAL and not site_goals(db, state.access.site)
    return Card(
        panel=panel,
        tabs=tabs if len(tabs) > 1 else [],
        table=table(state, report, result, sort_url),
        more_url=state.endpoint("stats.report", params, key=report.key),
        csv_url=state.endpoint("stats.report_csv", params, key=report.key),
        empty=_no_goals(state) if no_goals else None,
    )


def _no_goals(state: PageState) -> Link:
    text = "No goals yet. A goal counts sign-ups, purchases or downloads, past visits included"
    if not state.access.can_manage:
        return Link(text + ".", "")
    return Link(text + ": add one in the settings.", _settings_url(state, "goals"))


def _settings_url(state: PageState, section: str) -> str:
    return url_for("site_settings.show", domain=state.access.site.domain) + f"#{section}"


@dataclass(frozen=True)
class FullList:
    """A report's "more" page: one page of rows, links to its neighbours, back and CSV."""

    table: Table
    page: int
    prev_url: str | None
    next_url: str | None
    back_url: str
    csv_url: str


def report_pages(db: Database, state: PageState, report: Report) -> Iterator[Result]:
    """Every row of the report, CSV_PAGE_ROWS at a time: the query runs again per page
    (rows in a stable order: ties break on the labels), so memory stays flat at any
    length. The first page runs at the call, so a bad query is refused before anything
    is sent."""
    first = run(db, state.report_query(report, CSV_PAGE_ROWS))

    def pages() -> Iterator[Result]:
        result, offset = first, 0
        yield result
        while result.has_more:
            offset += CSV_PAGE_ROWS
            result = run(db, state.report_query(report, CSV_PAGE_ROWS, offset))
            yield result

    return pages()


def full_list(db: Database, state: PageState, report: Report, page: int) -> FullList:
    result = run(db, state.report_query(report, LIST_ROWS, (page - 1) * LIST_ROWS))
    params = state.params()

    def page_url(number: int) -> str:
        return state.endpoint("stats.report", {**params, "p": str(number)}, key=report.key)

    panel = panel_of(report)

    def sort_url(value: str) -> str:
        return state.endpoint("stats.report", {**params, panel.sort_param: value}, key=report.key)

    return FullList(
        table=table(state, report, result, sort_url),
        page=page,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if result.has_more else None,
        back_url=state.url(ui={panel.tab_param: report.key}) + f"#{panel.key}",
        csv_url=state.endpoint("stats.report_csv", params, key=report.key),
    )


def filter_links(state: PageState) -> list[Link]:
    """Active filters as sentences, each with the URL that removes it."""
    return [
        Link(f.sentence(), state.url(state.query.without_filter(f.dimension)))
        for f in state.query.filters
    ]


def page_links(state: PageState) -> list[Link]:
    """The stats page's tabs, Overview and Campaigns, keeping the period and filters."""
    params = state.params()
    return [
        Link(label, state.endpoint(page, params), page == state.page)
        for page, label in (("stats.dashboard", "Overview"), ("stats.campaigns", "Campaigns"))
    ]


def period_links(state: PageState) -> list[Link]:
    current = state.query.period.kind
    links = []
    for kind, label in PERIOD_CHOICES:
        params = state.params()
        for key in ("from", "to", "date"):
            params.pop(key, None)
        params["period"] = kind
        links.append(Link(label, state.endpoint(state.page, params), kind == current))
    return links


def compare_links(state: PageState) -> list[Link]:
    current = state.query.compare or "off"
    links = []
    for mode, label in COMPARE_CHOICES:
        params = {**state.params(), "compare": mode}
        links.append(Link(label, state.endpoint(state.page, params), mode == current))
    return links


def hidden_fields(state: PageState, *drop: str) -> dict[str, str]:
    """The current state as hidden form fields (for the custom-range form), minus `drop`."""
    return {k: v for k, v in state.params().items() if k not in drop}


def csv_name(state: PageState, key: str) -> str:
    """`example.com-sources-2026-10-24-to-2026-11-22.csv`."""
    period = state.query.period
    return download_name(state.access.site.domain, key, period.start, period.end)


@dataclass(frozen=True)
class FunnelStep:
    number: int
    goal: str
    visitors: str
    from_previous: str
    from_start: str
    dropped: str
    bar: float  # 0-100: of the first step's visitors


@dataclass(frozen=True)
class FunnelCard:
    tabs: list[Link]  # one per funnel of the site
    name: str
    steps: list[FunnelStep]
    conversion: str  # the last step's share of the first
    broken: str  # why it cannot be counted (a step's goal deleted), else ""
    fix_url: str  # the settings page, for whoever can manage the site
    csv_url: str


def funnel_card(db: Database, state: PageState) -> FunnelCard | None:
    """The chosen funnel (`?funnel=Name`, else the first by name) over the page's period
    and filters; None when the site has no funnel."""
    names = funnel_names(db, state.access.site)
    if not names:
        return None
    chosen = state.ui.get("funnel", "")
    name = chosen if chosen in names else names[0]
    tabs = [Link(n, state.url(ui={"funnel": n}) + "#funnels", n == name) for n in names]
    fix_url = _settings_url(state, "funnels") if state.access.can_manage else ""
    csv_url = state.endpoint("stats.funnel_csv", {**state.params(), "funnel": name})
    try:
        result = funnel(db, state.query, name)
    except QueryError as error:
        return FunnelCard(tabs, name, [], "", str(error), fix_url, csv_url)
    first = result.steps[0].visitors if result.steps else 0
    steps = [
        FunnelStep(
            number=i,
            goal=step.goal,
            visitors=compact(step.visitors),
            from_previous=one_decimal_percent(step.from_previous) if i > 1 else "",
            from_start=one_decimal_percent(step.from_start),
            dropped=compact(step.dropped) if i > 1 else "",
            bar=round(100 * step.visitors / first, 1) if first else 0.0,
        )
        for i, step in enumerate(result.steps, start=1)
    ]
    conversion = one_decimal_percent(result.conversion_rate)
    return FunnelCard(tabs, name, steps, conversion, "", fix_url, csv_url)
