"""Report parameters that answered 500, and rollups whose cost followed the calendar
(issue 15, items 8 and 9); on SQLite and PostgreSQL.

- A month chart compared with a shorter previous month (31 March against 28 February).
- Dates next to datetime's limits (9999-12-31), a NUL in a filter value.
- "All time" over a site whose history starts decades ago, and rollups that skip the empty
  days between visits yet stay exact, days whose visits moved away included.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select, update

from tests.helpers import add_user, log_in, store_events
from tracker.accounts import create_api_key
from tracker.db import Database
from tracker.db.models import Event, GoalHit, Site, StatsRollup, User, Visit
from tracker.goals import add_goal
from tracker.sites import add_site, find_site
from tracker.stats import first_day, parse_query, rollups, run
from tracker.stats.query import QueryError, site_ref
from tracker.stats.rollups import refresh_site
from tracker.web.chart import line_chart
from tracker.web.format import compact

SITE = "example.com"
DAY_MS = 86_400_000


def ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


def site_of(db: Database) -> Site:
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
        return site


@pytest.fixture
def owner(app: Flask, client: FlaskClient, db: Database) -> User:
    """The site's owner, logged in to the page, with a few pageviews in March 2026."""
    user = add_user(db, "owner@example.com")
    with db.session() as session:
        add_site(session, SITE, owner=session.get(User, user.id))
    store_events(
        app,
        [
            {"url": f"https://{SITE}/", "timestamp": "2026-02-10T09:00:00Z"},
            {"url": f"https://{SITE}/", "timestamp": "2026-03-30T09:00:00Z"},
            {"url": f"https://{SITE}/a", "timestamp": "2026-03-31T09:00:00Z", "ip": "2.2.2.2"},
        ],
        site=SITE,
    )
    log_in(client, user)
    return user


@pytest.fixture
def api(app: Flask, client: FlaskClient, owner: User) -> Any:
    with app.extensions["tracker.db"].session() as session:
        _, key = create_api_key(session, session.get(User, owner.id))

    def get(path: str, **params: str) -> Any:
        params = {"site_id": SITE, **params}
        headers = {"Authorization": f"Bearer {key}"}
        return client.get(f"/api/v1/stats/{path}", query_string=params, headers=headers)

    return get


# --- item 8: a sentence instead of a 500 -------------------------------------------------


@pytest.mark.parametrize("day", ["2026-03-31", "2026-05-31", "2026-03-01"])
def test_a_month_against_a_shorter_previous_month(
    client: FlaskClient, owner: User, day: str
) -> None:
    response = client.get(f"/sites/{SITE}?period=month&date={day}&compare=previous_period")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    if day == "2026-03-31":
        page = response.get_data(as_text=True)
        assert "Tue 31 Mar 2026" in page and "Sat 28 Feb 2026" in page


def test_a_comparison_of_another_length_is_drawn_bucket_by_bucket() -> None:
    shorter = line_chart(
        metric_label="Visits",
        labels=["1 Mar", "2 Mar", "3 Mar"],
        values=[1, 2, 3],
        fmt=compact,
        compare_labels=["1 Feb", "2 Feb"],
        compare_values=[4, 2],
    )
    assert [(p.compare_label, p.compare_value) for p in shorter.points] == [
        ("1 Feb", "4"),
        ("2 Feb", "2"),
        (None, None),
    ]
    assert shorter.compare_line == "M0.0,12.0L500.0,156.0"
    longer = line_chart(
        metric_label="Visits",
        labels=["1 Apr", "2 Apr"],
        values=[1, 2],
        fmt=compact,
        compare_labels=["1 Mar", "2 Mar", "3 Mar"],
        compare_values=[1, 1, 8],
    )
    assert [p.compare_label for p in longer.points] == ["1 Mar", "2 Mar"]
    assert longer.compare_line == "M0.0,156.0L1000.0,156.0"  # 8 is not drawn, nor scaled to


BAD_DATES = [
    ("period=month&date=9999-12-31", "date: '9999-12-31' is out of range"),
    ("period=30d&date=0001-01-01", "date: '0001-01-01' is out of range"),
    ("period=custom&from=0001-01-01&to=2026-03-01", "from: '0001-01-01' is out of range"),
    ("period=custom&from=2026-03-01&to=9999-12-31", "to: '9999-12-31' is out of range"),
    ("period=custom&from=1900-01-01&to=2026-03-01", "The period is too long"),
]


@pytest.mark.parametrize(("query", "message"), BAD_DATES)
def test_dates_out_of_range_are_400_with_a_sentence(
    client: FlaskClient, owner: User, query: str, message: str
) -> None:
    for path in (f"/sites/{SITE}?", f"/sites/{SITE}/reports/sources.csv?"):
        response = client.get(path + query + "&compare=year_over_year")
        assert response.status_code == 400, path
        assert message in html.unescape(response.get_data(as_text=True))
    assert parse_query_error(query).startswith(message)


