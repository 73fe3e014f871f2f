"""Goal hits (tracker.stats.hits): the rollup job keeps each goal's matching events, and the
Goals card, conversion mode and funnels read them; their numbers must equal the raw path's
(tests/test_conversions.py hand-counts them), whichever days are built, on both databases.

Traffic: test_conversions' day (yesterday) and the same visits the day before, so a
period of two days can be read half from hits and half from raw events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from tests.helpers import store_events
from tests.test_conversions import DAY, GOALS, SITE, traffic
from tracker.db import Database
from tracker.db.models import Funnel, Goal, GoalHit, Site
from tracker.stats import funnel, hits, parse_query, run
from tracker.stats.goals import load_goals
from tracker.stats.query import site_ref
from tracker.stats.rollups import refresh_site

EARLIER = DAY - timedelta(days=1)
GOALS_CARD = {"dimension": "event:goal", "metrics": "visitors,conversions,events,conversion_rate"}
CONVERSION_QUERIES = [
    GOALS_CARD,
    {**GOALS_CARD, "source": "Google"},
    {"goal": "Signup", "metrics": "visitors,visits,pageviews,events,conversion_rate"},
    {"goal": "Signup", "dimension": "visit:source", "metrics": "visits,conversions"},
    {"goal": "Signup|Guide", "dimension": "event:page", "metrics": "visitors,pageviews"},
    {"goal": "!Signup", "metrics": "visits"},
]


def _earlier(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "timestamp": event["timestamp"].replace(str(DAY), str(EARLIER))}


@pytest.fixture
def site(app: Flask, db: Database) -> Site:
    store_events(app, [_earlier(e) for e in traffic()], site=SITE)
    store_events(app, traffic(), site=SITE)
    with db.session() as session:
        found = session.scalars(select(Site).where(Site.domain == SITE)).one()
        for position, goal in enumerate(GOALS):
            session.add(Goal(site_id=found.id, position=position, **goal))
        return found


def _query(site: Site, days: tuple[Any, Any], args: dict[str, str]):
    return parse_query(site, {"period": "custom", "from": str(days[0]), "to": str(days[1]), **args})


def _hits(db: Database, goal: str) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(GoalHit)
                .join(Goal, Goal.id == GoalHit.goal_id)
                .where(Goal.name == goal)
            )
        )


def _built(db: Database) -> dict[str, bool]:
    with db.session() as session:
        return {g.name: g.hits_built for g in session.scalars(select(Goal))}


def test_the_rollup_job_stores_each_goals_matching_events(db: Database, site: Site) -> None:
    assert _hits(db, "Signup") == 0
    refresh_site(db, site_ref(site))
    assert all(_built(db).values())
    # Per day: 3 Signup events, 1 pro, 1 thank-you page, 1 pdf click, 1 order page.
    assert [_hits(db, g["name"]) for g in GOALS] == [6, 2, 2, 2, 2, 0]


@pytest.mark.parametrize("args", CONVERSION_QUERIES, ids=lambda a: ",".join(a.values()))
def test_hits_and_raw_events_give_the_same_numbers(
    db: Database, site: Site, args: dict[str, str]
) -> None:
    # Built through the first day only: the two-day period reads hits, then raw events.
    evening = datetime.combine(EARLIER, datetime.min.time(), UTC) + timedelta(hours=23)
    refresh_site(db, site_ref(site), now_ms=int(evening.timestamp() * 1000))
    with db.engine.connect() as conn:
        specs = load_goals(conn, site_ref(site), hits=True)
    midnight = datetime.combine(DAY, datetime.min.time(), UTC)
    assert {g.hits_until_ms for g in specs} == {int(midnight.timestamp() * 1000)}
    for days in ((EARLIER, EARLIER), (EARLIER, DAY), (DAY, DAY)):
        query = _query(site, days, args)
        assert run(db, query).rows == run(db, query, rollups=False).rows, days
    one_day = run(db, _query(site, (EARLIER, EARLIER), GOALS_CARD)).rows
    assert {r["event:goal"]: r["events"] for r in one_day}["Signup"] == 3


def test_funnels_read_the_same_steps_from_hits(db: Database, site: Site) -> None:
    with db.session() as session:
        ids = {g.name: g.id for g in session.scalars(select(Goal))}
        session.add(Funnel(site_id=site.id, name="Flow", steps=[ids["Signup"], ids["Thank you"]]))
    query = _query(site, (EARLIER, DAY), {})
    before = funnel(db, query, "Flow").steps
    refresh_site(db, site_ref(site))
    after = funnel(db, query, "Flow").steps
    assert after == before
    assert [(s.visitors, s.dropped) for s in after] == [(4, 0), (2, 2)]


def test_a_goal_added_after_the_build_is_backfilled(db: Database, site: Site) -> None:
    refresh_site(db, site_ref(site))
    with db.session() as session:
        session.add(Goal(site_id=site.id, name="Pricing", kind="page", pattern="/pri*"))
    assert _built(db)["Pricing"] is False
    query = _query(site, (EARLIER, DAY), {"goal": "Pricing", "metrics": "visits,conversion_rate"})
    # Until the job runs, the new goal is matched on raw events: past visits count already.
    assert run(db, query).rows == [{"visits": 2, "conversion_rate": 25.0}]
    refresh_site(db, site_ref(site))  # nothing new stored: only the backfill runs
    assert _built(db)["Pricing"] is True
    assert _hits(db, "Pricing") == 2
    assert run(db, query).rows == [{"visits": 2, "conversion_rate": 25.0}]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hits_and_rollups_are_written_with_a_large_page_cache_then_the_default(
    db: Database, site: Site
) -> None:
    """On SQLite the connection writing them holds a day's pages of the written tables and
    their indexes (`hits.write_cache`): with the default 2 MB cache a slice's pages were
    read and spilled again under the write lock. Its pooled connection goes back with the
    default, through the rollups' build and a new goal's backfill alike."""
    seen: dict[str, set[int]] = {"goal_hits": set(), "stats_rollups": set()}
    connections: list[Any] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        for table, sizes in seen.items():
            if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
                dbapi = cursor.connection
                sizes.add(dbapi.execute("PRAGMA cache_size").fetchone()[0])
                connections.append(dbapi)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        refresh_site(db, site_ref(site))
        inserted_by_build = set(seen["goal_hits"])
        with db.session() as session:
            session.add(Goal(site_id=site.id, name="Pricing", kind="page", pattern="/pri*"))
        seen["goal_hits"].clear()
        refresh_site(db, site_ref(site))  # the new goal's backfill
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert _hits(db, "Pricing") == 2
    large = -hits.WRITE_CACHE_KB
    assert inserted_by_build == {large}
    assert seen == {"goal_hits": {large}, "stats_rollups": {large}}
    with db.engine.connect() as conn:
        default = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    assert default != large
    assert {dbapi.execute("PRAGMA cache_size").fetchone()[0] for dbapi in connections} == {default}


def test_deleting_a_goal_deletes_its_hits(db: Database, site: Site) -> None:
    refresh_site(db, site_ref(site))
    with db.session() as session:
        session.delete(session.scalars(select(Goal).where(Goal.name == "Signup")).one())
    assert _hits(db, "Signup") == 0
    with db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(GoalHit)) == 8


def test_a_time_zone_change_rebuilds_the_hits(db: Database, site: Site) -> None:
    refresh_site(db, site_ref(site))
    with db.session() as session:
        session.get(Site, site.id).timezone = "Pacific/Kiritimati"  # UTC+14
    moved = site_ref(db_site(db, site.id))
    refresh_site(db, moved)
    assert all(_built(db).values())
    assert _hits(db, "Signup") == 6
    with db.engine.connect() as conn:
        days = set(conn.scalars(select(GoalHit.day).distinct()))
    query = parse_query(
        db_site(db, site.id),
        {"period": "custom", "from": str(EARLIER), "to": str(DAY + timedelta(days=1)),
         **GOALS_CARD},
    )  # fmt: skip
    assert run(db, query).rows == run(db, query, rollups=False).rows
    assert len(days) >= 2


def db_site(db: Database, site_id: int) -> Site:
    with db.session() as session:
        found = session.get(Site, site_id)
        session.expunge(found)
        return found


def _derived(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the goal hits and counts, ids left out, in one order."""
    found = {}
    with db.engine.connect() as conn:
        for table in hits.DERIVED:
            columns = [c for c in table.c if c.name != "id"]
            found[table.name] = conn.execute(select(*columns).order_by(*columns)).all()
    return found


