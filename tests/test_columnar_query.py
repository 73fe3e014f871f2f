"""The columnar store answers every report exactly as the raw path does (issue 16).

A week of traffic on a site in Europe/Paris across the end of summer time (2026-10-25,
02:00 local comes twice), stored through the real collector on SQLite and PostgreSQL, with
visits just before and after local midnight (22:00 UTC in summer, 23:00 UTC in winter) and
UTC midnight. The builder's store holds whole UTC days; reports read it for the visits
started before the last local midnight it covers, the database for the rest. Each query's
rows must equal `run(..., rollups=False)`'s, row for row.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from flask import Flask
from sqlalchemy import Column, MetaData, Table, Text, func, select, update
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from tests.helpers import duckdb_settings_per_thread, store_events
from tracker.columnar import engine, export
from tracker.columnar.build import CLOSE_AFTER_MS, refresh
from tracker.columnar.layout import DAY_MS, read_manifest, site_dir
from tracker.db import Database
from tracker.db.models import Event, Site, Visit
from tracker.goals import add_goal
from tracker.sites import add_site, find_site
from tracker.stats import parse_query, rollups, run
from tracker.stats.compiler import outer, plan_for, raw_buckets
from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.filters import like_pattern
from tracker.stats.goals import goal_key, matched_on_events, with_goals
from tracker.stats.metrics import parts_for
from tracker.stats.query import GoalSpec, Query, SiteRef, site_ref
from tracker.stats.rollups import refresh_site
from tracker.stats.run import Result

SITE = "paris.example"
NOW = datetime(2026, 10, 28, 12, tzinfo=UTC)
FIRST = date(2026, 10, 22)
WEEK = {"period": "custom", "from": "2026-10-22", "to": "2026-10-28"}
ALL_METRICS = (
    "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,time_on_page,events"
)
VISIT_METRICS = "visitors,visits,bounce_rate,visit_duration"
DIRECT_METRICS = "visitors,pageviews,time_on_page,events"
SCROLL_METRICS = "visitors,visits,pageviews,scroll_depth,bounce_rate"
PAGES = ["/", "/blog/a", "/blog/b", "/pricing", "/Élan", "/élan", "/docs/x_y%z", "/BLOG/c"]
REFERRERS = ["", "https://www.google.com/", "https://www.bing.com/", "https://facebook.com/"]
CAMPAIGNS = [
    "",
    "?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
    "?utm_source=Newsletter-UK&utm_campaign=autumn",
]
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
# Visit starts (UTC) around local midnight (22:00 before the 25th, 23:00 from then on),
# UTC midnight and the repeated hour of the 25th, and in the day.
CLOCKS = ["21:40", "22:20", "23:10", "23:40", "00:15", "00:50", "01:20", "09:00", "17:30"]
# The visit merged into another visitor's (see `merge_across_utc_midnight`).
MERGED = ("2026-10-26T23:40:07+00:00", "2026-10-27T00:50:07+00:00")


def visit_events(rng: random.Random, ip: str, start: datetime, agent: str) -> list[dict]:
    url = f"https://{SITE}"
    first = rng.choice(PAGES) + rng.choice(CAMPAIGNS)
    referrer = rng.choice(REFERRERS)
    who = {"ip": ip, "user_agent": agent}
    events: list[dict[str, Any]] = []
    for step in range(rng.choice([1, 1, 2, 3])):
        at = start + timedelta(minutes=2 * step)
        page = {**who, "url": url + (first if step == 0 else rng.choice(PAGES)),
                "pageview_id": f"{ip}-{at.isoformat()}"}  # fmt: skip
        view = {**page, "timestamp": at.isoformat()}
        if step == 0 and referrer:
            view["referrer"] = referrer
        events.append(view)
        if rng.random() < 0.5:
            seconds = rng.randint(1, 90)
            engagement = {**page, "type": "engagement", "engaged_ms": seconds * 1000,
                          "timestamp": (at + timedelta(seconds=50)).isoformat()}  # fmt: skip
            if seconds % 5:  # most report a scroll depth too (no draw: the same traffic)
                engagement["scroll"] = seconds * 7 % 101
            events.append(engagement)
        if rng.random() < 0.2:
            events.append({**page, "type": "click", "name": "Outbound Link",
                           "target": rng.choice(["https://partner.example/", "https://x.example/a"]),
                           "timestamp": (at + timedelta(seconds=55)).isoformat()})  # fmt: skip
    if rng.random() < 0.3:
        custom = {**who, "type": "event", "name": "Signup", "url": url + "/pricing",
                  "timestamp": (start + timedelta(seconds=70)).isoformat()}  # fmt: skip
        if rng.random() < 0.6:
            plan = rng.choice(["pro", "free"])
            # A key DuckDB would read as a JSON path of its own, were it not quoted.
            custom["props"] = {"plan": plan, "$via": "ad"} if plan == "pro" else {"plan": plan}
        if rng.random() < 0.4:
            custom["name"] = "Purchase"
            custom["revenue"] = {"amount": str(rng.randint(1, 90)),
                                 "currency": rng.choice(["EUR", "USD"])}  # fmt: skip
        events.append(custom)
    return events


def traffic() -> list[dict[str, Any]]:
    rng = random.Random(16)
    events = []
    for offset in range(7):
        day = FIRST + timedelta(days=offset)
        for person in range(10):
            ip = f"198.51.100.{person + 1}"
            agent = PHONE if person % 3 == 0 else DESKTOP
            clocks = sorted(rng.sample(CLOCKS, rng.choice([1, 2, 3])))
            for clock in clocks:
                hour, minute = map(int, clock.split(":"))
                start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                if start < NOW:
                    events += visit_events(rng, ip, start, agent)
    # One visitor on both sides of local and UTC midnight, in three visits (MERGED).
    for clock in ("2026-10-26T22:40:07", "2026-10-26T23:40:07", "2026-10-27T00:50:07"):
        start = datetime.fromisoformat(clock + "+00:00")
        events += visit_events(random.Random(clock), "192.0.2.77", start, DESKTOP)
    return events


def merge_across_utc_midnight(db: Database) -> None:
    """Give MERGED's second visit the first one's visitor id, as an import keeping one id
    per person would: one visitor with visits on both sides of UTC midnight, on one local
    day (2026-10-27), which a store cut at UTC midnight would count twice."""
    v = Visit.__table__.c
    stamps = [int(datetime.fromisoformat(s).timestamp() * 1000) for s in MERGED]
    with db.engine.begin() as conn:
        keep, other = (
            conn.execute(select(v.visitor_id, v.id).where(v.started_ms == ms)).one()
            for ms in stamps
        )
        conn.execute(update(Visit).where(v.id == other.id).values(visitor_id=keep.visitor_id))
        conn.execute(
            update(Event).where(Event.visit_id == other.id).values(visitor_id=keep.visitor_id)
        )


@pytest.fixture
def site(app: Flask, db: Database) -> Site:
    with db.session() as session:
        add_site(session, SITE, timezone="Europe/Paris")
    store_events(app, traffic(), site=SITE)
    merge_across_utc_midnight(db)
    with db.session() as session:
        found = find_site(session, SITE)
        assert found is not None
        return found


def build(db: Database, root: Path, site: Site, until: date) -> None:
    """The builder's store of every UTC day before `until`, and reports reading it."""
    until_ms = int(datetime(until.year, until.month, until.day, tzinfo=UTC).timestamp() * 1000)
    refresh(db, root, now_ms=until_ms + CLOSE_AFTER_MS, budget_s=None)
    manifest = read_manifest(root, site.id)
    assert manifest is not None and manifest.complete_until_ms == until_ms
    db.columnar_root = root


def query(site: Site, args: dict[str, str], period: dict[str, str] = WEEK) -> Query:
    """The query of URL parameters; `order_by` ("name:direction,...") also orders by
    dimensions, which URLs cannot say."""
    args = dict(args)
    order = args.pop("order_by", "")
    q = parse_query(site, {**period, **args}, now=NOW)
    if order:
        pairs = tuple(tuple(item.rsplit(":", 1)) for item in order.split(","))
        q = dataclasses.replace(q, order_by=pairs)  # type: ignore[arg-type]
    return q


