"""Goals and conversions, hand-counted, on both databases.

One day of traffic on example.com (yesterday, UTC):

visitor 1  ?utm_source=google  /  ->  /pricing  ->  event Signup {plan: pro}  ->  /thank-you
visitor 2  from facebook       /  ->  event Signup {plan: free} twice  ->  click guide.pdf
visitor 3  direct              /                        (a bounce, converts on nothing)
visitor 4  ?utm_source=google  /order/123/done

Goals: Signup (event), Pro signup (event Signup where plan = pro), Thank you (page
/thank-you), Guide (click *.pdf), Order done (page /order/*/done), Never (page /never).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.helpers import store_events
from tests.seeds import seeded_variants
from tracker.db import Database
from tracker.db.models import Funnel, Goal, Site
from tracker.stats import QueryError, conversions, funnel, parse_query, run
from tracker.stats.query import site_ref
from tracker.stats.rollups import refresh_site

DAY = datetime.now(UTC).date() - timedelta(days=1)
SITE = "example.com"


def at(clock: str) -> str:
    return f"{DAY}T{clock}Z"


def traffic() -> list[dict[str, Any]]:
    url = f"https://{SITE}"
    one, two, three, four = "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"
    return [
        {"ip": one, "timestamp": at("09:00:00"), "url": f"{url}/?utm_source=google"},
        {"ip": one, "timestamp": at("09:01:00"), "url": f"{url}/pricing"},
        {"ip": one, "timestamp": at("09:02:00"), "type": "event", "name": "Signup",
         "url": f"{url}/pricing", "props": {"plan": "pro"}},
        {"ip": one, "timestamp": at("09:03:00"), "url": f"{url}/thank-you"},
        {"ip": two, "timestamp": at("10:00:00"), "url": f"{url}/",
         "referrer": "https://l.facebook.com/"},
        {"ip": two, "timestamp": at("10:01:00"), "type": "event", "name": "Signup",
         "url": f"{url}/", "props": {"plan": "free"}},
        {"ip": two, "timestamp": at("10:02:00"), "type": "event", "name": "Signup",
         "url": f"{url}/", "props": {"plan": "free"}},
        {"ip": two, "timestamp": at("10:03:00"), "type": "click", "name": "File Download",
         "url": f"{url}/", "target": f"{url}/files/guide.pdf"},
        {"ip": three, "timestamp": at("11:00:00"), "url": f"{url}/"},
        {"ip": four, "timestamp": at("12:00:00"), "url": f"{url}/order/123/done?utm_source=google"},
    ]  # fmt: skip


GOALS = [
    {"name": "Signup", "kind": "event", "event_name": "Signup"},
    {"name": "Pro signup", "kind": "event", "event_name": "Signup", "prop_key": "plan",
     "prop_value": "pro"},
    {"name": "Thank you", "kind": "page", "pattern": "/thank-you"},
    {"name": "Guide", "kind": "click", "pattern": "*.pdf"},
    {"name": "Order done", "kind": "page", "pattern": "/order/*/done"},
    {"name": "Never", "kind": "page", "pattern": "/never"},
]  # fmt: skip


def seeded_site(app: Flask, variant: str) -> Site:
    """The site with its traffic and GOALS, matched on raw events, or on the hits the
    rollup job stores ("goal hits")."""
    db: Database = app.extensions["tracker.db"]
    store_events(app, traffic(), site=SITE)
    with db.session() as session:
        found = session.scalars(select(Site).where(Site.domain == SITE)).one()
        for position, goal in enumerate(GOALS):
            session.add(Goal(site_id=found.id, position=position, **goal))
    if variant == "goal hits":
        refresh_site(db, site_ref(found))
    return found


# `site`: stored once per module on each database, in each variant (tests/seeds.py).
variant_seeds_sqlite, variant_seeds_postgres, variant, sqlite_seed, postgres_seed, site = (
    seeded_variants("conversions", ("raw events", "goal hits"), seeded_site)
)


def report(db: Database, site: Site, **args: str) -> list[dict[str, Any]]:
    query = parse_query(site, {"period": "custom", "from": str(DAY), "to": str(DAY), **args})
    return run(db, query).rows


def test_goals_card(db: Database, site: Site) -> None:
    rows = report(
        db,
        site,
        dimension="event:goal",
        metrics="visitors,conversions,events,conversion_rate",
    )
    assert rows == [
        {"event:goal": "Signup", "visitors": 2, "conversions": 2, "events": 3,
         "conversion_rate": 50.0},
        {"event:goal": "Pro signup", "visitors": 1, "conversions": 1, "events": 1,
         "conversion_rate": 25.0},
        {"event:goal": "Thank you", "visitors": 1, "conversions": 1, "events": 1,
         "conversion_rate": 25.0},
        {"event:goal": "Guide", "visitors": 1, "conversions": 1, "events": 1,
         "conversion_rate": 25.0},
        {"event:goal": "Order done", "visitors": 1, "conversions": 1, "events": 1,
         "conversion_rate": 25.0},
    ]  # fmt: skip


def test_goal_filter_keeps_the_visits_that_converted(db: Database, site: Site) -> None:
    headline = report(
        db, site, goal="Signup", metrics="visitors,visits,pageviews,events,conversion_rate"
    )
    assert headline == [
        {"visitors": 2, "visits": 2, "pageviews": 4, "events": 3, "conversion_rate": 50.0}
    ]
    # What those visits did: their pages, not "Pageviews 0".
    pages = report(db, site, goal="Signup", dimension="event:page", metrics="pageviews")
    assert pages == [
        {"event:page": "/", "pageviews": 2},
        {"event:page": "/pricing", "pageviews": 1},
        {"event:page": "/thank-you", "pageviews": 1},
    ]
    assert report(db, site, goal="!Signup", metrics="visits") == [{"visits": 2}]
    assert report(db, site, goal="Guide|Order done", metrics="visits") == [{"visits": 2}]


def test_conversion_rate_per_source(db: Database, site: Site) -> None:
    rows = report(
        db,
        site,
        goal="Signup",
        dimension="visit:source",
        metrics="visits,conversions,conversion_rate",
    )
    assert rows == [
        {"visit:source": "Facebook", "visits": 1, "conversions": 1, "conversion_rate": 100.0},
        {"visit:source": "Google", "visits": 1, "conversions": 1, "conversion_rate": 50.0},
    ]


@pytest.mark.parametrize("limit", [1, 2])
def test_conversion_rate_of_many_rows_reads_every_value(
    db: Database, site: Site, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """Past MAX_RESTRICTED_ROWS rows (PostgreSQL binds at most 65,535 values, and a
    100,000-page site's CSV has that many) the visits are read for every value, not
    restricted to the rows': the same rates."""
    monkeypatch.setattr(conversions, "MAX_RESTRICTED_ROWS", limit)
    restricts: list[Any] = []
    running = conversions._base_visits

    def spying(query: Any, rows: Any, runner: Any) -> Any:
        def recording(base: Any, restrict: Any) -> Any:
            restricts.append(restrict)
            return runner(base, restrict)

        return running(query, rows, recording)

    monkeypatch.setattr(conversions, "_base_visits", spying)
    test_conversion_rate_per_source(db, site)
    # The two sources: restricted to up to the limit, not past it.
    assert restricts == ([None] if limit < 2 else [[("Facebook",), ("Google",)]])


def test_raw_and_rollup_paths_agree_under_a_goal(db: Database, site: Site) -> None:
    refresh_site(db, site_ref(site))
    query = parse_query(
        site,
        {"period": "custom", "from": str(DAY), "to": str(DAY), "goal": "Signup",
         "dimension": "visit:channel", "metrics": "visitors,visits,conversion_rate"},
    )  # fmt: skip
    assert run(db, query).rows == run(db, query, rollups=False).rows
    assert run(db, query).meta["source"] == "raw"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"goal": "Nope"}, "no goal named 'Nope'"),
        ({"metrics": "conversion_rate"}, "need a goal"),
        ({"goal": "~Sign"}, "name goals exactly"),
    ],
)
def test_goal_errors_name_the_problem(db: Database, site: Site, args, message) -> None:
    with pytest.raises(QueryError, match=message):
        report(db, site, **args)