def parse_query_error(query: str) -> str:
    args = dict(part.split("=", 1) for part in query.split("&"))
    site = Site(id=1, domain=SITE, timezone="Pacific/Kiritimati")  # UTC+14: the edge
    with pytest.raises(QueryError) as error:
        parse_query(site, args)
    return str(error.value)


def test_dates_out_of_range_in_the_stats_api(api: Any) -> None:
    for params, message in [
        ({"period": "day", "date": "9999-12-31"}, "date: '9999-12-31' is out of range"),
        ({"period": "custom", "date": "0001-01-01,2026-03-01"}, "from: '0001-01-01' is out of"),
    ]:
        response = api("aggregate", **params)
        assert response.status_code == 400
        assert response.get_json()["error"].startswith(message)


def test_a_nul_in_a_filter_value_is_400(client: FlaskClient, owner: User, api: Any) -> None:
    message = "page: a filter value cannot contain a NUL character (%00)."
    page = client.get(f"/sites/{SITE}?period=month&date=2026-03-31&page=/a%00b")
    assert page.status_code == 400 and message in html.unescape(page.get_data(as_text=True))
    response = api("aggregate", period="month", date="2026-03-31", filters="event:page==/a\x00b")
    assert (response.status_code, response.get_json()) == (400, {"error": message})
    fine = api("aggregate", period="month", date="2026-03-31", filters="event:page==/a")
    assert fine.get_json() == {"results": {"visitors": {"value": 1}}}


# --- item 9: All time and rollups over decades ------------------------------------------


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[date, date]]]:
    """The day ranges the rollup refresh computes; a test fails fast (instead of running
    for minutes) when a refresh builds more than 20 of them."""
    made: list[tuple[date, date]] = []
    real = rollups._Build

    def counting(conn: Any, site: Any, start: date, end: date, goals: Any = ()) -> Any:
        made.append((start, end))
        assert len(made) <= 20, "the refresh walks the calendar, not the data"
        return real(conn, site, start, end, goals)

    monkeypatch.setattr(rollups, "_Build", counting)
    yield made


@pytest.mark.slow
def test_all_time_from_2000_is_rolled_up_exactly_and_cheaply(
    app: Flask, db: Database, builds: list[tuple[date, date]]
) -> None:
    store_events(
        app,
        [
            {"url": f"https://{SITE}/first", "timestamp": "2000-01-01T00:00:00Z"},
            {"url": f"https://{SITE}/", "timestamp": "2026-03-02T09:00:00Z"},
            {"url": f"https://{SITE}/b", "timestamp": "2026-03-02T09:01:00Z"},
        ],
        site=SITE,
    )
    site = site_of(db)
    now = datetime(2026, 3, 20, 12, tzinfo=UTC)
    assert refresh_site(db, site_ref(site), now_ms=ms(now.isoformat())) is not None
    # The two days with visits, not the 1,380 weeks since 2000.
    assert builds == [(date(2000, 1, 1), date(2000, 1, 1)), (date(2026, 3, 2), date(2026, 3, 2))]
    start = first_day(db, site)
    assert start == date(2000, 1, 1)
    for args in (
        {"metrics": "visits,pageviews,visitors", "dimension": "time:month"},
        {"metrics": "visits,pageviews,bounce_rate", "dimension": "event:page"},
        {"metrics": "visits,visitors"},
    ):
        query = parse_query(site, {"period": "all", **args}, first_day=start, now=now)
        assert query.period.start == date(2000, 1, 1)
        rolled, raw = run(db, query), run(db, query, rollups=False)
        assert rolled.meta["source"] == "rollup"
        assert rolled.rows == raw.rows and rolled.totals == raw.totals
    assert run(db, query).totals["visits"] == 2


@pytest.mark.slow
def test_a_visit_stored_before_2000_costs_one_chunk_and_all_time_starts_in_2000(
    app: Flask, client: FlaskClient, db: Database, builds: list[tuple[date, date]]
) -> None:
    """Events dated 1900 were accepted before timestamps were bounded: such a visit still
    rolls up in one chunk, and "All time" starts at 2000-01-01 instead of answering 400."""
    store_events(
        app, [{"url": f"https://{SITE}/old", "timestamp": "2026-03-02T09:00:00Z"}], site=SITE
    )
    store_events(app, [{"url": f"https://{SITE}/", "timestamp": "2026-03-03T09:00:00Z"}], site=SITE)
    old = ms("1900-06-01T12:00:00+00:00")
    with db.session() as session:
        session.execute(
            update(Visit).where(Visit.entry_page == "/old").values(started_ms=old, last_ms=old)
        )
        session.execute(update(Event).where(Event.path == "/old").values(timestamp_ms=old))
    site = site_of(db)
    now_ms = ms("2026-03-05T12:00:00+00:00")
    refresh_site(db, site_ref(site), now_ms=now_ms)
    assert builds == [(date(1900, 6, 1), date(1900, 6, 1)), (date(2026, 3, 3), date(2026, 3, 3))]
    user = add_user(db, "owner@example.com")
    log_in(client, user)
    page = client.get(f"/sites/{SITE}?period=all")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    query = parse_query(site, {"period": "all", "metrics": "visits"}, first_day=first_day(db, site))
    assert query.period.start == date(2000, 1, 1)
    assert run(db, query).totals["visits"] == 1


