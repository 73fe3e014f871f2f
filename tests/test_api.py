"""The Stats API: Plausible v1 shapes with exact numbers, errors, rate limit, OpenAPI, and
agreement with the page's Query and the CSV export for every metric."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import (
    EXPORT_SITE,
    add_export_site,
    add_user,
    log_in,
    openapi_spec,
    store_events,
    store_export_events,
)
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import TestResponse

from tracker.accounts import create_api_key
from tracker.api.openapi import openapi_document
from tracker.db.models import User
from tracker.sites import find_site
from tracker.stats import parse_query, run
from tracker.stats.exits import EXIT_RATE
from tracker.stats.goals import GOAL_METRICS
from tracker.stats.metrics import PUBLIC_METRICS, SPEND_METRICS
from tracker.stats.scroll import SCROLL_DEPTH

PERIOD = {"site_id": EXPORT_SITE, "period": "custom", "date": "2026-03-02,2026-03-03"}
# Every metric that needs no goal nor ad spend (tests/test_conversions.py has the goal ones,
# tests/test_spend.py the spend ones), nor a breakdown by exit page (tests/test_stats_exits.py)
# or a page (tests/test_stats_scroll.py).
PAGE_ONLY = {EXIT_RATE, SCROLL_DEPTH}
TRAFFIC_METRICS = [m for m in PUBLIC_METRICS if m not in GOAL_METRICS | SPEND_METRICS | PAGE_ONLY]
ALL_METRICS = ",".join(TRAFFIC_METRICS)


@pytest.fixture
def owner(app: Flask) -> User:
    """The owner of EXPORT_SITE, which has no traffic yet (see `traffic`)."""
    user = add_user(app.extensions["tracker.db"], "owner@example.com", admin=False)
    add_export_site(app, user)
    return user


@pytest.fixture
def traffic(app: Flask, owner: User) -> None:
    store_export_events(app)


def key_for(app: Flask, user: User) -> str:
    with app.extensions["tracker.db"].session() as session:
        _, key = create_api_key(session, session.get(User, user.id))
    return key


@pytest.fixture
def api(app: Flask, client: FlaskClient, owner: User):
    """GET an API path with the owner's key; every answer is checked against the OpenAPI."""
    headers = {"Authorization": f"Bearer {key_for(app, owner)}"}
    spec = openapi_spec(client)

    def get(path: str, **params: Any) -> TestResponse:
        response = client.get(f"/api/v1/stats/{path}", query_string=params, headers=headers)
        request = WerkzeugOpenAPIRequest(response.request)
        spec.validate_response(request, WerkzeugOpenAPIResponse(response))
        return response

    return get


def test_aggregate_every_metric(api, traffic) -> None:
    response = api("aggregate", **PERIOD, metrics=ALL_METRICS)
    assert response.status_code == 200
    assert response.get_json() == {
        "results": {
            "visitors": {"value": 3},
            "visits": {"value": 3},
            "pageviews": {"value": 4},
            "views_per_visit": {"value": 1.33},
            "bounce_rate": {"value": 33.3},
            "visit_duration": {"value": 24.0},
            "time_on_page": {"value": 36.0},
            "events": {"value": 6},
        }
    }


def test_aggregate_default_metric_and_filters(api, traffic) -> None:
    assert api("aggregate", **PERIOD).get_json() == {"results": {"visitors": {"value": 3}}}
    google = api("aggregate", **PERIOD, metrics="visits,pageviews", filters="visit:source==Google")
    assert google.get_json()["results"] == {"visits": {"value": 2}, "pageviews": {"value": 2}}
    either = api("aggregate", **PERIOD, metrics="visits", filters="visit:source==Google|news")
    assert either.get_json()["results"]["visits"]["value"] == 3
    blog = api("aggregate", **PERIOD, metrics="visits,pageviews", filters="event:page~BLOG")
    assert blog.get_json()["results"] == {"visits": {"value": 2}, "pageviews": {"value": 2}}
    both = api(
        "aggregate", **PERIOD, metrics="visits", filters="visit:source!=news;event:page==/blog/post"
    )
    assert both.get_json()["results"]["visits"]["value"] == 2


def test_aggregate_compare_previous_period(app: Flask, api, traffic) -> None:
    # Two days before the period: one visit, one pageview, a bounce.
    store_events(
        app,
        [{"url": f"https://{EXPORT_SITE}/old", "timestamp": "2026-02-28T12:00:00Z"}],
        site=EXPORT_SITE,
    )
    response = api("aggregate", **PERIOD, metrics="visits,bounce_rate", compare="previous_period")
    assert response.get_json() == {
        "results": {
            "visits": {"value": 3, "change": 200},
            "bounce_rate": {"value": 33.3, "change": -66.7},
        }
    }