def test_a_goal_added_later_counts_past_visits(db: Database, site: Site) -> None:
    with db.session() as session:
        session.add(Goal(site_id=site.id, name="Pricing", kind="page", pattern="/pri*"))
    rows = report(db, site, goal="Pricing", metrics="visits,conversion_rate")
    assert rows == [{"visits": 1, "conversion_rate": 25.0}]


def _funnel(db: Database, site: Site, name: str, steps: list[str]) -> None:
    with db.session() as session:
        ids = {g.name: g.id for g in session.scalars(select(Goal).where(Goal.site_id == site.id))}
        session.add(Funnel(site_id=site.id, name=name, steps=[ids[s] for s in steps]))


def _steps(db: Database, site: Site, name: str, **args: str) -> list[tuple[Any, ...]]:
    query = parse_query(site, {"period": "custom", "from": str(DAY), "to": str(DAY), **args})
    return [
        (s.goal, s.visitors, s.from_previous, s.from_start, s.dropped)
        for s in funnel(db, query, name).steps
    ]


def test_funnels_count_steps_in_order_within_a_visit(db: Database, site: Site) -> None:
    _funnel(db, site, "Signup flow", ["Signup", "Thank you"])
    _funnel(db, site, "Backwards", ["Thank you", "Signup"])
    _funnel(db, site, "Across visits", ["Order done", "Signup"])
    assert _steps(db, site, "Signup flow") == [
        ("Signup", 2, None, 100.0, 0),
        ("Thank you", 1, 50.0, 50.0, 1),
    ]
    # Visitor 1 signed up before seeing /thank-you: backwards is not in order.
    assert _steps(db, site, "Backwards") == [
        ("Thank you", 1, None, 100.0, 0),
        ("Signup", 0, 0.0, 0.0, 1),
    ]
    assert _steps(db, site, "Across visits")[1][1] == 0
    # Three steps: one event may complete two steps at once (a pro Signup is a Signup).
    _funnel(db, site, "Pro flow", ["Signup", "Pro signup", "Thank you"])
    assert [s[1] for s in _steps(db, site, "Pro flow")] == [2, 1, 1]
    _funnel(db, site, "Round trip", ["Thank you", "Signup", "Thank you"])
    assert [s[1] for s in _steps(db, site, "Round trip")] == [1, 0, 0]
    # Every filter applies: the funnel of one source, of visits converting on a goal.
    assert _steps(db, site, "Signup flow", source="Facebook") == [
        ("Signup", 1, None, 100.0, 0),
        ("Thank you", 0, 0.0, 0.0, 1),
    ]
    assert _steps(db, site, "Signup flow", goal="Pro signup")[1][1] == 1


