"""Email reports and alerts (issue 19): what one scheduled report and one alert check cost.

On the stats dataset (bench/datagen.py, SQLite), in-process, each timed `stats_reps` times
after a warm-up, medians: building the weekly report of the dataset's last whole week and
the monthly one of its first month (tracker.digest: headline with comparison, sources,
channels, campaigns, pages, goals; rendered as HTML and text), and checking a traffic-drop
and a goal-drop rule (tracker.alerts: raw rows over the exact recent window; the goal's
usual rate from 4 weeks of whole days, read from goal hits and rollups once a day: the
first check of a day and the later ones). The baseline, timed in
the same run, is the stats page's headline for the same week (`run` of the report's Query):
a report is a handful of such queries, sent once a week per site; a check runs every 5
minutes per rule, so its cost is what the jobs process pays.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from bench import datagen
from bench.common import Figure, Options
from tracker.alerts import CHECKS, DROP, GOAL_DROP, usual_conversions
from tracker.db import Database
from tracker.db.models import AlertRule, Goal, Site
from tracker.digest import (
    build_digest,
    last_complete_period,
    render_html,
    render_text,
    report_query,
)
from tracker.stats import run as run_query
from tracker.subscribers import MONTHLY, WEEKLY


def _timed(action: Callable[[], object], reps: int) -> float:
    """Median milliseconds of `reps` runs after one warm-up run."""
    action()
    samples = []
    for _ in range(reps):
        began = time.perf_counter()
        action()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def run(opts: Options) -> list[Figure]:
    data = datagen.dataset(opts.events)
    db = Database(data.url)
    try:
        with db.session() as session:
            site = session.query(Site).filter(Site.domain == data.site).one()
            goal = session.query(Goal).filter(Goal.site_id == site.id).order_by(Goal.id).first()
        last = date.fromisoformat(data.last_day)
        week = last_complete_period(WEEKLY, last + timedelta(days=1))
        month = last_complete_period(
            MONTHLY, date.fromisoformat(data.first_day) + timedelta(days=31)
        )
        now = datetime.combine(last, dtime(15), UTC)
        # The morning after the data: no conversion in the window, so the usual rate is read
        # too (the path that fires).
        quiet = datetime.combine(last + timedelta(days=1), dtime(6), UTC)
        drop = AlertRule(id=0, site_id=site.id, kind=DROP, threshold=50)
        goal_drop = AlertRule(
            id=0, site_id=site.id, kind=GOAL_DROP, threshold=6, goal_id=goal.id if goal else None
        )

        def report(kind: str, period: tuple[date, date]) -> Callable[[], object]:
            def build() -> object:
                digest = build_digest(db, site, kind, *period, "https://stats.example")
                return render_html(digest) + render_text(digest)

            return build

        reps = opts.stats_reps
        baseline = _timed(lambda: run_query(db, report_query(site, *week)), reps)
        timings = {
            f"weekly report {week[0]}..{week[1]}": _timed(report(WEEKLY, week), reps),
            f"monthly report {month[0]:%Y-%m}": _timed(report(MONTHLY, month), reps),
            "alert check: traffic drop (5 days to this hour)": _timed(
                lambda: CHECKS[DROP](db, site, drop, now), reps
            ),
            "alert check: goal drop, first of the day (4 weeks read)": _timed(
                lambda: (
                    usual_conversions.cache_clear(),
                    CHECKS[GOAL_DROP](db, site, goal_drop, quiet),
                ),
                reps,
            ),
            "alert check: goal drop, later that day": _timed(
                lambda: CHECKS[GOAL_DROP](db, site, goal_drop, quiet), reps
            ),
        }
    finally:
        db.dispose()
    size = f"{data.events / 1e6:g}M" if data.events >= 1e6 else f"{data.events:,}"
    return [
        Figure(
            f"reports sqlite, {size} events",
            metric,
            value,
            "ms",
            baseline=baseline,
            baseline_name="the page's headline, same week",
        )
        for metric, value in timings.items()
    ]
