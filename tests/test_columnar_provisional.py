"""Provisional parts: yesterday in the columnar store before it is closed (issue 16).

A UTC day is closed a day and two hours after it ends; until then its visits may still
change (a visit going on past midnight, an engagement beacon from a tab left open, a late
event). So the builder writes such a day into a provisional part soon after it ends, the
writer records every later change to its visits (`visit_changes`), and a report leaves
those visitors out of the part and reads them from the database: the same rows as the raw
path, without reading the day's other visits from the database.

The days are real ones (the writer records changes by its own clock): D is the day before
yesterday, built as if it were 03:00 the day after D (D closed at 02:00 the day after).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.helpers import store_events
from tests.test_columnar_build import cli_env, run_cli
from tracker.columnar import engine
from tracker.columnar.build import refresh
from tracker.columnar.layout import DAY_MS, read_manifest
from tracker.db import Database
from tracker.db.models import Visit, VisitChange
from tracker.goals import add_goal
from tracker.jobs import find_job
from tracker.sites import add_site, find_site
from tracker.stats import parse_query, run
from tracker.stats.query import Query
from tracker.storage.changes import KEPT_MS

SITE = "provisional.example"
HEADLINE = "visitors,visits,pageviews,bounce_rate,visit_duration,time_on_page"
REPORTS: list[dict[str, str]] = [
    {"metrics": HEADLINE},
    {"metrics": HEADLINE, "dimension": "time:day"},
    {"metrics": "visitors,visits,pageviews", "dimension": "time:hour"},
    {"metrics": HEADLINE, "page": "!/"},
    {"metrics": "visitors,pageviews,time_on_page,scroll_depth", "dimension": "event:page"},
    {"metrics": "visitors,visits,bounce_rate", "dimension": "visit:source"},
    {"metrics": HEADLINE, "source": "!Google"},
    {"metrics": "visitors,visits", "page": "/blog*", "dimension": "visit:entry_page"},
    {"metrics": "visitors,visits,conversion_rate", "goal": "Blog"},
    {"metrics": "visitors,pageviews", "goal": "Blog", "dimension": "event:page"},
]
PAGES = ["/", "/blog/a", "/pricing", "/blog/b"]
REFERRERS = ["", "https://www.google.com/", "https://news.example.org/"]


def day_d() -> date:
    """The day before yesterday (UTC): not closed before 02:00 today."""
    return datetime.now(UTC).date() - timedelta(days=2)


def at(day: date, hours: float) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hours)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def pageview(ip: str, moment: datetime, page: str, **more: Any) -> dict[str, Any]:
    return {"ip": ip, "url": f"https://{SITE}{page}", "timestamp": moment.isoformat(), **more}


def traffic(d: date) -> list[dict[str, Any]]:
    """Three days (D-1 closed, D provisional, D+1 read live): visitors through each day,
    two of D's visits going on past midnight, a visitor with two visits on D."""
    events = []
    for offset, day in enumerate((d - timedelta(days=1), d, d + timedelta(days=1))):
        for person in range(6):
            start = at(day, 1 + 3.5 * person)
            ip = f"198.51.100.{10 * offset + person + 1}"
            for step in range(1 + person % 3):
                page = PAGES[(person + step) % len(PAGES)]
                events.append(
                    pageview(
                        ip,
                        start + timedelta(minutes=4 * step),
                        page,
                        referrer=REFERRERS[person % 3] if step == 0 else "",
                        pageview_id=f"p{offset}-{person}-{step}",
                    )
                )
    # Over midnight: started on D, last seen on D+1 (before the build).
    events += [
        pageview("203.0.113.1", at(d, 23.9), "/", pageview_id="m1"),
        pageview("203.0.113.1", at(d, 24.05), "/pricing", pageview_id="m2"),
        pageview("203.0.113.2", at(d, 23.95), "/blog/a", pageview_id="n1"),
    ]
    # One visitor, two visits on D (the second will change).
    events += [
        pageview("203.0.113.3", at(d, 8), "/", pageview_id="t1"),
        pageview("203.0.113.3", at(d, 20), "/blog/b", pageview_id="t2"),
    ]
    return events


