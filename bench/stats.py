"""Stats latency: the stats page and the Stats API over 30 days of the generated dataset.

`tracker serve` runs on the cached dataset (bench/datagen.py); each request is timed from
the client, sequentially, after one warm-up request; the figure is the median. The baseline,
timed in the same run, is the raw query a page cannot afford per report (docs/ARCHITECTURE.md,
"Storage": why reports read rollups): count(distinct visitor) over the same 30 days of raw
events, on the same database.
On PostgreSQL the same dataset is copied into our own database (bench.datagen.postgres_copy).

Goals and funnels (issue 13) are timed in-process through the same calls the page makes:
the Goals card, the page in conversion mode (its headline, sources and pages reports under
a goal filter) and the bench site's 4-step funnel (bench.datagen.GOALS, FUNNEL), against
the same floor; the page in conversion mode is also requested over HTTP. So is the
Campaigns tab (issue 14), whose report is also timed in-process (bench.datagen.COSTS).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import event, text

from bench import datagen
from bench.common import Figure, Options, Unavailable, bytes_on_disk, http, median, tracker_serve
from tracker.app import create_app
from tracker.config import Settings
from tracker.db import Database
from tracker.stats import SiteRef, funnel, parse_query
from tracker.stats import run as run_query
from tracker.stats.campaigns import campaign_report
from tracker.web.dashboard import CARD_ROWS, CONVERSION_KPIS
from tracker.web.reports import CONVERSION_METRICS, REPORTS

PAGE_TARGET_MS = {1_000_000: 150.0, 10_000_000: 1000.0}
# Issue 13, on SQLite: the Goals card and the page in conversion mode, and a 4-step funnel.
GOALS_TARGET_MS = {1_000_000: 150.0}
FUNNEL_TARGET_MS = {1_000_000: 300.0}
# Issue 14, on SQLite: the Campaigns tab's report (per campaign, cost and conversions).
CAMPAIGN_TARGET_MS = {1_000_000: 150.0}
CAMPAIGN_REPORT = "campaign report (cost, visits, conversions, revenue)"
# The goal the page is in conversion mode for: it carries revenue.
CONVERSION_GOAL = "Purchase"
STATEMENTS_SHOWN = 5


def _day_ms(day: str, *, end: bool = False) -> int:
    moment = datetime.combine(date.fromisoformat(day) + timedelta(days=int(end)), dtime(), UTC)
    return int(moment.timestamp() * 1000)


def raw_distinct_visitors_ms(db: Database, data: datagen.Dataset) -> float:
    with db.engine.connect() as conn:
        began = time.perf_counter()
        conn.execute(
            text(
                "SELECT count(DISTINCT visitor_id) FROM events WHERE site_id = 1"
                " AND timestamp_ms >= :start AND timestamp_ms < :end"
            ),
            {"start": _day_ms(data.first_day), "end": _day_ms(data.last_day, end=True)},
        ).one()
        return (time.perf_counter() - began) * 1000


# In-process queries through tracker.stats (no HTTP, no template): where a page's time goes.
QUERIES = {
    "query: totals": {"metrics": "visitors,visits,pageviews,bounce_rate,visit_duration"},
    "query: by day": {"metrics": "visitors,pageviews", "dimension": "time:day"},
    "query: by source": {
        "metrics": "visitors,visits,bounce_rate",
        "dimension": "visit:source",
        "limit": "10",
    },
    "query: by page": {"metrics": "visitors,pageviews", "dimension": "event:page", "limit": "10"},
    "query: by page, filtered": {
        "metrics": "visitors,pageviews",
        "dimension": "event:page",
        "limit": "10",
        "source": "Google",
    },
}


def query_samples(db: Database, data: datagen.Dataset, reps: int) -> dict[str, list[float]]:
    site = SiteRef(1, data.site, "UTC")
    period = {"period": "custom", "from": data.first_day, "to": data.last_day}
    samples: dict[str, list[float]] = {}
    for name, args in QUERIES.items():
        query = parse_query(site, {**period, **args})
        for _ in range(reps):
            began = time.perf_counter()
            run_query(db, query)
            samples.setdefault(name, []).append((time.perf_counter() - began) * 1000)
    return samples


def _card(report: str, **extra: str) -> dict[str, str]:
    """A card's query as the page makes it (in conversion mode: the conversion columns)."""
    metrics = REPORTS[report].metrics if report == "goals" or not extra else CONVERSION_METRICS
    args = {
        "metrics": ",".join(metrics),
        "dimension": REPORTS[report].dimension,
        "limit": str(CARD_ROWS),
    }
    return {**args, **extra}


CONVERTING = {"goal": CONVERSION_GOAL}
# (figure name, queries run one after the other, target by dataset size on SQLite)
GOAL_WORK: list[tuple[str, list[dict[str, str]], dict[int, float]]] = [
    ("goals card", [_card("goals")], GOALS_TARGET_MS),
    (
        "conversion: headline",
        [{"metrics": ",".join(CONVERSION_KPIS), **CONVERTING}],
        {},
    ),
    ("conversion: sources card", [_card("sources", **CONVERTING)], {}),
    ("conversion: pages card", [_card("pages", **CONVERTING)], {}),
    (
        "conversion mode (headline + sources + pages)",
        [
            {"metrics": ",".join(CONVERSION_KPIS), **CONVERTING},
            _card("sources", **CONVERTING),
            _card("pages", **CONVERTING),
        ],
        GOALS_TARGET_MS,
    ),
]