def test_timeseries_by_day_and_hour(api, traffic) -> None:
    days = api("timeseries", **PERIOD, metrics="visitors,pageviews")
    assert days.get_json() == {
        "results": [
            {"date": "2026-03-02", "visitors": 2, "pageviews": 3},
            {"date": "2026-03-03", "visitors": 1, "pageviews": 1},
        ]
    }
    hours = api("timeseries", site_id=EXPORT_SITE, period="day", date="2026-03-02").get_json()
    assert len(hours["results"]) == 24
    assert [r for r in hours["results"] if r["visitors"]] == [
        {"date": "2026-03-02T10:00+01:00", "visitors": 1},
        {"date": "2026-03-02T11:00+01:00", "visitors": 1},
    ]
    months = api("timeseries", **PERIOD, interval="month").get_json()
    assert months == {"results": [{"date": "2026-03-01", "visitors": 3}]}


def test_breakdown_leaves_out_visits_without_an_optional_tag(api, traffic) -> None:
    """As the page does: two of the three visits have no campaign."""
    campaigns = api("breakdown", **PERIOD, property="visit:utm_campaign", metrics="visits")
    assert campaigns.get_json() == {"results": [{"utm_campaign": "spring", "visits": 1}]}
    total = api("aggregate", **PERIOD, metrics="visits").get_json()
    assert total["results"]["visits"]["value"] == 3  # the totals count every visit


def test_breakdown_and_pages(api, traffic) -> None:
    sources = api("breakdown", **PERIOD, property="visit:source", metrics="visitors,bounce_rate")
    assert sources.get_json() == {
        "results": [
            {"source": "Google", "visitors": 2, "bounce_rate": 50.0},
            {"source": "news", "visitors": 1, "bounce_rate": 0.0},
        ]
    }
    second = api("breakdown", **PERIOD, property="visit:source", limit=1, page=2)
    assert second.get_json() == {"results": [{"source": "news", "visitors": 1}]}
    pages = api(
        "breakdown", **PERIOD, property="event:page", metrics="pageviews,time_on_page"
    ).get_json()["results"]
    assert pages == [
        {"page": "/blog/post", "pageviews": 2, "time_on_page": 12.0},
        {"page": "/", "pageviews": 1, "time_on_page": 60.0},
        {"page": "/pricing", "pageviews": 1, "time_on_page": None},
    ]


def test_realtime_visitors(app: Flask, api) -> None:
    assert api("realtime/visitors", site_id=EXPORT_SITE).get_json() == 0
    recent = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    store_events(
        app, [{"url": f"https://{EXPORT_SITE}/now", "timestamp": recent}], site=EXPORT_SITE
    )
    assert api("realtime/visitors", site_id=EXPORT_SITE).get_json() == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"metrics": "visitors,revenue"}, "metrics"),
        ({"period": "fortnight"}, "period"),
        ({"period": "custom", "date": "2026-03-02"}, "date"),
        ({"period": "custom", "date": "2026-03-02,2026-02-30"}, "to"),
        ({"filters": "visit:sauce==Google"}, "filters"),
        ({"filters": "visit:source=Google"}, "filters"),
        ({"filters": "visit:source==a;visit:source==b"}, "filters"),
        ({"compare": "last_week"}, "compare"),
    ],
)
def test_bad_parameters_are_400_naming_them(api, params, named) -> None:
    response = api("aggregate", **{**PERIOD, **params})
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(named)


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("breakdown", {}, "property"),
        ("breakdown", {"property": "time:day"}, "property"),
        ("breakdown", {"property": "visit:source", "limit": "0"}, "limit"),
        ("breakdown", {"property": "visit:source", "page": "x"}, "page"),
        ("timeseries", {"interval": "minute"}, "interval"),
    ],
)
def test_bad_report_parameters(api, path, params, named) -> None:
    response = api(path, **{**PERIOD, **params})
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(named)


def test_keys_and_sites(app: Flask, client: FlaskClient, owner: User) -> None:
    url = f"/api/v1/stats/aggregate?site_id={EXPORT_SITE}"
    missing = client.get(url)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization" in missing.get_json()["error"]
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(url, headers={"Authorization": "Basic abc"}).status_code == 401
    log_in(client, owner)  # a browser session is not an API key
    assert client.get(url).status_code == 401

    stranger = add_user(app.extensions["tracker.db"], "o@example.com", admin=False)
    other = {"Authorization": f"Bearer {key_for(app, stranger)}"}
    hidden = client.get(url, headers=other)
    unknown = client.get("/api/v1/stats/aggregate?site_id=nope.example", headers=other)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.get_json()["error"].startswith("site_id")
    admin = add_user(app.extensions["tracker.db"], "root@example.com", admin=True)
    as_admin = {"Authorization": f"Bearer {key_for(app, admin)}"}
    assert client.get(url, headers=as_admin).status_code == 200


