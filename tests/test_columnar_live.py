"""The days the columnar store has not closed yet, read from the database (issue 16).

A report over closed and open days reads the open ones' per-bucket rows from the database
(tracker.columnar.engine._live_source). On PostgreSQL raw events are bounded by their own
time there, not only by their visit's start: bounded by the visits alone, the read scanned
every event of the site (1M events, two open days, `event:page!=/`: 1.1 s with two
parallel workers; by the events' time, ix_events_site_time reads the open days' events).
SQLite reads them by the visits' index, unbounded (bounded, it read every open day's event
under a rare visit filter). The rows stay the raw path's: a visit's events come at or after
its start. And PostgreSQL reads while DuckDB sums the closed days, without parallel workers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from tests.helpers import store_events
from tests.waiting import DEADLINE_SECONDS
from tracker.columnar import engine
from tracker.columnar.build import CLOSE_AFTER_MS, refresh
from tracker.columnar.layout import read_manifest
from tracker.db import Database
from tracker.goals import add_goal
from tracker.sites import add_site, find_site
from tracker.stats import parse_query, run
from tracker.stats.query import Query

SITE = "live.example"
DAYS = 6
# The store holds the first two days; the other four are read from the database.
CLOSED_UNTIL = date(2026, 11, 4)
NOW = datetime(2026, 11, 7, 18, tzinfo=UTC)
PERIOD = {"period": "custom", "from": "2026-11-02", "to": "2026-11-07"}
PAGES = ["/", "/blog/a", "/blog/b", "/pricing"]
SOURCES = ["", "https://www.google.com/", "https://www.bing.com/"]
HEADLINE = "visitors,visits,pageviews,bounce_rate,visit_duration"
# Reports reading events for the open days (an event filter, an event dimension, a goal
# on pages); and one over two days the database holds alone, compared with the two days
# before (2026-11-03, closed, and 04, open): its rows restrict those days' report.
EVENT_REPORTS: list[dict[str, str]] = [
    {"metrics": HEADLINE, "page": "!/"},
    {"metrics": HEADLINE, "page": "~blog", "dimension": "time:day"},
    {"metrics": "visitors,visits,bounce_rate", "page": "/blog*", "dimension": "visit:source"},
    {"metrics": "visitors,pageviews", "source": "!Google", "dimension": "event:page"},
    {"metrics": "visitors,pageviews", "goal": "Blog", "dimension": "event:page"},
    {"metrics": "visitors,pageviews", "dimension": "visit:source,event:page",
     "compare": "previous_period", "from": "2026-11-05", "to": "2026-11-06"},
]  # fmt: skip
# Reports on visits alone: their open days' statement reads no events at all.
VISIT_REPORTS: list[dict[str, str]] = [
    {"metrics": HEADLINE, "source": "!Google"},
    {"metrics": "visitors,visits", "source": "Google|Bing", "dimension": "time:day"},
]


def traffic() -> list[dict[str, Any]]:
    """Visits each day, some starting minutes before UTC midnight and going on after it
    (their events on the next day belong to the day the visit started)."""
    events = []
    for offset in range(DAYS):
        day = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(days=offset)
        for person in range(8):
            start = day + timedelta(hours=23, minutes=50) if person % 4 == 0 else day
            start += timedelta(hours=person)
            if start >= NOW:
                continue
            who = {"ip": f"198.51.100.{person + 1}", "referrer": SOURCES[person % 3]}
            for step in range(1 + person % 3):
                at = start + timedelta(minutes=7 * step)
                page = PAGES[(person + step + offset) % len(PAGES)]
                events.append({**who, "url": f"https://{SITE}{page}", "timestamp": at.isoformat()})
    return events


@pytest.fixture
def site_query(app: Flask, db: Database, tmp_path: Path) -> Any:
    with db.session() as session:
        add_site(session, SITE, timezone="UTC")
    store_events(app, traffic(), site=SITE)
    with db.session() as session:
        found = find_site(session, SITE)
        assert found is not None
        add_goal(session, found, name="Blog", kind="page", pattern="/blog*")
    until_ms = int(datetime.combine(CLOSED_UNTIL, datetime.min.time(), UTC).timestamp() * 1000)
    root = tmp_path / "columnar"
    refresh(db, root, now_ms=until_ms + CLOSE_AFTER_MS, budget_s=None)
    manifest = read_manifest(root, found.id)
    assert manifest is not None and manifest.complete_until_ms == until_ms
    db.columnar_root = root

    def query(args: dict[str, str]) -> Query:
        return parse_query(found, {**PERIOD, **args}, now=NOW)

    return query, until_ms


@contextmanager
def statements(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The SQL and parameters the database runs inside the block."""
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        seen.append((sql, params))

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def _values(params: Any) -> list[Any]:
    return list(params.values()) if isinstance(params, dict) else list(params)