def goal_calls(db: Database, data: datagen.Dataset) -> list[tuple[str, Callable[[], Any]]]:
    """(figure name, call) of each goal workload: GOAL_WORK, the funnel, the campaign
    report (issue 14: cost beside visits, conversions on any goal and revenue)."""
    site = SiteRef(1, data.site, "UTC")
    period = {"period": "custom", "from": data.first_day, "to": data.last_day}
    calls: list[tuple[str, Callable[[], Any]]] = []
    for name, args, _ in GOAL_WORK:
        queries = [parse_query(site, {**period, **a}) for a in args]
        calls.append((name, lambda qs=queries: [run_query(db, q) for q in qs]))
    whole = parse_query(site, period)
    funnel_name, steps = datagen.FUNNEL
    calls.append((f"funnel, {len(steps)} steps", lambda: funnel(db, whole, funnel_name)))
    calls.append((CAMPAIGN_REPORT, lambda: campaign_report(db, whole, "campaign")))
    return calls


def goal_samples(
    db: Database, data: datagen.Dataset, reps: int, *, only: tuple[str, ...] = ()
) -> dict[str, list[float]]:
    """Milliseconds of each goal workload after one warm-up; `only` keeps the named ones."""
    samples: dict[str, list[float]] = {}
    for name, call in goal_calls(db, data):
        if only and name not in only:
            continue
        call()
        for _ in range(reps):
            began = time.perf_counter()
            call()
            samples.setdefault(name, []).append((time.perf_counter() - began) * 1000)
    return samples


def goal_statements(url: str, data: datagen.Dataset) -> list[str]:
    """Each goal workload once more, with its slowest SQL: where its time goes."""
    db = Database(url)
    lines = []
    try:
        for name, call in goal_calls(db, data):
            if name.startswith("conversion mode"):
                continue  # the sum of the three before it
            with statement_timer(db) as timings:
                began = time.perf_counter()
                call()
                total = (time.perf_counter() - began) * 1000
            lines += _sql_report(f"{name}: ", total, timings)
    finally:
        db.dispose()
    return lines


def goal_target(name: str, events: int) -> float | None:
    if name.startswith("funnel"):
        return FUNNEL_TARGET_MS.get(events)
    if name == CAMPAIGN_REPORT:
        return CAMPAIGN_TARGET_MS.get(events)
    return next((t.get(events) for n, _, t in GOAL_WORK if n == name), None)


@contextmanager
def statement_timer(db: Database) -> Iterator[list[tuple[float, str]]]:
    """Collects (milliseconds, SQL) of every statement the engine runs inside the block."""
    timings: list[tuple[float, str]] = []

    def before(conn: Any, *_: Any) -> None:
        conn.info["bench_began"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        timings.append(((time.perf_counter() - conn.info["bench_began"]) * 1000, statement))

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        yield timings
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)


def page_statements(opts: Options, url: str, paths: list[tuple[str, str]]) -> list[str]:
    """Render each page in-process and list its slowest SQL: what limits the page's time."""
    settings = Settings(
        data_dir=str(opts.workdir / "page-sql"),
        database_url=url,
        secret_key="bench",
        scheduler_enabled=False,
    )
    app = create_app(settings)
    client = app.test_client()
    lines = []
    for name, path in paths:
        with statement_timer(app.extensions["tracker.db"]) as timings:
            began = time.perf_counter()
            status = client.get(path).status_code
            total = (time.perf_counter() - began) * 1000
        lines += _sql_report(f"{name} ({path}): {status}, ", total, timings)
    app.extensions["tracker.db"].dispose()
    return lines


def _sql_report(head: str, total: float, timings: list[tuple[float, str]]) -> list[str]:
    """`head`, the time and its SQL share, then the slowest statements, a line each."""
    sql = sum(ms for ms, _ in timings)
    lines = [
        f"{head}{total:.0f} ms, of which SQL {sql:.0f} ms in {len(timings)} statements; slowest:"
    ]
    for ms, statement in sorted(timings, reverse=True)[:STATEMENTS_SHOWN]:
        lines.append(f"  {ms:8.0f} ms  {_describe(statement)}")
    return lines


def _describe(statement: str) -> str:
    """What a stats statement reads: its breakdown column and rollups or raw rows."""
    flat = " ".join(statement.split())
    if "stats_rollups" in flat:
        return "rollups: " + flat[:160]
    grouped = re.search(r"SELECT (\S+) AS d0", flat)
    column = grouped.group(1) if grouped else "no dimension"
    return f"raw rows, by {column}: {flat[:160]}"