def test_a_funnel_with_a_deleted_goal_is_named_broken(db: Database, site: Site) -> None:
    _funnel(db, site, "Signup flow", ["Signup", "Thank you"])
    with db.session() as session:
        goal = session.scalars(select(Goal).where(Goal.name == "Thank you")).one()
        session.delete(goal)
    with pytest.raises(QueryError, match="broken: the goal of step 2 was deleted"):
        _steps(db, site, "Signup flow")
    with pytest.raises(QueryError, match="no funnel named 'Nope'"):
        _steps(db, site, "Nope")


def test_goals_card_counts_equal_the_full_report_under_each_goal(db: Database, site: Site) -> None:
    """The card reads each goal's own events (compiler.goal_counts); a report filtered on
    the goal reads whole visits: both must agree, with other filters too."""
    for extra in ({}, {"source": "Google"}, {"device": "Desktop"}):
        card = {
            row["event:goal"]: (row["visitors"], row["conversions"], row["events"])
            for row in report(db, site, dimension="event:goal",
                              metrics="visitors,conversions,events", **extra)
        }  # fmt: skip
        for goal in card:
            [full] = report(db, site, goal=goal, metrics="visitors,conversions,events", **extra)
            assert card[goal] == (full["visitors"], full["conversions"], full["events"])
        assert card or extra


def test_rows_sort_by_completed_metrics_then_page(db: Database, site: Site) -> None:
    """A conversion rate is worked out after the sums; sorting and paging by it must still
    see every row, not the first page SQL ordered by something else."""
    args = {"goal": "Signup", "dimension": "visit:source", "metrics": "conversions,conversion_rate"}
    by_rate = [r["visit:source"] for r in report(db, site, order="conversion_rate", **args)]
    assert by_rate == ["Facebook", "Google"]
    upward = report(db, site, order="conversion_rate:asc", **args)
    assert [(r["visit:source"], r["conversion_rate"]) for r in upward] == [
        ("Google", 50.0),
        ("Facebook", 100.0),
    ]
    window = {"period": "custom", "from": str(DAY), "to": str(DAY), **args}
    first = run(db, parse_query(site, {**window, "order": "conversion_rate", "limit": "1"}))
    assert [r["visit:source"] for r in first.rows] == ["Facebook"] and first.has_more
    second = run(
        db, parse_query(site, {**window, "order": "conversion_rate", "limit": "1", "offset": "1"})
    )
    assert [r["visit:source"] for r in second.rows] == ["Google"] and not second.has_more
    goals = report(
        db, site, dimension="event:goal", metrics="conversions,conversion_rate",
        order="conversion_rate:asc,conversions:desc",
    )  # fmt: skip
    assert [r["event:goal"] for r in goals] == [
        "Guide", "Order done", "Pro signup", "Thank you", "Signup"
    ]  # fmt: skip