def changes(d: date) -> list[dict[str, Any]]:
    """What arrives after the build: a visit of D going on after midnight, an engagement
    beacon for a page of D left open, a late pageview dated D (a new visit), and the second
    visit of D's two-visit visitor read for longer."""
    return [
        pageview("203.0.113.2", at(d, 24.2), "/pricing", pageview_id="n2"),
        {"type": "engagement", "ip": "203.0.113.1", "url": f"https://{SITE}/pricing",
         "pageview_id": "m2", "engaged_ms": 95_000, "scroll": 70,
         "timestamp": at(d, 24.3).isoformat()},
        pageview("203.0.113.9", at(d, 12), "/blog/a", referrer="https://www.google.com/"),
        {"type": "engagement", "ip": "203.0.113.3", "url": f"https://{SITE}/blog/b",
         "pageview_id": "t2", "engaged_ms": 40_000, "scroll": 90,
         "timestamp": at(d, 20.2).isoformat()},
    ]  # fmt: skip


@pytest.fixture
def zone() -> str:
    """The site's time zone (tests of what reports read take Europe/Paris too)."""
    return "UTC"


# A local day across two UTC days: the split is Paris midnight, 23:00 UTC.
BOTH_ZONES = pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])


@pytest.fixture
def built(app: Flask, db: Database, tmp_path: Path, zone: str) -> Any:
    """The site's traffic built at 03:00 the day after D."""
    d = day_d()
    with db.session() as session:
        site = add_site(session, SITE, timezone=zone)
        add_goal(session, site, name="Blog", kind="page", pattern="/blog*")
    store_events(app, traffic(d), site=SITE)
    root = tmp_path / "columnar"
    refresh(db, root, now_ms=ms(at(d, 27)), budget_s=None)
    db.columnar_root = root
    with db.session() as session:
        found = find_site(session, SITE)
        assert found is not None
    now = datetime.now(UTC)
    period = {"period": "custom", "from": str(d - timedelta(days=1)), "to": str(d)}
    if zone != "UTC":
        period["to"] = str(d + timedelta(days=1))

    def query(args: dict[str, str]) -> Query:
        return parse_query(found, {**period, **args}, now=now)

    return d, root, found, query