VISIT_DIMENSIONS = [n for n, d in DIMENSIONS.items() if d.scope == "visit"]
EVENT_DIMENSIONS = [n for n, d in DIMENSIONS.items() if d.is_event and n != "event:goal"]
QUERIES: list[dict[str, str]] = [
    {"metrics": ALL_METRICS},
    *({"metrics": ALL_METRICS, "dimension": t} for t in ("time:hour", "time:day", "time:week")),
    {"metrics": "visitors,pageviews", "dimension": "time:month"},
    *({"metrics": VISIT_METRICS, "dimension": d} for d in VISIT_DIMENSIONS),
    *({"metrics": ALL_METRICS, "dimension": d} for d in EVENT_DIMENSIONS),
    # Parts DuckDB sums straight from events (compiler.DIRECT_PARTS), not per visit first.
    *({"metrics": DIRECT_METRICS, "dimension": d} for d in EVENT_DIMENSIONS),
    {"metrics": DIRECT_METRICS, "page": "/blog*", "dimension": "visit:source"},
    {"metrics": DIRECT_METRICS, "source": "!Google", "dimension": "event:page", "limit": "3"},
    {"metrics": DIRECT_METRICS, "page": "~a", "dimension": "time:hour"},
    # Read from events alone, the visit's columns from their copies (compiler.events_alone).
    {"metrics": ALL_METRICS, "page": "~blog", "dimension": "event:page"},
    # No letter to fold: one LIKE (the pattern's % escaped).
    {"metrics": ALL_METRICS, "page": "~%", "dimension": "event:page"},
    {"metrics": VISIT_METRICS, "page": "~/", "dimension": "visit:source"},
    {"metrics": DIRECT_METRICS, "page": "~É", "dimension": "event:page"},
    # Scroll depth: a page breakdown, a page filter (alone, by day, by a visit dimension).
    {"metrics": SCROLL_METRICS, "dimension": "event:page"},
    {"metrics": SCROLL_METRICS, "dimension": "event:page", "source": "!Google", "limit": "3"},
    {"metrics": SCROLL_METRICS, "page": "/blog*"},
    {"metrics": SCROLL_METRICS, "page": "~a", "dimension": "time:day"},
    {"metrics": SCROLL_METRICS, "page": "!/", "dimension": "visit:source"},
    {"metrics": "scroll_depth", "dimension": "event:page", "order": "scroll_depth"},
    {"metrics": VISIT_METRICS, "page": "/blog*", "dimension": "time:day"},
    # Hours nest in UTC days: visitors from the parts' flags (compiler.visit_ordered_buckets).
    {"metrics": VISIT_METRICS, "page": "~a", "dimension": "time:hour"},
    {"metrics": "visitors,events", "dimension": "event:name,event:props"},
    # Rows tied on the day, ordered by properties: NULL first on SQLite, last on PostgreSQL.
    {"metrics": "visitors,events", "dimension": "time:day,event:props"},
    {"metrics": VISIT_METRICS, "dimension": "visit:source,event:page"},
    # Filters: is, is not, any of, contains, wildcards; on visit and event dimensions.
    {"metrics": ALL_METRICS, "source": "Google"},
    {"metrics": ALL_METRICS, "source": "!Google"},
    {"metrics": ALL_METRICS, "source": "Google|Bing"},
    {"metrics": ALL_METRICS, "source": "!Google|Bing"},
    {"metrics": ALL_METRICS, "source": "~goo"},
    {"metrics": ALL_METRICS, "source": "newsletter*"},
    {"metrics": ALL_METRICS, "source": "!news*"},
    {"metrics": ALL_METRICS, "page": "/blog*"},
    {"metrics": ALL_METRICS, "page": "!/blog*"},
    {"metrics": ALL_METRICS, "page": "~blog"},
    {"metrics": ALL_METRICS, "page": "~élan"},
    {"metrics": ALL_METRICS, "page": "~ÉLAN"},
    {"metrics": ALL_METRICS, "page": "/docs/x_y%z"},
    {"metrics": ALL_METRICS, "page": "*_y%*"},
    {"metrics": ALL_METRICS, "page": "/pricing", "dimension": "visit:source"},
    {"metrics": ALL_METRICS, "entry_page": "~/b", "dimension": "event:page"},
    {"metrics": ALL_METRICS, "device": "!Mobile", "dimension": "time:day"},
    {"metrics": ALL_METRICS, "utm_campaign": "spring|autumn", "dimension": "visit:channel"},
    {"metrics": "visitors,events", "event": "Signup", "dimension": "event:props"},
    {"metrics": "visitors,events", "props": "~pro", "dimension": "visit:source"},
    {"metrics": "visitors,events", "target": "~partner", "dimension": "event:target"},
    {"metrics": VISIT_METRICS, "revenue_currency": "EUR", "dimension": "visit:device"},
    # Filters combined.
    {"metrics": ALL_METRICS, "source": "!Google", "page": "/blog*", "device": "Desktop"},
    {"metrics": ALL_METRICS, "source": "!Bing", "page": "!/", "dimension": "event:page"},
    {"metrics": VISIT_METRICS, "source": "~e", "utm_campaign": "!spring", "dimension": "time:hour"},
    # Paging and orders.
    *(
        {"metrics": ALL_METRICS, "dimension": "event:page", "limit": "2", "offset": o}
        for o in ("0", "2", "4", "6")
    ),
    {"metrics": ALL_METRICS, "dimension": "event:page", "order": "visitors:asc"},
    {"metrics": ALL_METRICS, "dimension": "event:page", "order": "bounce_rate", "limit": "3"},
    {"metrics": ALL_METRICS, "dimension": "event:page", "order": "time_on_page"},
    {"metrics": ALL_METRICS, "dimension": "event:page",
     "order_by": "visitors:desc,event:page:desc"},
    {"metrics": ALL_METRICS, "dimension": "visit:source", "order_by": "visit:source:desc"},
    {"metrics": "visitors,events", "dimension": "event:props", "order_by": "event:props:asc"},
    {"metrics": "visitors,events", "dimension": "event:props", "order_by": "event:props:desc"},
    # Comparisons: one dimension (a filter on the rows shown), two (a tuple IN), a series.
    {"metrics": ALL_METRICS, "dimension": "visit:source", "compare": "previous_period"},
    {"metrics": "visitors,events", "dimension": "event:name,event:target",
     "compare": "previous_period"},
    {"metrics": ALL_METRICS, "dimension": "time:day", "compare": "previous_period", "page": "~a"},
]  # fmt: skip


def assert_same(db: Database, site: Site, args: dict[str, str], period: dict[str, str]) -> str:
    """Asserts the store's rows are the raw path's; returns which path answered."""
    q = query(site, args, period)
    stored = run(db, q)
    assert_same_answer(stored, run(db, q, rollups=False), (args, period))
    return str(stored.meta["source"])


def assert_same_answer(stored: Result, raw: Result, asked: object) -> None:
    """The store's answer is the raw path's: rows, more rows, and the compared period's."""
    assert raw.meta["source"] == "raw"
    assert stored.rows == raw.rows, asked
    assert stored.has_more == raw.has_more, asked
    if raw.comparison is not None:
        assert stored.comparison is not None
        assert stored.comparison.rows == raw.comparison.rows, asked


@pytest.mark.slow
def test_every_report_matches_the_raw_path(db: Database, site: Site, tmp_path: Path) -> None:
    """Store complete until 2026-10-25 00:00 UTC (local midnight 22:00 UTC the day before),
    then until 2026-10-27 00:00 UTC (23:00 UTC the day before): the week is read from both.
    The raw path's answers, the same whatever the store holds, are asked once."""
    raw: dict[int, Result] = {}
    for until in (date(2026, 10, 25), date(2026, 10, 27)):
        build(db, tmp_path / f"columnar-{until}", site, until)
        for index, args in enumerate(QUERIES):
            q = query(site, args)
            if index not in raw:
                raw[index] = run(db, q, rollups=False)
            stored = run(db, q)
            assert stored.meta["source"] == "columnar+live", (args, until)
            assert_same_answer(stored, raw[index], (args, until))
            assert any(row[q.metrics[0]] for row in stored.rows), args