def test_rate_limit_per_key(make_app) -> None:
    app = make_app(api_rate_limit=2)
    client = app.test_client()
    user = add_user(app.extensions["tracker.db"], "owner@example.com", admin=False)
    first, second = key_for(app, user), key_for(app, user)
    url = "/api/v1/stats/realtime/visitors?site_id=none.example"
    for _ in range(2):
        assert client.get(url, headers={"Authorization": f"Bearer {first}"}).status_code == 404
    limited = client.get(url, headers={"Authorization": f"Bearer {first}"})
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1800"  # 2 an hour: one more every 30 minutes
    assert "too many requests" in limited.get_json()["error"]
    assert client.get(url, headers={"Authorization": f"Bearer {second}"}).status_code == 404


def test_openapi_lists_what_the_code_accepts(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc == openapi_document()
    OpenAPI.from_dict(doc)  # a valid OpenAPI 3.1 document
    params = doc["components"]["parameters"]
    assert "events" in params["metrics"]["description"]
    assert "visit:source" in params["property"]["schema"]["enum"]
    assert set(doc["paths"]) == {
        "/api/v1/stats/aggregate",
        "/api/v1/stats/timeseries",
        "/api/v1/stats/breakdown",
        "/api/v1/stats/realtime/visitors",
        "/api/v1/stats/funnel",
        "/api/v1/goals",
        "/api/v1/goals/{goal_id}",
        "/api/v1/funnels",
        "/api/v1/annotations",
        "/api/v1/annotations/{annotation_id}",
        "/api/v1/costs",
    }


def _csv(client: FlaskClient, table: str, extra: str = "") -> list[dict[str, str]]:
    url = f"/sites/{EXPORT_SITE}/export/{table}.csv?from=2026-03-02&to=2026-03-03{extra}"
    return list(csv.DictReader(io.StringIO(client.get(url).get_data(as_text=True), newline="")))


def _metrics_from_csv(events: list[dict[str, str]], visits: list[dict[str, str]]) -> dict:
    pageviews = [e for e in events if e["type"] == "pageview"]
    known = [int(e["time_on_page_ms"]) for e in pageviews if e["time_on_page_ms"]]
    days = {(v["visitor_id"], v["started_local"][:10]) for v in visits}
    return {
        "visitors": len(days),
        "visits": len(visits),
        "pageviews": len(pageviews),
        "views_per_visit": round(len(pageviews) / len(visits), 2),
        "bounce_rate": round(100 * sum(int(v["bounce"]) for v in visits) / len(visits), 1),
        "visit_duration": round(mean(int(v["duration_ms"]) for v in visits) / 1000, 1),
        "time_on_page": round(mean(known) / 1000, 1),
        "events": len([e for e in events if e["type"] != "engagement"]),
    }


@pytest.mark.parametrize(
    ("filters", "page_params"),
    [
        ("", {}),
        ("visit:source==Google", {"source": "Google"}),
        ("event:page~blog", {"page": "~blog"}),
    ],
)
def test_api_page_query_and_csv_agree_on_every_metric(
    app: Flask, client: FlaskClient, owner: User, api, traffic, filters, page_params
) -> None:
    from_api = api("aggregate", **PERIOD, metrics=ALL_METRICS, filters=filters).get_json()
    api_values = {m: v["value"] for m, v in from_api["results"].items()}

    db = app.extensions["tracker.db"]
    with db.session() as session:
        site = find_site(session, EXPORT_SITE)
    args = {"period": "custom", "from": "2026-03-02", "to": "2026-03-03", **page_params}
    page_values = run(db, parse_query(site, args, metrics=ALL_METRICS)).totals

    log_in(client, owner)
    extra = "".join(f"&{k}={v}" for k, v in page_params.items())
    csv_values = _metrics_from_csv(_csv(client, "events", extra), _csv(client, "visits", extra))
    assert api_values == {m: page_values[m] for m in TRAFFIC_METRICS}
    if page_params.get("page"):
        # With a page filter only matching events are rows (as the page counts them), while
        # a visit's duration and bounce stay the whole visit's: compare what rows can say.
        csv_values = {k: csv_values[k] for k in ("visitors", "visits", "pageviews", "events")}
    assert {m: api_values[m] for m in csv_values} == csv_values