def _reads_events(sql: str) -> bool:
    return re.search(r"\bFROM events JOIN visits\b", sql) is not None


def _paths(result: Any) -> set[str]:
    """The paths that answered a result's sums, its comparison's too."""
    compared = result.comparison
    return {*result.meta["paths"], *(compared.meta["paths"] if compared else ())}


@pytest.mark.parametrize("args", EVENT_REPORTS)
def test_open_days_read_events_from_their_own_time(
    db: Database, site_query: Any, args: dict[str, str]
) -> None:
    """The rows are the raw path's; on PostgreSQL the open days' statement bounds the
    events by the split, on SQLite by their visits alone (the database's statements over
    events from the split on: the closed days are the store's)."""
    query, split = site_query
    q = query(args)
    raw = run(db, q, rollups=False)
    with statements(db) as seen:
        stored = run(db, q)
    assert "columnar+live" in _paths(stored), args
    assert stored.rows == raw.rows, args
    if raw.comparison is not None:
        assert stored.comparison is not None
        assert stored.comparison.rows == raw.comparison.rows, args
    assert any(row[q.metrics[0]] for row in stored.rows), args
    live = [sql for sql, params in seen if _reads_events(sql) and split in _values(params)]
    assert live, args
    # PostgreSQL reads them without parallel workers (engine.SERIAL_READ, said first).
    said = [sql for sql, _ in seen]
    if db.is_sqlite:
        assert engine.SERIAL_READ not in said, args
    else:
        assert said.index(engine.SERIAL_READ) < said.index(live[0]), args
    for sql in live:
        bounded = re.search(r"\bevents\.timestamp_ms >=", sql) is not None
        # A goal's matches are bounded by the period's start on both (goals.goal_matches).
        assert bounded == (not db.is_sqlite or "goal" in args), (args, sql)


@pytest.mark.parametrize("args", VISIT_REPORTS)
def test_open_days_of_a_visit_report_read_visits_alone(
    db: Database, site_query: Any, args: dict[str, str]
) -> None:
    query, _ = site_query
    q = query(args)
    raw = run(db, q, rollups=False)
    with statements(db) as seen:
        stored = run(db, q)
    assert "columnar+live" in stored.meta["paths"], args
    assert stored.rows == raw.rows, args
    assert not any(re.search(r"\bevents\b", sql) for sql, _ in seen), args


# SQLite reads the open days on the request's thread (overlapped, it cost CPU and saved no
# time on two busy cores): this test is PostgreSQL's alone.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_postgresql_reads_the_open_days_while_duckdb_sums_the_parts(
    db: Database, site_query: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the open days' statement runs in another thread while DuckDB sums the
    closed days: the request waits for the longer of the two, not their sum. The read here
    starts only once the parts' statement is being built on the request's thread (it would
    wait in vain were the two one after the other); the rows are still the raw path's."""
    query, _ = site_query
    request_thread = threading.current_thread()
    parts_begun = threading.Event()
    readers: list[tuple[threading.Thread, bool]] = []
    build_statement, read_rows = engine.raw_buckets, engine._live_rows

    def parts_statement(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is request_thread:
            parts_begun.set()
        return build_statement(*args, **kwargs)

    def open_days(*args: Any) -> Any:
        readers.append((threading.current_thread(), parts_begun.wait(DEADLINE_SECONDS)))
        return read_rows(*args)

    monkeypatch.setattr(engine, "raw_buckets", parts_statement)
    monkeypatch.setattr(engine, "_live_rows", open_days)
    for args in (EVENT_REPORTS[0], VISIT_REPORTS[0]):
        q = query(args)
        stored = run(db, q)
        assert stored.meta["paths"] == ("columnar+live",), args
        assert stored.rows == run(db, q, rollups=False).rows, args
    assert len(readers) == 2
    assert all(thread is not request_thread and waited for thread, waited in readers)