PERIODS = [
    ({"period": "custom", "from": "2026-10-22", "to": "2026-10-26"}, "columnar"),
    ({"period": "custom", "from": "2026-10-25", "to": "2026-10-25"}, "columnar"),
    ({"period": "custom", "from": "2026-10-26", "to": "2026-10-27"}, "columnar+live"),
    # Entirely after the split: the database alone.
    ({"period": "custom", "from": "2026-10-27", "to": "2026-10-28"}, "raw"),
    ({"period": "month"}, "columnar+live"),
    ({"period": "7d", "compare": "year_over_year"}, "columnar+live"),
]


@pytest.mark.slow
def test_event_filtered_visit_facts_across_row_groups_and_threads(
    db: Database, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A visit's facts under an event filter, or a goal filter, come from its first
    matching event in the scan's order (compiler.visit_ordered_buckets,
    converting_visit_buckets), and an event breakdown under a goal joins its events to
    each converting visit's first matching event (compiler.stored_converting_ids): still
    exact with visits cut across row groups of a few rows, read by several DuckDB
    threads."""
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 5)
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    add_goals(db, site)
    threads = engine.CONFIG["threads"]
    engine.configure(
        threads=4, memory_limit=engine.CONFIG["memory_limit"], timeout_s=engine.TIMEOUT_S
    )
    try:
        for args in (
            {"metrics": ALL_METRICS, "page": "!/"},
            {"metrics": ALL_METRICS, "page": "~a", "dimension": "time:day"},
            {"metrics": VISIT_METRICS, "page": "/blog*", "dimension": "visit:source"},
            {"metrics": ALL_METRICS, "page": "!/pricing", "device": "Desktop"},
            {"metrics": f"{VISIT_METRICS},pageviews", "goal": "Blog|Signup"},
            {"metrics": VISIT_METRICS, "goal": "Partner", "dimension": "visit:source"},
            {"metrics": ALL_METRICS, "goal": "Blog|Signup", "dimension": "event:page"},
            {"metrics": "visitors,events", "goal": "Signup|Partner", "dimension": "event:name"},
        ):
            assert assert_same(db, site, args, WEEK) == "columnar+live", args
    finally:
        engine.configure(
            threads=threads, memory_limit=engine.CONFIG["memory_limit"], timeout_s=engine.TIMEOUT_S
        )


@pytest.mark.slow
def test_periods_closed_live_or_both(db: Database, site: Site, tmp_path: Path) -> None:
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    for period, path in PERIODS:
        for args in QUERIES[:12] + QUERIES[-8:]:
            assert assert_same(db, site, args, period) == path, (args, period)


def test_a_visitor_across_utc_midnight_counts_once_on_its_local_day(
    db: Database, site: Site, tmp_path: Path
) -> None:
    """MERGED's visits started on both sides of UTC midnight, both on local 2026-10-27:
    the split falls at local midnight (23:00 UTC), so both are read from the database."""
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    args = {"metrics": "visitors,visits", "dimension": "time:day"}
    assert assert_same(db, site, args, WEEK) == "columnar+live"
    manifest = read_manifest(tmp_path / "columnar", site.id)
    assert manifest is not None
    split = engine.split_ms(manifest.complete_until_ms, query(site, args))
    assert split == int(datetime(2026, 10, 26, 23, tzinfo=UTC).timestamp() * 1000)


# Reports whose visitors the store counts from its flags in a zone at UTC offset 0: page
# breakdowns (compiler.page_visitor_buckets), filters on the visit and the page only; visit
# reports under an event filter (compiler.visit_ordered_buckets).
FLAGGED_REPORTS: list[dict[str, str]] = [
    {"metrics": "visitors,pageviews", "dimension": "event:page"},
    {"metrics": "visitors,pageviews", "dimension": "event:page", "source": "!Google"},
    {"metrics": "visitors", "dimension": "event:page", "page": "~a", "device": "Desktop"},
    {"metrics": "pageviews,visitors", "dimension": "visit:source,event:page", "page": "!/"},
    {"metrics": "visitors,pageviews", "dimension": "event:page", "limit": "3",
     "utm_campaign": "spring|autumn", "order": "visitors:asc"},
    {"metrics": "visitors,pageviews", "dimension": "event:page", "entry_page": "/blog*"},
    {"metrics": ALL_METRICS, "page": "/blog*"},
    {"metrics": VISIT_METRICS, "page": "~a", "dimension": "visit:source"},
    {"metrics": SCROLL_METRICS, "page": "!/", "dimension": "time:day"},
    {"metrics": ALL_METRICS, "page": "~blog", "dimension": "time:hour", "device": "!Mobile"},
    # Visit reports read from the visits' own flags.
    {"metrics": VISIT_METRICS, "source": "!Google"},
    {"metrics": VISIT_METRICS, "dimension": "visit:device", "country": "!JP"},
    {"metrics": f"{VISIT_METRICS},pageviews", "dimension": "time:hour", "source": "!Google"},
]  # fmt: skip


FLAGGED_GOAL_REPORTS: list[dict[str, str]] = [
    {"metrics": "visitors,visits,conversions", "goal": "Signup|Blog", "dimension": "visit:source"},
    {"metrics": f"{VISIT_METRICS},pageviews", "goal": "Blog", "dimension": "time:day"},
    # A page breakdown: a goal filter keeps or drops whole visits, as a visit filter does.
    {"metrics": "visitors,pageviews", "goal": "Blog", "dimension": "event:page"},
    {"metrics": "visitors,pageviews", "goal": "!Signup", "dimension": "event:page"},
    {"metrics": "visitors,pageviews", "goal": "Pricing|Partner", "dimension": "event:page",
     "source": "!Google"},
    {"metrics": "visitors", "goal": "Signup", "dimension": "event:page", "page": "~a"},
]  # fmt: skip


def _in_utc(db: Database, site: Site) -> Site:
    with db.session() as session:
        session.execute(update(Site).where(Site.id == site.id).values(timezone="UTC"))
    with db.session() as session:
        found = find_site(session, SITE)
        assert found is not None and found.timezone == "UTC"
        return found


@pytest.mark.slow
@pytest.mark.parametrize("until", [date(2026, 10, 25), date(2026, 10, 27)])
def test_visitors_from_the_parts_flags_match_the_raw_path(
    db: Database, site: Site, tmp_path: Path, until: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In UTC a page breakdown's visitors, and a visit report's under an event filter, are
    counted from the parts' flags (a visit's first pageview of a page; its visitor's other
    visits that day): a visitor with several visits a day, a visit viewing a page twice,
    and a visitor viewing a page in two of its visits (or in one only) still count once,
    as the raw path says.
    The traffic has all (asserted: the test proves nothing without them). Rows are
    written a few at a time: a visit's events go on from one batch to the next."""
    monkeypatch.setattr(export, "BATCH_ROWS", 7)
    monkeypatch.setattr(export, "CSV_BLOCK", 4096)
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 5)
    utc = _in_utc(db, site)
    v, e = Visit.__table__.c, Event.__table__.c
    with db.engine.connect() as conn:
        day = v.started_ms // DAY_MS
        revisits = select(v.visitor_id).group_by(v.visitor_id, day).having(func.count() > 1)
        assert conn.execute(revisits.limit(1)).first() is not None
        viewed = (e.kind == "pageview", e.path != "")
        twice = select(e.visit_id).where(*viewed).group_by(e.visit_id, e.path)
        assert conn.execute(twice.having(func.count() > 1).limit(1)).first() is not None
        visits_viewing = (
            select(func.count(e.visit_id.distinct()).label("n"))
            .select_from(Event.__table__.join(Visit.__table__, v.id == e.visit_id))
            .where(*viewed, v.visitor_id.in_(revisits))
            .group_by(v.visitor_id, day, e.path)
            .subquery()
        )
        counts = set(conn.scalars(select(visits_viewing.c.n).distinct()))
        assert {1, 2} <= counts, counts
    build(db, tmp_path / "columnar", utc, until)
    built = read_manifest(tmp_path / "columnar", utc.id)
    assert built is not None
    constant = set.intersection(*(set(p.visitor_constant) for p in built.parts))
    # A returning visitor came from elsewhere, on the same device.
    assert "device" in constant and "source" not in constant, constant
    whole_days = []
    whole = FLAGGED_REPORTS[0]  # whole visitor days with no filter, whatever the parts
    for args in FLAGGED_REPORTS:
        q = query(utc, args)
        plan = plan_for(q, parts_for(q.metrics))
        stmt = raw_buckets(q, plan, [(0, DAY_MS)], direct=True)
        sql = engine.compiled(stmt, "sqlite")[0]
        grouped = "visitor_repeats_path" if "event:page" in args.get("dimension", "") else ""
        assert (grouped or "visitor_revisits") in sql or args is whole, args
        stmt = raw_buckets(q, plan, [(0, DAY_MS)], direct=True, constant=constant)
        if "visitor_first_of_path" in engine.compiled(stmt, "sqlite")[0]:
            whole_days.append(args)
        assert assert_same(db, utc, args, WEEK) == "columnar+live", args
    # Page breakdowns unfiltered, and under the page and the device (whole visitor days):
    # each visitor counted by its first pageview of the page that day.
    assert whole_days == FLAGGED_REPORTS[:1] + FLAGGED_REPORTS[2:3], whole_days
    # Under a goal: a visit report (`is`), a page breakdown (any goal filter) likewise.
    add_goals(db, utc)
    for args in FLAGGED_GOAL_REPORTS:
        if args.get("dimension") == "event:page":
            with db.engine.connect() as conn:
                q = matched_on_events(with_goals(conn, query(utc, args)))
            stmt = raw_buckets(q, plan_for(q, parts_for(q.metrics)), [(0, DAY_MS)], direct=True)
            assert "visitor_repeats_path" in engine.compiled(stmt, "sqlite")[0], args
        assert_store_answers(db, utc, args)