def test_the_day_after_the_closed_ones_is_a_provisional_part(db: Database, built: Any) -> None:
    d, root, site, _ = built
    manifest = read_manifest(root, site.id)
    assert manifest is not None
    d_start = (d - date(1970, 1, 1)).days * DAY_MS
    assert manifest.complete_until_ms == d_start
    assert manifest.provisional_until_ms == d_start + DAY_MS
    provisional = [p for p in manifest.parts if p.provisional]
    assert all(p.snapshot_ms > 0 for p in provisional)
    assert [(p.first_day, p.last_day) for p in provisional] == [(d_start // DAY_MS,) * 2]
    assert all(p.last_day < d_start // DAY_MS for p in manifest.parts if not p.provisional)


def test_status_says_until_when_parts_are_provisional(
    db: Database, built: Any, database_url: str
) -> None:
    d, root, _, _ = built
    status = run_cli(cli_env(database_url, root), "columnar", "status")
    header, line = (
        status.splitlines()[0],
        next(row for row in status.splitlines() if row.startswith(SITE)),
    )
    assert "complete until" in header and "provisional until" in header
    assert f"{d} 00:00 UTC  {d + timedelta(days=1)} 00:00 UTC" in line


@BOTH_ZONES
def test_reports_over_a_provisional_day_changed_since_match_the_raw_path(
    app: Flask, db: Database, built: Any
) -> None:
    d, root, site, query = built
    before = {i: run(db, query(args), rollups=False).rows for i, args in enumerate(REPORTS)}
    start = ms(datetime.now(UTC))
    store_events(app, changes(d), site=SITE)
    with db.engine.connect() as conn:
        manifest = read_manifest(root, site.id)
        assert manifest is not None
        holding = engine.held(conn, manifest, manifest.provisional_until_ms)
        changed = set(
            conn.scalars(select(VisitChange.visitor_id).where(VisitChange.changed_ms >= start))
        )
    # The four changed visits' visitors (one with another visit of D, left out too), and
    # those stored just before the build: a change stamped less than a transaction's
    # length before the snapshot may have been committed after it.
    assert len(changed) == 4 and changed <= set(holding.changed)
    changed_reports = 0
    for index, args in enumerate(REPORTS):
        q = query(args)
        raw = run(db, q, rollups=False)
        stored = run(db, q)
        assert set(stored.meta["paths"]) <= {"columnar+live", "columnar"}, args
        assert stored.rows == raw.rows, args
        changed_reports += raw.rows != before[index]
    # The changes show in most reports: reading the part alone would be wrong there.
    assert changed_reports >= 6


def test_every_change_to_a_past_days_visit_is_recorded_with_the_writers_clock(
    app: Flask, db: Database, built: Any
) -> None:
    d, _, site, _ = built
    start = ms(datetime.now(UTC))
    store_events(app, changes(d), site=SITE)
    # Today's visits and those of days older than yesterday's eve are not recorded.
    today = datetime.now(UTC)
    store_events(app, [pageview("203.0.113.50", today - timedelta(seconds=5), "/")], site=SITE)
    store_events(app, [pageview("203.0.113.51", at(d, -30), "/")], site=SITE)
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(Visit.visitor_id, Visit.started_ms, VisitChange.changed_ms)
            .join(VisitChange, VisitChange.visit_id == Visit.id)
            .where(VisitChange.changed_ms >= start)
        ).all()
    assert len(rows) == 4
    assert all(
        at(d, 0) <= datetime.fromtimestamp(r.started_ms / 1000, UTC) < at(d, 24) for r in rows
    )
    assert all(start <= r.changed_ms <= ms(datetime.now(UTC)) for r in rows)


def test_too_many_changed_visitors_leave_the_provisional_days_to_the_database(
    app: Flask, db: Database, built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    d, root, site, query = built
    store_events(app, changes(d), site=SITE)
    monkeypatch.setattr(engine, "MAX_CHANGED", 3)
    with db.engine.connect() as conn:
        manifest = read_manifest(root, site.id)
        assert manifest is not None
        holding = engine.held(conn, manifest, manifest.provisional_until_ms)
    assert holding.changed == () and holding.until_ms == holding.provisional_ms
    for args in REPORTS[:4]:
        q = query(args)
        assert run(db, q).rows == run(db, q, rollups=False).rows, args


def test_late_events_dated_on_a_provisional_day_have_its_part_written_again(
    app: Flask, db: Database, built: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import of yesterday's log, say: every visit it makes is a changed one, read from
    the database by every report, until the next build writes the day's part again."""
    d, root, site, query = built
    # The margin is for writers' transactions in flight: none here, and the test cannot
    # wait ten minutes for the import's changes to be older than the new snapshot less it.
    monkeypatch.setattr(engine, "COMMIT_WITHIN_MS", 0)
    late = [pageview(f"192.0.2.{n}", at(d, 6 + n / 10), "/blog/b") for n in range(1, 41)]
    store_events(app, late, site=SITE)

    def changed() -> int:
        manifest = read_manifest(root, site.id)
        assert manifest is not None
        with db.engine.connect() as conn:
            return len(engine.held(conn, manifest, manifest.provisional_until_ms).changed)

    assert changed() == 40
    old = {p.visits for p in read_manifest(root, site.id).parts}  # type: ignore[union-attr]
    assert refresh(db, root, now_ms=ms(at(d, 27)), budget_s=None) == 1
    manifest = read_manifest(root, site.id)
    assert manifest is not None
    rewritten = {p.first_day: p.provisional for p in manifest.parts if p.visits not in old}
    # The day before too, closed: late events may belong to its visits (as ever).
    day = (d - date(1970, 1, 1)).days
    assert rewritten == {day: True, day - 1: False}
    assert changed() == 0
    for args in REPORTS:
        q = query(args)
        assert run(db, q).rows == run(db, q, rollups=False).rows, args
    # A next build finds nothing late: nothing is written.
    assert refresh(db, root, now_ms=ms(at(d, 27)), budget_s=None) == 0


@BOTH_ZONES
def test_a_provisional_day_once_closed_is_written_again_for_good(
    app: Flask, db: Database, built: Any
) -> None:
    d, root, site, query = built
    store_events(app, changes(d), site=SITE)
    refresh(db, root, now_ms=ms(at(d, 50)), budget_s=None)
    manifest = read_manifest(root, site.id)
    assert manifest is not None
    d_day = (d - date(1970, 1, 1)).days
    assert manifest.complete_until_ms == (d_day + 1) * DAY_MS
    assert [p.provisional for p in manifest.parts if p.first_day <= d_day <= p.last_day] == [False]
    for args in REPORTS:
        q = query(args)
        stored = run(db, q)
        assert stored.rows == run(db, q, rollups=False).rows, args


def test_the_jobs_delete_changes_a_week_old(app: Flask, db: Database, built: Any) -> None:
    d, _, site, _ = built
    store_events(app, changes(d), site=SITE)
    with db.engine.begin() as conn:
        kept = conn.scalar(select(func.count()).select_from(VisitChange)) - 1
        conn.execute(
            VisitChange.__table__.update()
            .where(VisitChange.visit_id == select(func.min(VisitChange.visit_id)).scalar_subquery())
            .values(changed_ms=ms(datetime.now(UTC)) - KEPT_MS - 1)
        )
    find_job("prune_visit_changes").func(db, app.extensions["tracker.settings"])
    with db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(VisitChange)) == kept > 0