@pytest.mark.slow
def test_a_day_whose_visit_moved_away_is_emptied(
    app: Flask, db: Database, builds: list[tuple[date, date]]
) -> None:
    """A late event can start a visit before midnight (local): the day it started on
    before keeps no rows, though it has no visit left for the refresh to find."""
    with db.session() as session:
        add_site(session, SITE, timezone="America/New_York")  # UTC-5 in early March
    # 00:10 on 2 March in New York; the same visitor's earlier event, 23:50 on 1 March,
    # arrives later (the same UTC day: the same visitor id).
    store_events(app, [{"url": f"https://{SITE}/", "timestamp": "2026-03-02T05:10:00Z"}], site=SITE)
    site = site_of(db)
    refresh_site(db, site_ref(site), now_ms=ms("2026-03-20T12:00:00+00:00"))
    late = [{"url": f"https://{SITE}/early", "timestamp": "2026-03-02T04:50:00Z"}]
    store_events(app, late, site=SITE)
    builds.clear()
    refresh_site(db, site_ref(site), now_ms=ms("2026-03-20T12:00:00+00:00"))
    # The visit's day and the day it left, not every day to the 20th.
    assert builds == [(date(2026, 3, 1), date(2026, 3, 2))]
    now = datetime(2026, 3, 20, 12, tzinfo=UTC)
    query = parse_query(
        site, {"period": "30d", "dimension": "time:day", "metrics": "visits"}, now=now
    )
    rolled = run(db, query)
    assert rolled.meta["source"] == "rollup"
    visits = {r["time:day"]: r["visits"] for r in rolled.rows if r["visits"]}
    assert visits == {"2026-03-01": 1}
    assert rolled.rows == run(db, query, rollups=False).rows
    with db.session() as session:
        days = set(session.scalars(select(StatsRollup.day).where(StatsRollup.site_id == site.id)))
    assert days == {(date(2026, 3, 1) - date(1970, 1, 1)).days}


@pytest.mark.slow
def test_goal_hits_of_a_day_without_visits_are_removed(
    app: Flask, db: Database, builds: list[tuple[date, date]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL re-checks the last ID_MARGIN ids (committed out of order): here, every one.
    monkeypatch.setitem(rollups.ID_MARGIN, "postgresql", 0)
    store_events(
        app, [{"url": f"https://{SITE}/signup", "timestamp": "2026-03-02T09:00:00Z"}], site=SITE
    )
    site = site_of(db)
    with db.session() as session:
        goal = add_goal(
            session, session.get(Site, site.id), name="Signup", kind="page", pattern="/signup"
        )
        goal_id = goal.id
    now_ms = ms("2026-03-20T12:00:00+00:00")
    refresh_site(db, site_ref(site), now_ms=now_ms)
    stray_day = (date(2026, 3, 12) - date(1970, 1, 1)).days  # no visit on that day
    with db.session() as session:
        session.execute(
            insert(GoalHit).values(
                goal_id=goal_id,
                site_id=site.id,
                visit_id=999,
                visitor_id=1,
                started_ms=0,
                day=stray_day,
                timestamp_ms=0,
                revenue_minor=None,
                revenue_currency="",
            )
        )
    builds.clear()
    refresh_site(db, site_ref(site), now_ms=now_ms, rebuild_from=date(2026, 3, 1))
    assert builds == [(date(2026, 3, 2), date(2026, 3, 2)), (date(2026, 3, 12), date(2026, 3, 12))]
    with db.session() as session:
        days = list(session.scalars(select(GoalHit.day).where(GoalHit.goal_id == goal_id)))
    assert days == [(date(2026, 3, 2) - date(1970, 1, 1)).days]


def test_a_nul_in_a_site_or_funnel_name_finds_nothing(
    client: FlaskClient, owner: User, api: Any
) -> None:
    """Names looked up in the database: a NUL matches none (PostgreSQL refused it: 500)."""
    response = api("aggregate", site_id="exa\x00mple.com")
    assert response.status_code == 404
    assert response.get_json()["error"].startswith("site_id: no site")
    assert client.get("/sites/exa%00mple.com").status_code == 404
    funnel = api("funnel", funnel="a\x00b")
    assert (funnel.status_code, funnel.get_json()) == (
        400,
        {"error": "funnel: no funnel named 'a\\x00b'."},
    )