def test_a_days_hits_are_written_in_small_transactions(
    db: Database, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    refresh_site(db, site_ref(site))
    whole = _derived(db)
    assert whole["goal_hits"] and whole["goal_days"] and whole["goal_tag_days"]
    inserted: list[int] = [0]  # hit rows inserted by each transaction, the last one open

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO GOAL_HITS"):
            inserted[-1] += cursor.rowcount

    def close(conn: Any) -> None:
        inserted.append(0)

    monkeypatch.setattr(hits, "WRITE_ROWS", 1)
    event.listen(db.engine, "after_cursor_execute", count)
    event.listen(db.engine, "commit", close)
    try:
        # Built goals, rewritten: marked unbuilt while their slices are written.
        refresh_site(db, site_ref(site), rebuild_from=EARLIER)
    finally:
        event.remove(db.engine, "after_cursor_execute", count)
        event.remove(db.engine, "commit", close)
    writes = [n for n in inserted if n]
    # Signup: 3 events a day in 2 visits (one visit signed up twice).
    assert sum(writes) == len(whole["goal_hits"])
    # More transactions than goals' days: a day of Signup's is written in two.
    assert len(writes) > len({(row.goal_id, row.day) for row in whole["goal_hits"]})
    assert max(writes) <= 2
    assert _derived(db) == whole
    assert all(_built(db).values())


def test_a_second_refresh_compiles_no_statement_again(db: Database, site: Site) -> None:
    """SQLAlchemy caches compiled SQL under keys holding the Table objects themselves: the
    refresh's temporary tables are defined once (tracker.stats.temptables), so the same
    refresh again finds every statement compiled (each compiled anew cost ~0.1 s of CPU a
    refresh, each minute for each site), the goal hits' tables as the rollups'."""
    compiled: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, *_: Any) -> None:
        if context.cache_hit is conn.dialect.CACHE_MISS:
            compiled.append(" ".join(statement.split()[:3]))

    refresh_site(db, site_ref(site))
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        refresh_site(db, site_ref(site), full=True)  # the same rebuild, from scratch
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert compiled == []
    assert [_hits(db, g["name"]) for g in GOALS] == [6, 2, 2, 2, 2, 0]