@pytest.mark.parametrize(
    ("timezone", "args", "flags"),
    [
        ("UTC", {"metrics": "visitors,pageviews", "dimension": "event:page"}, True),
        ("UTC", {"metrics": "visitors", "dimension": "event:page", "source": "Google"}, True),
        # A local day holds two UTC days' visits: their parts' flags do not see each other.
        ("Europe/Paris", {"metrics": "visitors,pageviews", "dimension": "event:page"}, False),
        # Other parts, event kinds, or a filter on other event values than the page.
        ("UTC", {"metrics": "visitors,time_on_page", "dimension": "event:page"}, False),
        ("UTC", {"metrics": "visitors", "dimension": "event:name"}, False),
        ("UTC", {"metrics": "visitors", "dimension": "event:page", "hostname": "a.example"},
         False),
        # Visit reports under an event filter: any filter; hours nest in UTC days in Paris.
        ("UTC", {"metrics": VISIT_METRICS, "hostname": "a.example"}, True),
        ("Europe/Paris", {"metrics": VISIT_METRICS, "page": "~a"}, False),
        ("Europe/Paris", {"metrics": VISIT_METRICS, "page": "~a", "dimension": "time:hour"},
         True),
        ("UTC", {"metrics": "visits,bounce_rate", "page": "~a"}, False),
        # Visit reports without event filters: from the visits' own flags, likewise.
        ("UTC", {"metrics": VISIT_METRICS, "source": "!Google"}, True),
        ("UTC", {"metrics": VISIT_METRICS, "dimension": "visit:source", "country": "!JP"}, True),
        ("Europe/Paris", {"metrics": VISIT_METRICS, "source": "!Google"}, False),
        ("Europe/Paris", {"metrics": VISIT_METRICS, "source": "!Google",
                          "dimension": "time:hour"}, True),
        ("UTC", {"metrics": "visits,bounce_rate", "source": "!Google"}, False),
    ],
)  # fmt: skip
def test_visitors_from_flags_only_where_exact(
    timezone: str, args: dict[str, str], flags: bool
) -> None:
    site = SiteRef(id=1, domain=SITE, timezone=timezone)
    q = query(site, args)  # type: ignore[arg-type]
    stmt = raw_buckets(q, plan_for(q, parts_for(q.metrics)), [(0, DAY_MS)], direct=True)
    sql = engine.compiled(stmt, "sqlite")[0]
    flagged = ("visitor_revisits", "visitor_first_of_path", "visitor_repeats_path")
    assert any(flag in sql for flag in flagged) == flags


@pytest.mark.parametrize(
    ("timezone", "args", "whole_days"),
    [
        ("UTC", {"metrics": "visitors,pageviews", "dimension": "event:page"}, True),
        ("UTC", {"metrics": "pageviews,visitors", "dimension": "event:page", "country": "!JP",
                 "page": "~a"}, True),
        ("UTC", {"metrics": "visitors", "dimension": "event:page,visit:country"}, True),
        ("UTC", {"metrics": "visitors,pageviews", "dimension": "time:day,event:page",
                 "country": "FR|DE"}, True),
        # A column a visitor's visits of a day may differ in, a goal (whole visits, not
        # visitors), hourly buckets, a local day of two UTC days.
        ("UTC", {"metrics": "visitors", "dimension": "event:page", "source": "Google"}, False),
        ("UTC", {"metrics": "visitors", "dimension": "event:page,visit:source"}, False),
        ("UTC", {"metrics": "visitors", "dimension": "time:hour,event:page"}, False),
        ("Europe/Paris", {"metrics": "visitors", "dimension": "event:page"}, False),
    ],
)  # fmt: skip
def test_page_visitors_by_their_first_view_of_the_day_only_where_exact(
    timezone: str, args: dict[str, str], whole_days: bool
) -> None:
    """A page breakdown keeping or dropping all of a visitor's pageviews of a page on a UTC
    day together counts each visitor by its first (`visitor_first_of_path`), without
    grouping by visitor; the others group by visitor the pageviews of a page their visitor
    viewed in other visits too (`visitor_repeats_path`)."""
    site = SiteRef(id=1, domain=SITE, timezone=timezone)
    q = query(site, args)  # type: ignore[arg-type]
    plan = plan_for(q, parts_for(q.metrics))
    stmt = raw_buckets(q, plan, [(0, DAY_MS)], direct=True, constant={"country", "device"})
    sql = engine.compiled(stmt, "sqlite")[0]
    assert ("visitor_first_of_path" in sql) == whole_days, sql
    assert ("visitor_repeats_path" in sql) == (not whole_days and timezone == "UTC"), sql
    assert sql.count("GROUP BY") == (1 if whole_days else 2), sql
    # Without a time dimension the days are summed here already: one row per page.
    across = "time:" not in args["dimension"] and timezone == "UTC"
    assert (", CAST(0 AS BIGINT) AS bucket" in sql) == across, sql
    # And only the pageviews of a page viewed in several visits keep their day there.
    by_day = "CASE WHEN events.visitor_repeats_path THEN ((events.visit_started_ms"
    assert (by_day in sql) == (across and not whole_days), sql


def test_a_goal_keeps_whole_visits_not_visitor_days() -> None:
    site = SiteRef(id=1, domain=SITE, timezone="UTC")
    goals = (GoalSpec(1, "Blog", "page", pattern="/blog*"),)
    q = dataclasses.replace(query(site, {"metrics": "visitors", "dimension": "event:page"}),  # type: ignore[arg-type]
                            goals=goals)  # fmt: skip
    q = matched_on_events(q.with_filter(parse_query(site, {"goal": "Blog"}).filters[0]))
    plan = plan_for(q, parts_for(q.metrics))
    stmt = raw_buckets(q, plan, [(0, DAY_MS)], direct=True, constant={"country"})
    assert "visitor_first_of_path" not in engine.compiled(stmt, "sqlite")[0]


def test_no_manifest_reads_the_database(db: Database, site: Site, tmp_path: Path) -> None:
    db.columnar_root = tmp_path / "nothing-built"
    assert assert_same(db, site, {"metrics": ALL_METRICS, "source": "!Google"}, WEEK) == "raw"


