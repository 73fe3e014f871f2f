"""The compiler: filters to WHERE clauses, and DST-correct buckets on both databases.

Rows here are inserted straight into the tables to pin the SQL (bucketing, escaping);
the metric definitions are tested through the real ingest path in test_stats_run.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from tracker.db import Database
from tracker.db.models import Event, Site, Visit
from tracker.stats import Filter, parse_query, run
from tracker.stats.compiler import dimension_column
from tracker.stats.filters import compile_filter, like_pattern


def sql(flt: Filter, dialect: Dialect | None = None) -> str:
    clause = compile_filter(flt, dimension_column)
    dialect = dialect or sqlite.dialect()
    return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter("visit:source", "is", ("Google",)), "visits.source = 'Google'"),
        (
            Filter("visit:source", "is", ("Google", "Bing")),
            "visits.source IN ('Google', 'Bing')",
        ),
        (Filter("visit:country", "is_not", ("FR",)), "visits.country != 'FR'"),
        (
            Filter("visit:country", "is_not", ("FR", "DE")),
            "(visits.country NOT IN ('FR', 'DE'))",
        ),
        (
            Filter("event:page", "contains", ("/blog",)),
            "lower(events.path) LIKE lower('%/blog%') ESCAPE '\\'",
        ),
        (
            Filter("visit:utm_campaign", "contains", ("50%_off", "x")),
            "lower(visits.utm_campaign) LIKE lower('%50\\%\\_off%') ESCAPE '\\' "
            "OR lower(visits.utm_campaign) LIKE lower('%x%') ESCAPE '\\'",
        ),
        (
            Filter("visit:utm_source", "is", ("x' OR 1=1 --",)),
            "visits.utm_source = 'x'' OR 1=1 --'",
        ),
    ],
)
def test_filter_sql(flt: Filter, expected: str) -> None:
    assert sql(flt) == expected


def test_contains_is_ilike_on_postgresql() -> None:
    flt = Filter("event:page", "contains", ("/Blog",))
    # psycopg's paramstyle doubles % in the rendered text; the pattern sent is %/Blog%.
    assert sql(flt, postgresql.dialect()) == "events.path ILIKE '%%/Blog%%' ESCAPE '\\'"


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("a%b_c\\d") == "%a\\%b\\_c\\\\d%"


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def add_visit(db: Database, site_id: int, started: int, path: str = "/", **fields: Any) -> None:
    with db.session() as session:
        visit = Visit(
            site_id=site_id,
            visitor_id=fields.pop("visitor_id", started),
            started_ms=started,
            last_ms=started,
            entry_page=path,
            exit_page=path,
            pageviews=1,
            **fields,
        )
        session.add(visit)
        session.flush()
        session.add(
            Event(
                site_id=site_id,
                visit_id=visit.id,
                visitor_id=visit.visitor_id,
                timestamp_ms=started,
                kind="pageview",
                path=path,
            )
        )


def make_site(db: Database, tz: str) -> Site:
    with db.session() as session:
        site = Site(domain="dst.example", timezone=tz, allowed_hostnames=[])
        session.add(site)
    return site


def test_days_and_hours_across_fall_back_in_paris(db: Database) -> None:
    site = make_site(db, "Europe/Paris")
    # 2026-10-25 is 25 hours long in Paris: 00:00 is 22:00 UTC the day before, 24:00 is 23:00.
    for started in (
        ms(2026, 10, 24, 21, 59),  # 23:59 on the 24th (CEST)
        ms(2026, 10, 24, 22, 0),  # 00:00 on the 25th
        ms(2026, 10, 25, 0, 30),  # 02:30 CEST, first time
        ms(2026, 10, 25, 1, 30),  # 02:30 CET, second time
        ms(2026, 10, 25, 22, 59),  # 23:59 on the 25th (CET)
        ms(2026, 10, 25, 23, 0),  # 00:00 on the 26th
    ):
        add_visit(db, site.id, started)
    args = {"period": "custom", "from": "2026-10-24", "to": "2026-10-26"}
    days = run(db, parse_query(site, {**args, "dimension": "time:day", "metrics": "visits"}))
    assert [(r["time:day"], r["visits"]) for r in days.rows] == [
        ("2026-10-24", 1),
        ("2026-10-25", 4),
        ("2026-10-26", 1),
    ]
    one_day = {"period": "custom", "from": "2026-10-25", "to": "2026-10-25"}
    hours = run(db, parse_query(site, {**one_day, "dimension": "time:hour", "metrics": "visits"}))
    assert len(hours.rows) == 25
    busy = [(r["time:hour"], r["visits"]) for r in hours.rows if r["visits"]]
    assert busy == [
        ("2026-10-25T00:00+02:00", 1),
        ("2026-10-25T02:00+02:00", 1),
        ("2026-10-25T02:00+01:00", 1),
        ("2026-10-25T23:00+01:00", 1),
    ]


def test_days_weeks_months_across_spring_forward_in_new_york(db: Database) -> None:
    site = make_site(db, "America/New_York")
    # 2026-03-08 is 23 hours long in New York: 05:00 UTC to 04:00 UTC the next day.
    for started in (
        ms(2026, 3, 8, 4, 59),  # 23:59 EST on the 7th (a Saturday)
        ms(2026, 3, 8, 5, 0),  # 00:00 EST on the 8th (a Sunday)
        ms(2026, 3, 9, 3, 59),  # 23:59 EDT on the 8th
        ms(2026, 3, 9, 4, 0),  # 00:00 EDT on the 9th (Monday: a new week)
        ms(2026, 4, 1, 3, 59),  # 23:59 EDT on March 31st
        ms(2026, 4, 1, 4, 0),  # 00:00 EDT on April 1st
    ):
        add_visit(db, site.id, started)
    args = {"period": "custom", "from": "2026-03-01", "to": "2026-04-30", "metrics": "visits"}

    def series(dim: str) -> list[tuple[str, int]]:
        rows = run(db, parse_query(site, {**args, "dimension": dim})).rows
        return [(r[dim], r["visits"]) for r in rows if r["visits"]]

    assert series("time:day") == [
        ("2026-03-07", 1),
        ("2026-03-08", 2),
        ("2026-03-09", 1),
        ("2026-03-31", 1),
        ("2026-04-01", 1),
    ]
    assert series("time:week") == [("2026-03-02", 3), ("2026-03-09", 1), ("2026-03-30", 2)]
    assert series("time:month") == [("2026-03-01", 5), ("2026-04-01", 1)]
    weeks = run(db, parse_query(site, {**args, "dimension": "time:week"})).rows
    assert weeks[0]["time:week"] == "2026-02-23" and len(weeks) == 10
    one_day = {"period": "custom", "from": "2026-03-08", "to": "2026-03-08"}
    hours = run(db, parse_query(site, {**one_day, "dimension": "time:hour", "metrics": "visits"}))
    assert len(hours.rows) == 23
    assert [r["time:hour"] for r in hours.rows][1:3] == [
        "2026-03-08T01:00-05:00",
        "2026-03-08T03:00-04:00",
    ]


def test_filters_reach_the_database_escaped(db: Database) -> None:
    site = make_site(db, "UTC")
    for i, path in enumerate(("/sale/50%_off", "/sale/50xxoff", "/about")):
        add_visit(db, site.id, ms(2026, 5, 1, 12, i), path, source="Google" if i else "Bing")
    base = {"period": "custom", "from": "2026-05-01", "to": "2026-05-01", "metrics": "visits"}
    for args, expected in (
        ({"page": "~50%_"}, 1),
        ({"page": "~/SALE/"}, 2),
        ({"entry_page": "!/about"}, 2),
        ({"source": "Google|Bing"}, 3),
        ({"source": "Google", "page": "~sale"}, 1),
        ({"source": "x' OR '1'='1"}, 0),
    ):
        result = run(db, parse_query(site, {**base, **args}))
        assert result.totals["visits"] == expected, args