def requests(data: datagen.Dataset) -> list[tuple[str, str, dict[str, str]]]:
    """(name, path and query, headers) of each timed request."""
    period = {"period": "custom", "from": data.first_day, "to": data.last_day}
    api_period = {
        "site_id": data.site,
        "period": "custom",
        "date": f"{data.first_day},{data.last_day}",
    }
    auth = {"Authorization": f"Bearer {data.api_key}"}
    metrics = "visitors,visits,pageviews,bounce_rate,visit_duration"
    return [
        ("page", f"/sites/{data.site}?{urlencode(period)}", {}),
        ("page, filtered", f"/sites/{data.site}?{urlencode({**period, 'source': 'Google'})}", {}),
        ("page, conversion mode", f"/sites/{data.site}?{urlencode({**period, **CONVERTING})}", {}),
        ("page, campaigns tab", f"/sites/{data.site}/campaigns?{urlencode(period)}", {}),
        (
            "API aggregate",
            f"/api/v1/stats/aggregate?{urlencode({**api_period, 'metrics': metrics})}",
            auth,
        ),
        (
            "API aggregate, filtered",
            "/api/v1/stats/aggregate?"
            + urlencode({**api_period, "metrics": metrics, "filters": "visit:source==Google"}),
            auth,
        ),
        (
            "API breakdown",
            "/api/v1/stats/breakdown?"
            + urlencode({**api_period, "property": "visit:source", "metrics": metrics}),
            auth,
        ),
        (
            "API breakdown, filtered",
            "/api/v1/stats/breakdown?"
            + urlencode(
                {
                    **api_period,
                    "property": "event:page",
                    "metrics": "visitors,pageviews",
                    "filters": "visit:source==Google",
                }
            ),
            auth,
        ),
    ]


def run(opts: Options) -> list[Figure]:
    data = datagen.dataset(opts.events)
    figures: list[Figure] = []
    report: list[str] = []
    for database in opts.databases:
        try:
            url = data.url if database == "sqlite" else datagen.postgres_copy(data)
        except Unavailable as exc:
            figures.append(Figure(f"stats {database}", "-", float("nan"), "", note=str(exc)))
            continue
        figures += _measure(opts, data, database, url)
        pages = [(name, path) for name, path, _ in requests(data) if name.startswith("page")]
        report += [
            f"# {database}, {data.events:,} events",
            *page_statements(opts, url, pages),
            *goal_statements(url, data),
            "",
        ]
    opts.results.mkdir(parents=True, exist_ok=True)
    (opts.results / "stats-page-sql.txt").write_text("\n".join(report))
    return figures


def _measure(opts: Options, data: datagen.Dataset, database: str, url: str) -> list[Figure]:
    size = f"{data.events / 1e6:g}M" if data.events >= 1e6 else f"{data.events:,}"
    bench = f"stats {database}, {size} events"
    db = Database(url)
    try:
        baseline = median([raw_distinct_visitors_ms(db, data) for _ in range(opts.stats_reps)])
        samples_by_query = query_samples(db, data, opts.stats_reps)
        samples_by_goal = goal_samples(db, data, opts.stats_reps)
    finally:
        db.dispose()
    figures = [
        Figure(
            f"footprint {database}",
            f"DB bytes per event, {size}",
            bytes_on_disk(url) / data.events,
            "B",
            note=f"the generated dataset: {data.events:,} events, {data.visits:,} visits, rollups",
        )
    ]
    figures += [
        Figure(
            bench,
            name,
            median(samples),
            "ms",
            baseline=baseline,
            baseline_name="raw count(distinct visitor)",
            samples=samples,
        )
        for name, samples in samples_by_query.items()
    ]
    for name, samples in samples_by_goal.items():
        limit = goal_target(name, opts.events) if database == "sqlite" else None
        note = "in-process, as the page calls it" if name.startswith("goals") else ""
        figures.append(_against_floor(bench, name, samples, baseline, limit, note))
    with tracker_serve(opts.workdir / f"stats-{database}", url) as server:
        for name, path, headers in requests(data):
            began = time.perf_counter()
            status, _ = http("GET", server.base + path, headers=headers)
            cold = (time.perf_counter() - began) * 1000
            if status != 200:
                note = f"GET {path.split('?')[0]} answered {status}"
                figures.append(Figure(bench, name, float("nan"), "ms", note=note))
                continue
            samples = []
            for _ in range(opts.stats_reps):
                began = time.perf_counter()
                http("GET", server.base + path, headers=headers)
                samples.append((time.perf_counter() - began) * 1000)
            targeted = name.startswith("page") and database == "sqlite"
            limit = PAGE_TARGET_MS.get(opts.events) if targeted else None
            note = f"first request {cold:.0f} ms"
            figures.append(_against_floor(bench, name, samples, baseline, limit, note))
    return figures


def _against_floor(
    bench: str,
    name: str,
    samples: list[float],
    floor: float,
    limit: float | None,
    note: str,
) -> Figure:
    """A timing's median beside the same-run floor, checked against its target if any."""
    value = median(samples)
    return Figure(
        bench,
        name,
        value,
        "ms",
        baseline=floor,
        baseline_name="raw count(distinct visitor)",
        target=f"<= {limit:g}" if limit else "",
        passed=value <= limit if limit else None,
        note=note,
        samples=samples,
    )