# Goals of every shape: page (exact, wildcard, `_` and `%` literal, case-sensitive: not
# /BLOG/c), event (with a property, with revenue), click. name -> add_goal's fields.
GOALS: dict[str, dict[str, str]] = {
    "Pricing": {"kind": "page", "pattern": "/pricing"},
    "Blog": {"kind": "page", "pattern": "/blog*"},
    "Docs": {"kind": "page", "pattern": "/docs/x_y%z"},
    "Any élan": {"kind": "page", "pattern": "/*lan"},
    "Signup": {"kind": "event", "event_name": "Signup"},
    "Pro signup": {"kind": "event", "event_name": "Signup", "prop_key": "plan",
                   "prop_value": "pro"},
    "Signup via ad": {"kind": "event", "event_name": "Signup", "prop_key": "$via",
                      "prop_value": "ad"},
    "Purchase": {"kind": "event", "event_name": "Purchase", "currency": "EUR"},
    "Partner": {"kind": "click", "pattern": "https://partner.example/*"},
}  # fmt: skip
CONVERSION = "visitors,visits,conversions,conversion_rate"
GOAL_QUERIES: list[dict[str, str]] = [
    *({"metrics": f"{ALL_METRICS},conversions,conversion_rate", "goal": g} for g in GOALS),
    # Conversions by source, page, campaign, channel, device, time; revenue.
    *({"metrics": CONVERSION, "goal": "Signup", "dimension": d} for d in (
        "visit:source", "event:page", "visit:utm_campaign", "visit:channel", "visit:device",
        "time:day", "time:hour",
    )),
    {"metrics": "visitors,events,conversions", "goal": "Signup", "dimension": "event:props"},
    {"metrics": CONVERSION, "goal": "Blog", "dimension": "event:page"},
    {"metrics": CONVERSION, "goal": "Pro signup", "dimension": "visit:entry_page"},
    {"metrics": CONVERSION, "goal": "Partner", "dimension": "event:target"},
    {"metrics": "visitors,conversions,total_revenue,average_revenue", "goal": "Purchase",
     "dimension": "visit:source"},
    {"metrics": "visitors,events,total_revenue", "goal": "Purchase",
     "dimension": "event:page"},
    # Any of, is not; with other filters; ordered and paged; compared.
    {"metrics": CONVERSION, "goal": "Signup|Blog", "dimension": "visit:source"},
    {"metrics": ALL_METRICS, "goal": "!Signup", "dimension": "event:page"},
    {"metrics": ALL_METRICS, "goal": "!Pricing|Docs"},
    {"metrics": CONVERSION, "goal": "Blog", "source": "!Google", "dimension": "time:day"},
    {"metrics": CONVERSION, "goal": "Signup", "page": "~a", "device": "Desktop"},
    {"metrics": CONVERSION, "goal": "Pricing", "page": "/blog*", "dimension": "visit:source"},
    {"metrics": CONVERSION, "goal": "Signup", "dimension": "event:page",
     "order": "conversion_rate", "limit": "3"},
    {"metrics": CONVERSION, "goal": "Blog", "dimension": "visit:source",
     "compare": "previous_period"},
    # Breakdowns by goal: each goal's rows under its filter (its own matches answer
    # visitors and conversions, the store the rest).
    {"metrics": CONVERSION, "dimension": "event:goal"},
    {"metrics": "visitors,conversions,conversion_rate,bounce_rate", "dimension": "event:goal",
     "source": "~e"},
]  # fmt: skip


def add_goals(db: Database, site: Site) -> None:
    with db.session() as session:
        owner = session.get(Site, site.id)
        assert owner is not None
        for name, fields in GOALS.items():
            add_goal(session, owner, name=name, **fields)


def assert_store_answers(
    db: Database, site: Site, args: dict[str, str], *, besides: frozenset[str] = frozenset()
) -> None:
    """The store's rows are the raw path's, and the store answered every sum of the
    report under a goal; `besides`: the paths its other sums may take too (a goal's own
    matches, read from the database, aside; a comparison's week, before the first day
    built, is the database's)."""
    assert_same(db, site, args, WEEK)
    paths = set(run(db, query(site, args)).meta["paths"]) - {"goal_matches"}
    assert "columnar+live" in paths and paths <= {"columnar+live", *besides}, (args, paths)


@pytest.mark.slow
def test_goal_reports_read_the_store_goals_added_after_the_build(
    db: Database, site: Site, tmp_path: Path
) -> None:
    """Goals added after the first days were built: the parts built since keep their
    bits, the earlier ones do not, so the week's reports match them on the parts' events;
    exact."""
    build(db, tmp_path / "columnar", site, date(2026, 10, 25))
    add_goals(db, site)
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    built = read_manifest(tmp_path / "columnar", site.id)
    assert built is not None
    goals = [p.goals for p in built.parts]
    assert not goals[0] and len(goals[-1]) == len(GOALS), goals
    for args in GOAL_QUERIES:
        assert_store_answers(db, site, args)
    for name in GOALS:
        totals = run(db, query(site, {"metrics": "conversions", "goal": name})).totals
        assert totals["conversions"], name  # every goal converts: not vacuous


@pytest.mark.slow
def test_goal_reports_read_the_store_beside_goal_hits(
    db: Database, site: Site, tmp_path: Path
) -> None:
    """Goals whose hits the rollup job wrote: the store still answers (rollups hold no
    goal; the conversion rate's visits without the goal are theirs), the database's hits
    for the live days; same numbers. The goals were there when the parts were built: the
    parts' visits keep them as bits, which the reports read."""
    add_goals(db, site)
    build(db, tmp_path / "columnar", site, date(2026, 10, 25))
    refresh_site(db, site_ref(site), now_ms=int(NOW.timestamp() * 1000))
    under_goal = [a for a in GOAL_QUERIES if "goal" in a]
    # Half the reports under a goal, and every one under `is not`.
    for args in [a for i, a in enumerate(under_goal) if i % 2 == 0 or a["goal"][0] == "!"]:
        assert_store_answers(db, site, args, besides=frozenset({"rollup"}))


def test_rollups_answer_where_they_hold_every_closed_day(
    db: Database, site: Site, tmp_path: Path
) -> None:
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    refresh_site(db, site_ref(site), now_ms=int(NOW.timestamp() * 1000))
    assert assert_same(db, site, {"metrics": ALL_METRICS, "dimension": "event:page"}, WEEK) == (
        "rollup"
    )
    for args in (
        {"metrics": SCROLL_METRICS, "dimension": "event:page"},
        {"metrics": SCROLL_METRICS, "page": "/pricing", "dimension": "time:day"},
    ):
        assert assert_same(db, site, args, WEEK) == "rollup", args
    assert assert_same(db, site, {"metrics": ALL_METRICS, "source": "!Google"}, WEEK) == (
        "columnar+live"
    )


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Paris"])
def test_rows_compared_to_the_period_only_where_it_cuts_a_part(
    db: Database, site: Site, tmp_path: Path, timezone: str
) -> None:
    """The store's views hold the period's visits, so the statement compares no row's
    start or site; the views do, only where the period cuts a part: UTC days are whole
    day parts, a Paris day starts at 22:00 or 23:00 UTC the day before."""
    if timezone == "UTC":
        site = _in_utc(db, site)
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    period = {"period": "custom", "from": "2026-10-23", "to": "2026-10-25"}
    args = {"metrics": ALL_METRICS, "page": "!/pricing", "dimension": "visit:source"}
    assert assert_same(db, site, args, period) == "columnar"
    made = engine.connection().execute("SELECT view_name, sql FROM duckdb_views() WHERE temporary")
    views = dict(made.fetchall())
    for name, started in (("events", "visit_started_ms"), ("visits", "started_ms")):
        assert views[name].count("read_parquet") == 1, views[name]
        assert (started in views[name]) == (timezone != "UTC"), views[name]
    q = query(site, args, period)
    sql, _ = engine.compiled(raw_buckets(q, plan_for(q, parts_for(q.metrics)), None), "sqlite")
    assert "started_ms >=" not in sql and "site_id =" not in sql, sql


