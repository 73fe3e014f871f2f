"""Goals on the stats page: the Goals card, conversion mode, funnels, and their CSV."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import add_user, log_in, store_events
from tests.stats_fixture import card, kpis, rows
from tests.test_conversions import DAY, GOALS, SITE, traffic
from tracker.db import Database
from tracker.db.models import Funnel, Goal, Site

PERIOD = f"period=custom&from={DAY}&to={DAY}&compare=off"


@pytest.fixture
def viewer(app: Flask, client: FlaskClient, db: Database) -> FlaskClient:
    store_events(app, traffic(), site=SITE)
    log_in(client, add_user(db, "owner@example.com"))
    return client


def _add_goals(db: Database) -> None:
    with db.session() as session:
        site = session.scalars(select(Site).where(Site.domain == SITE)).one()
        goals = [Goal(site_id=site.id, position=i, **g) for i, g in enumerate(GOALS)]
        session.add_all(goals)
        session.flush()
        by_name = {g.name: g.id for g in goals}
        session.add(
            Funnel(
                site_id=site.id, name="Signup flow", steps=[by_name["Signup"], by_name["Thank you"]]
            )
        )


def page(client: FlaskClient, query: str = "") -> str:
    response = client.get(f"/sites/{SITE}?{PERIOD}{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def deferred(client: FlaskClient, key: str, query: str = "") -> str:
    """A card the page loads after it is shown: the page links it, the link answers it."""
    assert f'data-card="/sites/{SITE}/cards/{key}?' in page(client, query)
    response = client.get(f"/sites/{SITE}/cards/{key}?{PERIOD}{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_goals_card_empty_state_points_to_the_settings(viewer: FlaskClient) -> None:
    goals = deferred(viewer, "goals")
    assert "No goals yet" in goals and f"/sites/{SITE}/settings#goals" in goals
    assert 'id="funnels"' not in page(viewer)


def test_goals_card_and_conversion_mode(viewer: FlaskClient, db: Database) -> None:
    _add_goals(db)
    assert rows(card(deferred(viewer, "goals"), "goals")) == [
        ("Signup", "2", "2", "3", "50.0%", "—"),
        ("Pro signup", "1", "1", "1", "25.0%", "—"),
        ("Thank you", "1", "1", "1", "25.0%", "—"),
        ("Guide", "1", "1", "1", "25.0%", "—"),
        ("Order done", "1", "1", "1", "25.0%", "—"),
    ]
    converting = page(viewer, "&goal=Signup")
    assert {k: v[0] for k, v in kpis(converting).items()} == {
        "Visitors": "2",
        "Conversions": "2",
        "Conversion rate": "50.0%",
        "Revenue": "—",
        "Average revenue": "—",
    }
    assert sorted(rows(card(converting, "sources"))) == [
        ("Facebook", "1", "1", "100.0%", "—"),
        ("Google", "1", "1", "50.0%", "—"),
    ]
    pages = rows(card(converting, "pages"))
    assert [p[0] for p in pages] == ["/", "/pricing", "/thank-you"]  # what they did
    assert "Goal is Signup" in converting


def test_conversion_csv_and_unknown_goal(viewer: FlaskClient, db: Database) -> None:
    _add_goals(db)
    response = viewer.get(f"/sites/{SITE}/reports/sources.csv?{PERIOD}&goal=Signup")
    assert response.status_code == 200
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == [
        "visit:source",
        "visitors",
        "conversions",
        "conversion_rate",
        "total_revenue",
    ]
    assert sorted(table[1:]) == [
        ["Facebook", "1", "1", "100.0", ""],
        ["Google", "1", "1", "50.0", ""],
    ]
    goals = viewer.get(f"/sites/{SITE}/reports/goals.csv?{PERIOD}").get_data(as_text=True)
    assert goals.splitlines()[1] == "Signup,2,2,3,50.0,"
    bad = viewer.get(f"/sites/{SITE}?{PERIOD}&goal=Nope")
    assert bad.status_code == 400 and "no goal named" in bad.get_data(as_text=True)


def test_funnel_card_csv_and_a_broken_funnel(viewer: FlaskClient, db: Database) -> None:
    _add_goals(db)
    funnel = card(deferred(viewer, "funnels"), "funnels")
    assert "Funnel: Signup flow" in funnel and "in this order, within one visit" in funnel
    assert "50.0%" in funnel
    response = viewer.get(f"/sites/{SITE}/funnel.csv?{PERIOD}&funnel=Signup+flow")
    assert response.get_data(as_text=True).splitlines() == [
        "step,goal,visitors,from_previous,from_start,dropped",
        "1,Signup,2,,100.0,0",
        "2,Thank you,1,50.0,50.0,1",
    ]
    with db.session() as session:
        session.delete(session.scalars(select(Goal).where(Goal.name == "Thank you")).one())
    broken = card(deferred(viewer, "funnels"), "funnels")
    assert "broken: the goal of step 2 was deleted" in broken and "Fix it" in broken


def test_visits_csv_names_the_goals_each_visit_converted_on(
    viewer: FlaskClient, db: Database
) -> None:
    _add_goals(db)
    url = f"/sites/{SITE}/export/visits.csv?from={DAY}&to={DAY}"
    table = list(csv.DictReader(io.StringIO(viewer.get(url).get_data(as_text=True))))
    assert [row["goals"] for row in table] == [
        "Signup; Pro signup; Thank you",
        "Signup; Guide",
        "",
        "Order done",
    ]
    converted = viewer.get(url + "&goal=Guide").get_data(as_text=True)
    assert [row["goals"] for row in csv.DictReader(io.StringIO(converted))] == ["Signup; Guide"]


def test_report_columns_sort_the_rows_and_the_csv(viewer: FlaskClient, db: Database) -> None:
    _add_goals(db)
    default = page(viewer, "&goal=Signup&sources_sort=conversion_rate")
    assert [r[0] for r in rows(card(default, "sources"))] == ["Facebook", "Google"]
    upward = page(viewer, "&goal=Signup&sources_sort=conversion_rate:asc")
    assert rows(card(upward, "sources")) == [
        ("Google", "1", "1", "50.0%", "—"),
        ("Facebook", "1", "1", "100.0%", "—"),
    ]
    sources = card(upward, "sources")
    # The sorted column says so, and its heading sorts the other way next.
    assert 'aria-sort="ascending"' in sources and "sources_sort=conversion_rate#sources" in sources
    assert "sources_sort=conversions#sources" in sources
    response = viewer.get(
        f"/sites/{SITE}/reports/sources.csv?{PERIOD}&goal=Signup&sources_sort=conversion_rate:asc"
    )
    assert [line.split(",")[0] for line in response.get_data(as_text=True).splitlines()[1:]] == [
        "Google",
        "Facebook",
    ]
    # A column the report does not show is ignored, not an error.
    assert page(viewer, "&sources_sort=nonsense")
