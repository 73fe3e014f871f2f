"""Goals, revenue and funnels in the Stats API (Plausible v1 shapes), checked against the
OpenAPI document, with amounts in minor units summed exactly and currencies kept apart."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from sqlalchemy import select
from werkzeug.test import TestResponse

from tests.helpers import add_user, openapi_spec, store_events
from tests.test_conversions import DAY, GOALS, SITE, at, traffic
from tracker.accounts import create_api_key
from tracker.db import Database
from tracker.db.models import Funnel, Goal, Site, User
from tracker.stats.query import site_ref
from tracker.stats.rollups import refresh_site

PERIOD = {"site_id": SITE, "period": "custom", "date": f"{DAY},{DAY}"}


def purchases() -> list[dict[str, Any]]:
    """Visitor 4 buys twice (EUR), visitor 5 once in EUR and once in USD: 0.1 + 0.2 exact."""
    url = f"https://{SITE}/checkout"
    buy = {"type": "event", "name": "Purchase", "url": url}
    return [
        {**buy, "ip": "198.51.100.4", "timestamp": at("12:01:00"),
         "revenue": {"amount": "0.10", "currency": "EUR"}},
        {**buy, "ip": "198.51.100.4", "timestamp": at("12:02:00"),
         "revenue": {"amount": 0.2, "currency": "eur"}},
        {"ip": "198.51.100.5", "timestamp": at("13:00:00"), "url": f"https://{SITE}/"},
        {**buy, "ip": "198.51.100.5", "timestamp": at("13:01:00"),
         "revenue": {"amount": "42.50", "currency": "EUR"}},
        {**buy, "ip": "198.51.100.5", "timestamp": at("13:02:00"),
         "revenue": {"amount": "9", "currency": "USD"}},
    ]  # fmt: skip


@pytest.fixture(params=["raw events", "goal hits"])
def api(request: pytest.FixtureRequest, app: Flask, client: FlaskClient, db: Database):
    store_events(app, [*traffic(), *purchases()], site=SITE)
    user = add_user(db, "owner@example.com")
    with db.session() as session:
        site = session.scalars(select(Site).where(Site.domain == SITE)).one()
        goals = [Goal(site_id=site.id, position=i, **g) for i, g in enumerate(GOALS)]
        goals.append(Goal(site_id=site.id, position=9, name="Purchase", kind="event",
                          event_name="Purchase", currency="EUR"))  # fmt: skip
        session.add_all(goals)
        session.flush()
        ids = {g.name: g.id for g in goals}
        session.add(Funnel(site_id=site.id, name="Flow", steps=[ids["Signup"], ids["Thank you"]]))
        _, key = create_api_key(session, session.get(User, user.id))
    if request.param == "goal hits":
        refresh_site(db, site_ref(site))
    headers = {"Authorization": f"Bearer {key}"}
    spec = openapi_spec(client)

    def get(path: str, **params: Any) -> TestResponse:
        response = client.get(f"/api/v1/stats/{path}", query_string=params, headers=headers)
        spec.validate_response(
            WerkzeugOpenAPIRequest(response.request), WerkzeugOpenAPIResponse(response)
        )
        return response

    return get


def test_aggregate_under_a_goal_with_revenue(api) -> None:
    metrics = "visitors,visits,events,conversion_rate,total_revenue,average_revenue"
    response = api("aggregate", **PERIOD, metrics=metrics, filters="event:goal==Purchase")
    assert response.status_code == 200, response.get_json()
    results = {m: v["value"] for m, v in response.get_json()["results"].items()}
    # 5 visits in all; 2 bought (3 purchases in EUR, 1 in USD); EUR first, never converted.
    assert results == {
        "visitors": 2,
        "visits": 2,
        "events": 4,
        "conversion_rate": 40.0,
        "total_revenue": {"EUR": "42.80", "USD": "9.00"},
        "average_revenue": {"EUR": "21.40", "USD": "9.00"},  # per currency's orders
    }


def test_breakdown_by_goal_and_by_source_under_a_goal(api) -> None:
    by_goal = api("breakdown", **PERIOD, property="event:goal",
                  metrics="visitors,events,conversion_rate,total_revenue")  # fmt: skip
    assert by_goal.status_code == 200, by_goal.get_json()
    rows = {r["goal"]: r for r in by_goal.get_json()["results"]}
    assert rows["Signup"] == {"goal": "Signup", "visitors": 2, "events": 3,
                              "conversion_rate": 40.0, "total_revenue": {}}  # fmt: skip
    assert rows["Purchase"]["total_revenue"] == {"EUR": "42.80", "USD": "9.00"}
    by_source = api("breakdown", **PERIOD, property="visit:source",
                    metrics="visitors,conversion_rate", filters="event:goal==Purchase")  # fmt: skip
    assert by_source.get_json()["results"] == [
        {"source": "Direct / None", "visitors": 1, "conversion_rate": 50.0},
        {"source": "Google", "visitors": 1, "conversion_rate": 50.0},
    ]


def test_revenue_per_row_adds_up_to_the_total(api) -> None:
    """Per visit dimension, revenue is summed from the goal's matching events alone; per
    event name, from the full report: both add up to the totals."""
    args = {**PERIOD, "metrics": "visitors,total_revenue,average_revenue"}
    under = {"filters": "event:goal==Purchase"}
    by_source = api("breakdown", **args, **under, property="visit:source").get_json()
    rows = by_source["results"]
    assert {r["source"]: (r["total_revenue"], r["average_revenue"]) for r in rows} == {
        "Direct / None": ({"EUR": "42.50", "USD": "9.00"}, {"EUR": "42.50", "USD": "9.00"}),
        "Google": ({"EUR": "0.30"}, {"EUR": "0.30"}),
    }  # fmt: skip
    by_name = api("breakdown", **args, **under, property="event:name").get_json()
    assert [(r["name"], r["total_revenue"]) for r in by_name["results"]] == [
        ("Purchase", {"EUR": "42.80", "USD": "9.00"})
    ]


def test_funnel_endpoint_and_errors(api) -> None:
    response = api("funnel", **PERIOD, funnel="Flow")
    assert response.get_json() == {
        "funnel": "Flow",
        "conversion_rate": 50.0,
        "steps": [
            {"goal": "Signup", "visitors": 2, "from_previous": None, "from_start": 100.0,
             "dropped": 0},
            {"goal": "Thank you", "visitors": 1, "from_previous": 50.0, "from_start": 50.0,
             "dropped": 1},
        ],
    }  # fmt: skip
    assert "no funnel named" in api("funnel", **PERIOD, funnel="Nope").get_json()["error"]
    rate = api("aggregate", **PERIOD, metrics="conversion_rate")
    assert rate.status_code == 400 and "need a goal" in rate.get_json()["error"]
    unknown = api("aggregate", **PERIOD, filters="event:goal==Nope")
    assert unknown.status_code == 400 and "no goal named 'Nope'" in unknown.get_json()["error"]