def test_the_store_answers_where_rollups_outweigh_the_pageviews(
    db: Database, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports read their rollups while those hold fewer rows than the days' pageviews
    times ROLLUP_ROWS_PER_PAGEVIEW (and ROLLUP_ROWS_AT_LEAST, which this small site
    never reaches), the store past it (a site of many pages), but for a report keeping
    one value of the key's dimension, whose rows are sought."""
    monkeypatch.setattr(rollups, "ROLLUP_ROWS_AT_LEAST", 1)
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    refresh_site(db, site_ref(site), now_ms=int(NOW.timestamp() * 1000))
    pages = {"metrics": "visitors,pageviews", "dimension": "event:page"}
    others = {"metrics": VISIT_METRICS, "dimension": "event:page", "page": "!/pricing"}
    one = {"metrics": "visitors,pageviews", "dimension": "time:day", "page": "/pricing"}
    for per_pageview, read in ((1_000.0, "rollup"), (1e-9, "columnar+live")):
        monkeypatch.setattr(rollups, "ROLLUP_ROWS_PER_PAGEVIEW", per_pageview)
        assert assert_same(db, site, pages, WEEK) == read
        assert assert_same(db, site, others, WEEK) == read
        assert assert_same(db, site, one, WEEK) == "rollup"


def test_a_part_deleted_under_the_reader(db: Database, site: Site, tmp_path: Path) -> None:
    root = tmp_path / "columnar"
    build(db, root, site, date(2026, 10, 27))
    args = {"metrics": ALL_METRICS, "dimension": "event:page", "source": "!Google"}
    assert assert_same(db, site, args, WEEK) == "columnar+live"
    manifest = read_manifest(root, site.id)
    assert manifest is not None
    (site_dir(root, site.id) / manifest.parts[2].events).unlink()
    # The manifest still names it (a builder died half-way): the database answers.
    assert assert_same(db, site, args, WEEK) == "raw"


def test_a_damaged_part_reads_the_database(db: Database, site: Site, tmp_path: Path) -> None:
    root = tmp_path / "columnar"
    build(db, root, site, date(2026, 10, 27))
    manifest = read_manifest(root, site.id)
    assert manifest is not None
    (site_dir(root, site.id) / manifest.parts[1].visits).write_bytes(b"not parquet")
    args = {"metrics": VISIT_METRICS, "source": "!Google", "dimension": "visit:device"}
    assert assert_same(db, site, args, WEEK) == "raw"
    # Event reports read events alone (every visit column copied into them).
    (site_dir(root, site.id) / manifest.parts[1].events).write_bytes(b"not parquet")
    args = {"metrics": ALL_METRICS, "source": "!Google", "dimension": "visit:device"}
    assert assert_same(db, site, args, WEEK) == "raw"


def test_a_part_replaced_between_manifest_and_read(
    db: Database, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The builder replaced the manifest and deleted a part the reader's copy names: the
    manifest is read again and the query retried once."""
    root = tmp_path / "columnar"
    build(db, root, site, date(2026, 10, 27))
    stale = read_manifest(root, site.id)
    assert stale is not None
    moved = site_dir(root, site.id) / stale.parts[3].visits
    moved.rename(moved.with_name("visits-rebuilt.parquet"))
    fresh = type(stale)(
        **{
            **stale.__dict__,
            "parts": tuple(
                type(p)(**{**p.__dict__, "visits": "visits-rebuilt.parquet"}) if i == 3 else p
                for i, p in enumerate(stale.parts)
            ),
        }
    )
    reads = iter([stale, fresh])
    monkeypatch.setattr(engine, "current_manifest", lambda *_: next(reads))
    args = {"metrics": ALL_METRICS, "source": "!Google", "dimension": "time:day"}
    assert assert_same(db, site, args, WEEK) == "columnar+live"


@pytest.mark.parametrize(
    ("contains", "folded"),
    [("/", False), ("%_/", False), ("/É", False), ("/a", True), ("/Éa", True)],
)
def test_contains_folds_letters_only_where_the_pattern_has_some(
    contains: str, folded: bool
) -> None:
    """SQLite folds ASCII letters only: a pattern without one (`É` matches `É` only) is
    compared as it is, in one LIKE DuckDB runs in the scan."""
    site = SiteRef(id=1, domain=SITE, timezone="UTC")
    q = query(site, {"metrics": "visits", "page": f"~{contains}"})
    plan = plan_for(q, parts_for(q.metrics))
    sql, params = engine.compiled(raw_buckets(q, plan, None, direct=True), "sqlite")
    assert ("CASE WHEN strlen(events.path)" in sql) == folded, sql
    assert ("events.path LIKE ?" in sql) == (not folded), sql
    # Folded, on the rows DuckDB's own ILIKE keeps in the scan.
    assert ("(events.path ILIKE ?" in sql) == folded, sql


# Texts whose letters SQLite and DuckDB fold differently: the Kelvin sign lowers to `k` in
# DuckDB only, `İ` and `ß` are left alone by SQLite, `ǅ` is a title case letter.
TRICKY_TEXTS = ["/Élan", "/élan", "/BLOG/c", "/KELVIN", "/\u212aelvin", "/İstanbul",
                "/istanbul", "/STRASSE", "/straße", "/x_y%z", "/ǅungla", "/ǆUNGLA"]  # fmt: skip


@pytest.mark.parametrize(
    "value", ["kelvin", "élan", "Élan", "istanbul", "strasse", "straße", "blog/C", "x_y%", "ǆ"]
)
def test_contains_matches_what_sqlite_matches(value: str) -> None:
    """DuckDB's statement for a contains filter keeps exactly the texts SQLite's LIKE
    keeps (ASCII letters folded, no other), whatever its ILIKE does with other letters."""
    texts = Table("texts", MetaData(), Column("t", Text))
    stmt = select(texts.c.t).where(texts.c.t.ilike(like_pattern(value), escape="\\"))
    with sqlite3.connect(":memory:") as lite:
        lite.execute("CREATE TABLE texts (t TEXT)")
        lite.executemany("INSERT INTO texts VALUES (?)", [(t,) for t in TRICKY_TEXTS])
        compiled = stmt.compile(dialect=sqlite_dialect())
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        expected = {row[0] for row in lite.execute(str(compiled), params)}
    sql, params = engine.compiled(stmt, "sqlite")
    with duckdb.connect() as duck:
        duck.execute("CREATE TABLE texts (t VARCHAR)")
        duck.executemany("INSERT INTO texts VALUES (?)", [(t,) for t in TRICKY_TEXTS])
        assert {row[0] for row in duck.execute(sql, params).fetchall()} == expected, sql


def test_statements_bind_every_text() -> None:
    """Text a user typed reaches DuckDB as parameters, never as SQL, whatever the filter."""
    evil = "x' OR '1'='1"
    site = SiteRef(id=1, domain=SITE, timezone="Europe/Paris")
    for value in (evil, f"!{evil}", f"~{evil}", f"{evil}*", f"!{evil}*"):
        args = {"metrics": "visits", "dimension": "event:page", "page": value, "source": value}
        q = query(site, args)  # type: ignore[arg-type]
        plan = plan_for(q, parts_for(q.metrics))
        for record in ("sqlite", "postgresql"):
            stmt = outer(q, plan, raw_buckets(q, plan, [(0, DAY_MS)], direct=True))
            sql, params = engine.compiled(stmt, record)
            assert "or '1'='1" not in sql.lower(), value
            assert any(isinstance(p, str) and "or '1'='1" in p.lower() for p in params), value


def test_pages_numbered_by_two_builds_are_named_as_the_raw_path_says(
    app: Flask, db: Database, site: Site, tmp_path: Path
) -> None:
    """A page breakdown groups the parts' pageviews by path number and names the pages
    from the site's path dictionary (tracker.columnar.paths): paths a later build met
    first are numbered after the others, and every page keeps its name across parts."""
    utc = _in_utc(db, site)
    root = tmp_path / "columnar"
    build(db, root, utc, date(2026, 10, 25))
    first = read_manifest(root, utc.id)
    assert first is not None
    new = [{"ip": "198.51.100.200", "url": f"https://{SITE}{path}", "timestamp": at}
           for path, at in [("/new", "2026-10-25T10:00:00Z"), ("/", "2026-10-25T10:01:00Z"),
                            ("/newer", "2026-10-26T09:00:00Z")]]  # fmt: skip
    store_events(app, new, site=SITE)
    build(db, root, utc, date(2026, 10, 27))
    second = read_manifest(root, utc.id)
    assert second is not None and second.paths != first.paths
    for args in FLAGGED_REPORTS[:2]:
        q = query(utc, args)
        stmt = raw_buckets(q, plan_for(q, parts_for(q.metrics)), None, direct=True)
        assert "GROUP BY events.path_id" in engine.compiled(stmt, "sqlite")[0], args
        assert assert_same(db, utc, args, WEEK) == "columnar+live", args


# A page filter, the most path numbers written into a statement, and how the statement
# reading the parts then compares the events' path numbers (None: it does not).
NUMBERED_FILTERS = [
    ("~/", 100, None),  # every path kept: nothing compared
    ("/nowhere", 100, "false"),  # none
    ("/blog*", 100, "events.path_id IN (CAST("),  # a few
    ("/blog*", 0, "events.path_id IN (SELECT page_numbers_0.path_id"),
    ("!/", 100, "events.path_id NOT IN (CAST("),  # most: the others
    ("!/", 0, "events.path_id NOT IN (SELECT page_numbers_0.path_id"),
    ("~É", 0, "events.path_id IN (SELECT page_numbers_0.path_id"),  # folded as SQLite
]


def recorded_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement the store's engine compiles from now on, as it goes."""
    statements: list[str] = []
    original = engine.compiled

    def recorded(stmt: Any, record: str) -> tuple[str, list[Any]]:
        sql, params = original(stmt, record)
        statements.append(sql)
        return sql, params

    monkeypatch.setattr(engine, "compiled", recorded)
    return statements


def test_page_filters_compare_path_numbers(
    db: Database, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store answers a page filter by path number, matched once on the site's path
    dictionary: no event's path is read (in UTC page breakdowns group by path number
    too), and the numbers are the fewer of the paths kept and those dropped, written into
    the statement up to INLINE_NUMBERS of them; the same rows as the raw path."""
    monkeypatch.setattr(engine, "NUMBERED_FILTERS_FROM", 0)  # the traffic has a few paths
    site = _in_utc(db, site)
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    statements = recorded_statements(monkeypatch)
    for page, inline, compared in NUMBERED_FILTERS:
        monkeypatch.setattr(engine, "INLINE_NUMBERS", inline)
        for args in ({"metrics": ALL_METRICS}, {"metrics": "visitors", "dimension": "event:page"}):
            asked = {**args, "page": page}
            statements.clear()
            assert assert_same(db, site, asked, WEEK) == "columnar+live", asked
            closed = next(sql for sql in statements if "FROM events" in sql)
            assert "events.path " not in closed and "events.path)" not in closed, (asked, closed)
            assert compared is None or compared in closed, (asked, inline, closed)


def test_a_site_with_few_paths_filters_its_events_paths(
    db: Database, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to NUMBERED_FILTERS_FROM paths, a page filter reads the events' paths (read as
    fast from small dictionaries): no lookup of the numbers first."""
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    statements = recorded_statements(monkeypatch)
    assert assert_same(db, site, {"metrics": ALL_METRICS, "page": "/blog*"}, WEEK) != "raw"
    assert not any("paths" in sql for sql in statements), statements
    assert any("events.path LIKE" in sql for sql in statements), statements


@pytest.mark.parametrize(
    "args",
    [
        {"metrics": ALL_METRICS, "page": "/blog*"},
        {"metrics": ALL_METRICS, "dimension": "event:page", "page": "~a"},
        {"metrics": DIRECT_METRICS, "dimension": "event:page"},
        {"metrics": DIRECT_METRICS, "dimension": "event:page", "source": "Google"},
        {"metrics": ALL_METRICS, "dimension": "visit:source", "page": "/blog*"},
        {"metrics": VISIT_METRICS, "dimension": "event:page", "utm_campaign": "spring",
         "country": "FR", "device": "Desktop", "entry_page": "/"},
    ],
)  # fmt: skip
def test_event_reports_read_events_alone(args: dict[str, str]) -> None:
    """DuckDB reads every event report from events alone: each event carries its visit's
    facts and every visit dimension (compiler.VISIT_COPIES), so no join to visits."""
    site = SiteRef(id=1, domain=SITE, timezone="Europe/Paris")
    q = query(site, args)  # type: ignore[arg-type]
    plan = plan_for(q, parts_for(q.metrics))
    sql, _ = engine.compiled(raw_buckets(q, plan, [(0, DAY_MS)], direct=True), "sqlite")
    assert "visits." not in sql, sql


@pytest.mark.parametrize(
    ("args", "form"),
    [
        # A visit report under `is`: each converting visit's first matching event.
        ({"metrics": VISIT_METRICS, "goal": "Blog|Signup"}, "first events"),
        ({"metrics": f"{VISIT_METRICS},pageviews", "goal": "Blog", "dimension": "time:day",
          "source": "Google"}, "first events"),
        # Event reports under `is`: the events joined to the converting visits' ids.
        ({"metrics": ALL_METRICS, "goal": "Blog|Signup", "dimension": "event:page"}, "joined"),
        ({"metrics": "visitors,pageviews", "goal": "Blog", "dimension": "event:page"},
         "joined"),
        # `is not`: the converting visits' ids looked up.
        ({"metrics": VISIT_METRICS, "goal": "!Blog|Signup", "dimension": "visit:source"},
         "looked up"),
        ({"metrics": "visitors,pageviews", "goal": "!Blog", "dimension": "event:page"},
         "looked up"),
    ],
)  # fmt: skip
def test_goal_filters_read_events_alone(args: dict[str, str], form: str) -> None:
    """DuckDB matches a goal filter's goals on the store's events alone, without the join
    to visits or goal_hits, in one scan whatever the goals, and without reading the events'
    times or the visits' starts (the store's views hold the period's visits): a visit
    report under `is` takes each converting visit's facts from its first matching event;
    an event report under `is` joins its events to the converting visits' ids; `is not`
    looks those ids up."""
    site = SiteRef(id=1, domain=SITE, timezone="Europe/Paris")
    goals = (
        GoalSpec(1, "Blog", "page", pattern="/blog*", hits_until_ms=DAY_MS),
        GoalSpec(2, "Signup", "event", event_name="Signup"),
    )
    q = dataclasses.replace(query(site, {k: v for k, v in args.items() if k != "goal"}),
                            goals=goals)  # fmt: skip
    q = matched_on_events(q.with_filter(parse_query(site, {"goal": args["goal"]}).filters[0]))
    plan = plan_for(q, parts_for(q.metrics))
    sql, _ = engine.compiled(raw_buckets(q, plan, None, direct=True), "sqlite")
    assert "JOIN visits" not in sql and "goal_hits" not in sql, sql
    assert "UNION" not in sql and "timestamp_ms >=" not in sql, sql
    assert sql.count(" IN (SELECT") == (form == "looked up"), sql
    assert ("JOIN (SELECT" in sql) == (form == "joined"), sql
    assert "started_ms >=" not in sql and "site_id =" not in sql, sql
    if form != "looked up":
        assert "FROM visits" not in sql and "visits." not in sql, sql


@pytest.mark.parametrize(
    ("args", "read"),
    [
        # Visit reports read the parts' visits, event reports their events' copies.
        ({"metrics": VISIT_METRICS, "goal": "Blog|Signup"}, "visits.goals & 5 != 0"),
        ({"metrics": VISIT_METRICS, "goal": "!Blog", "dimension": "visit:source"},
         "visits.goals & 1 = 0"),
        ({"metrics": "visitors,pageviews,time_on_page", "goal": "Signup",
          "dimension": "event:page"}, "events.visit_goals & 4 != 0"),
        ({"metrics": "visitors,pageviews", "goal": "!Blog|Signup", "dimension": "event:page"},
         "events.visit_goals & 5 = 0"),
        ({"metrics": VISIT_METRICS, "goal": "Blog", "page": "~a"},
         "events.visit_goals & 1 != 0"),
        # A goal at another bit in one part: matched on the events.
        ({"metrics": VISIT_METRICS, "goal": "Blog|Pricing"}, None),
    ],
)  # fmt: skip
def test_goal_filters_read_the_visits_stored_goals(args: dict[str, str], read: str | None) -> None:
    """A goal at the same bit of every part read is read from the visits' stored goals
    (the builder matched it): no goal matched, no converting ids looked up or joined."""
    site = SiteRef(id=1, domain=SITE, timezone="Europe/Paris")
    goals = (
        GoalSpec(1, "Blog", "page", pattern="/blog*"),
        GoalSpec(2, "Signup", "event", event_name="Signup"),
        GoalSpec(3, "Pricing", "page", pattern="/pricing"),
    )
    blog, signup, pricing = (goal_key(g) for g in goals)
    stored = [(blog, pricing, signup), (blog, "", signup, pricing)]
    q = dataclasses.replace(query(site, {k: v for k, v in args.items() if k != "goal"}),
                            goals=goals)  # fmt: skip
    q = q.with_filter(parse_query(site, {"goal": args["goal"]}).filters[0])
    q = matched_on_events(q, stored)
    plan = plan_for(q, parts_for(q.metrics))
    sql, params = engine.compiled(raw_buckets(q, plan, [(0, DAY_MS)], direct=True), "sqlite")
    sql = sql.replace("CAST(", "").replace(" AS BIGINT)", "")
    if read is None:
        assert "goals" not in sql and "/blog%" in params, sql
        return
    assert read in sql, sql
    assert " IN (SELECT" not in sql and "JOIN (SELECT" not in sql, sql
    if "page" not in args:  # an event filter's visit report takes a visit's first event
        assert "lag(" not in sql, sql
        assert not {"/blog%", "Signup", "/pricing"} & set(params), params


def test_a_goal_reads_its_bit_only_where_every_part_has_it_there() -> None:
    site = SiteRef(id=1, domain=SITE, timezone="UTC")
    goals = tuple(GoalSpec(i, f"G{i}", "page", pattern=f"/{i}") for i in range(3))
    first, second, third = (goal_key(g) for g in goals)
    q = dataclasses.replace(query(site, {"metrics": "visitors"}), goals=goals)  # type: ignore[arg-type]
    bits = [
        g.stored_bit for g in matched_on_events(q, [(first, second), (first, "", second)]).goals
    ]
    assert bits == [0, None, None]
    assert [g.stored_bit for g in matched_on_events(q).goals] == [None, None, None]
    assert [g.stored_bit for g in matched_on_events(q, [(third, first)]).goals] == [1, None, 0]


@pytest.mark.parametrize(
    "args",
    [
        {"metrics": DIRECT_METRICS, "dimension": "event:page", "source": "!Google"},
        {"metrics": DIRECT_METRICS, "page": "~blog"},
    ],
)
def test_database_counts_event_reports_in_one_grouping(args: dict[str, str]) -> None:
    """The database's raw rows (today, or no store) for parts summed per event: distinct
    visitors beside the sums in one GROUP BY, no row per visit first (SQLite ran a page
    breakdown of a day's events in half the time); the same numbers, as the agreement
    tests above check on both databases."""
    site = SiteRef(id=1, domain=SITE, timezone="Europe/Paris")
    q = query(site, args)  # type: ignore[arg-type]
    plan = plan_for(q, parts_for(q.metrics))
    sql = str(raw_buckets(q, plan, [(0, DAY_MS)]).compile()).upper()
    assert sql.count("GROUP BY") == 1 and "COUNT(DISTINCT VISITS.VISITOR_ID)" in sql, sql


def test_database_per_visit_rows_carry_only_the_sums_asked() -> None:
    """SQLite computes every column of a grouped subquery: the row per visit of a report
    with visit parts and an event filter carries only what its parts are summed from."""
    site = SiteRef(id=1, domain=SITE, timezone="Europe/Paris")
    q = query(site, {"metrics": "visitors,visits,bounce_rate", "page": "/blog*"})  # type: ignore[arg-type]
    plan = plan_for(q, parts_for(q.metrics))
    sql = str(raw_buckets(q, plan, [(0, DAY_MS)]).compile())
    for unasked in ("revenue", "time_on_page", "scroll", "duration_ms", "pageviews"):
        assert unasked not in sql, (unasked, sql)
    assert "bounce" in sql and "visitor_id" in sql


@pytest.mark.parametrize(
    "args",
    [
        {"metrics": VISIT_METRICS, "page": "!/"},
        {"metrics": ALL_METRICS, "page": "~blog", "dimension": "visit:source"},
    ],
)
def test_database_sums_a_visits_matching_events_before_joining_it(args: dict[str, str]) -> None:
    """The database's raw rows of a visit report under an event filter: the matching
    events summed per visit id first, then joined to their visit for its facts (SQLite
    read a day's in 40 % less time than grouping the joined rows by visit with max())."""
    site = SiteRef(id=1, domain=SITE, timezone="Europe/Paris")
    q = query(site, args)  # type: ignore[arg-type]
    sql = str(raw_buckets(q, plan_for(q, parts_for(q.metrics)), [(0, DAY_MS)]).compile())
    assert "GROUP BY events.visit_id" in sql and "max(visits." not in sql, sql


def test_each_thread_its_own_connection_to_one_database_that_fetches_nothing() -> None:
    names = ["threads", *engine.NO_EXTENSIONS, "temp_directory"]
    rows = duckdb_settings_per_thread(engine.connection, names)
    assert rows == [(engine.CONFIG["threads"], False, False, False, "")] * 2


# A statement that runs for minutes, and one that needs gigabytes.
ENDLESS = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"
GREEDY = (
    "SELECT count(*) FROM (SELECT DISTINCT range::VARCHAR || repeat('x', 40) FROM range(30000000))"
)


@pytest.fixture
def limits() -> Any:
    """The reader's limits, set back after the test."""
    before = dict(engine.CONFIG), engine.TIMEOUT_S
    yield engine.configure
    config, timeout = before
    engine.configure(threads=config["threads"], memory_limit=config["memory_limit"],
                     timeout_s=timeout)  # fmt: skip


def _run_instead(monkeypatch: pytest.MonkeyPatch, statement: str) -> None:
    """The store's statement replaced by `statement`, run as `sums` runs its own."""

    def sums(*_: Any, **__: Any) -> list[Any]:
        duck = engine.connection()
        with engine._deadline(duck):
            return duck.execute(statement).fetchall()

    monkeypatch.setattr(engine, "sums", sums)


def test_a_report_past_the_time_limit_stops_with_a_clear_error(
    db: Database, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: Any
) -> None:
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    limits(threads=2, memory_limit="1GB", timeout_s=0.3)
    _run_instead(monkeypatch, ENDLESS)
    began = time.monotonic()
    with pytest.raises(engine.StoreLimit, match="longer than 0.3 seconds"):
        run(db, query(site, {"metrics": ALL_METRICS, "source": "!Google"}))
    assert time.monotonic() - began < 10
    # The connection answers the next report.
    monkeypatch.undo()
    assert_same(db, site, {"metrics": ALL_METRICS, "source": "!Google"}, WEEK)


def test_a_report_past_the_memory_limit_stops_with_a_clear_error(
    db: Database, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: Any
) -> None:
    build(db, tmp_path / "columnar", site, date(2026, 10, 27))
    limits(threads=2, memory_limit="64MB", timeout_s=60)
    assert engine.connection().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    _run_instead(monkeypatch, GREEDY)
    with pytest.raises(engine.StoreLimit, match="more than 64MB of memory"):
        run(db, query(site, {"metrics": ALL_METRICS, "source": "!Google"}))


def test_the_limits_come_from_the_settings(limits: Any) -> None:
    from tracker.config import load_settings

    settings = load_settings(None, environ={
        "TRACKER_COLUMNAR_THREADS": "1", "TRACKER_COLUMNAR_MEMORY_LIMIT": "300MB",
        "TRACKER_COLUMNAR_TIMEOUT_SECONDS": "4",
    })  # fmt: skip
    engine.configure_from(settings)
    duck = engine.connection()
    row = duck.execute("SELECT current_setting('threads'), current_setting('memory_limit')")
    threads, memory = row.fetchone()
    assert threads == 1 and memory.startswith("286") and engine.TIMEOUT_S == 4


def test_a_process_that_read_the_store_exits_without_leak_reports() -> None:
    """DuckDB's bindings report each of their objects still alive at the interpreter's end
    as a leak (about forty lines on stderr, from every process that had read the store
    with its statements watched, as `sums` runs them): the process's database is let go of
    before (engine._release)."""
    code = (
        "from tracker.columnar import engine\n"
        "duck = engine.connection()\n"
        "with engine._deadline(duck):\n"
        "    duck.execute('SELECT 1').fetchall()\n"
        "print('read')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout) == (0, "read\n"), done.stderr
    assert "leaked" not in done.stderr
