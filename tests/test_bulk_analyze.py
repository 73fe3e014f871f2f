"""Planner statistics after bulk writes (tracker.db.analyze): `tracker import events`,
`tracker demo` and rollup rebuilds of many days end with one ANALYZE of the tables they
wrote on PostgreSQL (autovacuum gets there minutes later); SQLite is left without
statistics, as it always was."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select, text

from tests.helpers import DEFAULT_IP, DEFAULT_USER_AGENT, store_events
from tracker.cli import cli
from tracker.db import Database, analyze
from tracker.db.models import Goal, Site
from tracker.sites import add_site
from tracker.stats.query import site_ref
from tracker.stats.rollups import ANALYZE_AFTER_DAYS, refresh, refresh_site
from tracker.storage.store import STORED_TABLES

ROLLUP_TABLES = ("stats_rollups", "stats_rollup_state", "goal_hits", "goal_days", "goal_tag_days")
GOAL_TABLES = ("goal_hits", "goal_days", "goal_tag_days")
STATISTICS_LOG = "tracker.db.statistics"
postgres_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def server_now(db: Database) -> datetime:
    with db.engine.connect() as conn:
        return conn.scalar(text("SELECT clock_timestamp()"))  # type: ignore[no-any-return]


def last_analyze(db: Database) -> dict[str, tuple[datetime | None, int]]:
    """Each table's (last manual ANALYZE, rows changed since), from PostgreSQL's statistics;
    the app's tables only, not the copies other modules' seeds keep (tests/seeds.py)."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname, last_analyze, n_mod_since_analyze FROM pg_stat_user_tables"
                " WHERE schemaname = current_schema()"
            )
        )
        return {row.relname: (row.last_analyze, row.n_mod_since_analyze) for row in rows}


def analyzed_since(db: Database, since: datetime) -> set[str]:
    return {name for name, (at, _) in last_analyze(db).items() if at is not None and at >= since}


def has_sqlite_statistics(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(
            conn.scalar(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"))
        )


def analyze_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == STATISTICS_LOG]


def event_line(i: int, **fields: object) -> str:
    at = datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(seconds=i)
    return json.dumps(
        {
            "site": "example.com",
            "type": "pageview",
            "url": f"https://example.com/{i}",
            "timestamp": at.isoformat(),
            "ip": DEFAULT_IP,
            "user_agent": DEFAULT_USER_AGENT,
            **fields,
        }
    )


def test_import_events_analyzes_the_tables_it_stored(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=STATISTICS_LOG)
    db = Database(database_url)
    try:
        with db.session() as session:
            add_site(session, "example.com")
        lines = [event_line(i) for i in range(2500)]  # three chunks of the import
        lines.append(event_line(2500, user_agent="curl/8.4.0"))  # a drop count
        path = tmp_path / "events.ndjson"
        path.write_text("\n".join(lines) + "\n")
        env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "d")}
        before = None if db.is_sqlite else server_now(db)
        result = CliRunner().invoke(cli, ["import", "events", str(path)], env=env)
        assert result.exit_code == 0, result.output
        assert "Imported 2,500 events" in result.stdout
        if db.is_sqlite:
            assert not has_sqlite_statistics(db)
            assert analyze_records(caplog) == []
            return
        assert before is not None
        assert analyzed_since(db, before) >= {"events", "visits", "drop_counts"}
        stats = last_analyze(db)
        assert stats["events"][1] == stats["visits"][1] == 0  # nothing changed since
        assert len(analyze_records(caplog)) == 1  # once, at the end: not per chunk
    finally:
        db.dispose()


def test_demo_analyzes_the_tables_it_filled(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=STATISTICS_LOG)
    db = Database(database_url)
    try:
        before = None if db.is_sqlite else server_now(db)
        env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "data")}
        args = ["demo", "--days", "2", "--visits-per-day", "10"]
        result = CliRunner().invoke(cli, args, env={**env, "TRACKER_CONFIG": None})
        assert result.exit_code == 0, result.output
        if db.is_sqlite:
            assert not has_sqlite_statistics(db)
            return
        assert before is not None
        assert analyzed_since(db, before) >= {"events", "visits", "drop_counts"}
        assert len(analyze_records(caplog)) == 1
    finally:
        db.dispose()


def _store_days(app: Flask, domain: str, last: date, days: int) -> Site:
    """A pageview and a sign-up on each of `days` days through `last`; the site, with a goal."""
    events = []
    for back in range(days - 1, -1, -1):
        day = last - timedelta(days=back)
        events.append({"url": f"https://{domain}/", "timestamp": f"{day}T09:00:00Z"})
        events.append(
            {"type": "event", "name": "Signup", "url": f"https://{domain}/",
             "timestamp": f"{day}T09:01:00Z"}
        )  # fmt: skip
    store_events(app, events, site=domain)
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        site = session.scalars(select(Site).where(Site.domain == domain)).one()
        session.add(Goal(site_id=site.id, position=0, name="Signup", kind="event",
                         event_name="Signup"))  # fmt: skip
        return site


@postgres_only  # SQLite keeps no planner statistics to refresh
def test_rollups_analyze_after_many_days_only(
    app: Flask, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=STATISTICS_LOG)
    today = datetime.now(UTC).date()
    site = _store_days(app, "many.example", today - timedelta(days=1), ANALYZE_AFTER_DAYS + 3)
    before = server_now(db)
    refresh_site(db, site_ref(site))  # the first build: every day since the first visit
    assert analyzed_since(db, before) == set(ROLLUP_TABLES)
    # A minute later: today's events alone, one day rebuilt; autovacuum keeps up with that.
    store_events(app, [{"url": "https://many.example/"}], site="many.example")
    before = server_now(db)
    assert refresh_site(db, site_ref(site)) is not None
    assert analyzed_since(db, before) == set()
    # A goal added: its hits are backfilled over every covered day.
    with db.session() as session:
        session.add(Goal(site_id=site.id, position=1, name="Home", kind="page", pattern="/"))
    before = server_now(db)
    refresh_site(db, site_ref(site))
    assert analyzed_since(db, before) == set(GOAL_TABLES)
    assert len(analyze_records(caplog)) == 2


@postgres_only  # SQLite keeps no planner statistics to refresh
def test_the_rollup_job_analyzes_once_for_every_site(
    app: Flask, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=STATISTICS_LOG)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    for domain in ("one.example", "two.example"):
        _store_days(app, domain, yesterday, ANALYZE_AFTER_DAYS)
    before = server_now(db)
    assert refresh(db, full=True) == 2
    assert analyzed_since(db, before) == set(ROLLUP_TABLES)
    assert len(analyze_records(caplog)) == 1


def test_analyze_on_sqlite_does_nothing(db: Database) -> None:
    done = analyze(db, STORED_TABLES)
    assert done is not db.is_sqlite
    if db.is_sqlite:
        assert not has_sqlite_statistics(db)


@postgres_only  # SQLite keeps no planner statistics to refresh
def test_a_failed_analyze_is_logged_not_raised(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table

    missing = Table("no_such_table", MetaData(), Column("id", Integer))
    assert analyze(db, [missing]) is False
    assert any("no_such_table" in r.getMessage() for r in caplog.records)
