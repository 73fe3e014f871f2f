"""The collector's HTTP answers, and what each accepted request stores."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.helpers import DEFAULT_USER_AGENT, add_user, store_events
from tracker.accounts import create_api_key
from tracker.db import Database
from tracker.db.models import DropCount, Event, Site, Visit
from tracker.ingest.drops import DropReason
from tracker.sites import add_site
from tracker.stats.dropped import REASONS as DROP_LABELS

CHROME = {"User-Agent": DEFAULT_USER_AGENT}
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def site(db: Database) -> str:
    with db.session() as session:
        add_site(session, "example.com")
    return "example.com"


def post(client: FlaskClient, body: object, **kwargs: object):
    headers = {**CHROME, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        "/api/event", data=data, content_type="text/plain", headers=headers, **kwargs
    )


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def events(db: Database) -> list[Event]:
    with db.session() as session:
        return list(session.scalars(select(Event).order_by(Event.id)))


def drops(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {d.reason: d.count for d in session.scalars(select(DropCount))}


def test_pageview_is_stored_with_its_fields(client: FlaskClient, db: Database, site: str) -> None:
    response = post(
        client,
        {
            "site": site,
            "type": "pageview",
            "url": "https://www.example.com/blog/post?x=1#top",
            "referrer": "https://news.ycombinator.com/item?id=42",
            "title": "A post",
            "screen": 1280,
            "pageview_id": "pv1",
        },
    )
    assert response.status_code == 202
    assert response.json == {"status": "accepted"}
    [event] = events(db)
    assert (event.kind, event.hostname, event.path, event.query) == (
        "pageview",
        "www.example.com",
        "/blog/post",
        "x=1",
    )
    assert (event.title, event.referrer, event.pageview_id) == (
        "A post",
        "https://news.ycombinator.com/item",
        "pv1",
    )
    with db.session() as session:
        visit = session.scalars(select(Visit)).one()
        assert (visit.source, visit.channel, visit.entry_page, visit.screen) == (
            "Hacker News",
            "Organic Social",
            "/blog/post",
            "Laptop",
        )
        assert (visit.browser, visit.browser_version, visit.os, visit.device) == (
            "Chrome",
            "124",
            "Windows",
            "Desktop",
        )
        assert event.visit_id == visit.id and event.visitor_id == visit.visitor_id


@pytest.mark.parametrize(
    ("url", "path", "query"),
    [
        ("https://example.com/#/pricing", "/#/pricing", ""),
        ("https://example.com/app/#!/team?x=1", "/app/#!/team?x=1", ""),
        ("https://example.com/app/?lang=fr#/team", "/app/#/team", "lang=fr"),
        ("https://example.com/docs#install", "/docs", ""),  # an anchor, not a route
    ],
)
def test_hash_routes_are_part_of_the_path(
    client: FlaskClient, db: Database, site: str, url: str, path: str, query: str
) -> None:
    response = post(client, {"site": site, "type": "pageview", "url": url})
    assert response.status_code == 202
    [event] = events(db)
    assert (event.path, event.query) == (path, query)


def test_json_content_type_and_click_with_props(
    client: FlaskClient, db: Database, site: str
) -> None:
    body = {
        "site": site,
        "type": "click",
        "url": "https://example.com/",
        "name": "Download",
        "target": "https://cdn.example.org/file.pdf",
        "props": {"plan": "pro", "seats": 3, "ok": True, "nested": {"a": 1}, "list": [1]},
    }
    response = client.post("/api/event", json=body, headers=CHROME)
    assert response.status_code == 202
    [event] = events(db)
    assert (event.kind, event.name, event.target) == (
        "click",
        "Download",
        "https://cdn.example.org/file.pdf",
    )
    assert event.props == {"plan": "pro", "seats": "3", "ok": "true"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "body is not valid JSON"),
        ("[1, 2]", "event must be a JSON object"),
        ({"type": "pageview", "url": "https://example.com/"}, "site: is required"),
        ({"site": "example.com", "url": "https://example.com/"}, "type: must be one of"),
        ({"site": "example.com", "type": "view", "url": "https://example.com/"}, "type:"),
        ({"site": "example.com", "type": "pageview"}, "url: is required"),
        ({"site": "example.com", "type": "pageview", "url": "ftp://example.com/"}, "url: must"),
        ({"site": "example.com", "type": "pageview", "url": "example.com/"}, "url: must"),
        (
            {"site": "example.com", "type": "pageview", "url": "https://example.com/" + "a" * 2000},
            "url: longer than 2000",
        ),
        ({"site": "example.com", "type": "event", "url": "https://example.com/"}, "name: is"),
        (
            {"site": "example.com", "type": "engagement", "url": "https://example.com/"},
            "engaged_ms: an engagement needs",
        ),
        (
            {
                "site": "example.com",
                "type": "engagement",
                "url": "https://example.com/",
                "engaged_ms": 5,
            },
            "pageview_id: is required",
        ),
        (
            {
                "site": "example.com",
                "type": "pageview",
                "url": "https://example.com/",
                "scroll": 101,
            },
            "scroll: must be between 0 and 100",
        ),
        (
            {
                "site": "example.com",
                "type": "pageview",
                "url": "https://example.com/",
                "screen": "x",
            },
            "screen: must be a number",
        ),
        (
            {"site": "example.com", "type": "pageview", "url": "https://example.com/", "title": 5},
            "title: must be a string",
        ),
        (
            {"site": "example.com", "type": "pageview", "url": "https://example.com/", "props": []},
            "props: must be an object",
        ),
    ],
)
def test_malformed_events_get_400_naming_the_field(
    client: FlaskClient, db: Database, site: str, body: object, message: str
) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert message in response.json["error"]
    assert count(db, Event) == 0


def test_text_is_truncated_and_props_capped(client: FlaskClient, db: Database, site: str) -> None:
    props = {f"k{i}": str(i) for i in range(40)}
    body = {
        "site": site,
        "type": "event",
        "name": "n" * 300,
        "url": "https://example.com/",
        "title": "t" * 600,
        "props": props,
    }
    assert post(client, body).status_code == 202
    [event] = events(db)
    assert (len(event.name), len(event.title), len(event.props or {})) == (200, 500, 30)


def test_body_over_the_limit_is_413(make_app) -> None:
    app = make_app(max_body_bytes=1000)
    body = {
        "site": "example.com",
        "type": "pageview",
        "url": "https://example.com/",
        "title": "x" * 2000,
    }
    response = post(app.test_client(), body)
    assert response.status_code == 413
    assert "larger than the limit" in response.json["error"]


def test_unknown_site_and_foreign_host_are_403(
    client: FlaskClient, db: Database, site: str
) -> None:
    unknown = post(client, {"site": "nope.org", "type": "pageview", "url": "https://nope.org/"})
    assert unknown.status_code == 403
    assert "not a site registered here" in unknown.json["error"]
    foreign = post(client, {"site": site, "type": "pageview", "url": "https://evil.net/x"})
    assert foreign.status_code == 403
    assert "host 'evil.net' is not allowed" in foreign.json["error"]
    assert count(db, Event) == 0


def test_allowed_hostnames_and_subdomains_are_accepted(
    client: FlaskClient, db: Database, site: str
) -> None:
    with db.session() as session:
        session.scalars(select(Site)).one().allowed_hostnames = ["example.net", "*.shop.io"]
    for url in ("https://blog.example.com/", "https://example.net/", "https://eu.shop.io/"):
        assert post(client, {"site": site, "type": "pageview", "url": url}).status_code == 202
    assert count(db, Event) == 3


def test_options_preflight_allows_any_origin(client: FlaskClient) -> None:
    response = client.options(
        "/api/event",
        headers={
            "Origin": "https://example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_bots_get_202_and_are_only_counted(client: FlaskClient, db: Database, site: str) -> None:
    body = {"site": site, "type": "pageview", "url": "https://example.com/"}
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    assert post(client, body, headers={"User-Agent": googlebot}).status_code == 202
    assert post(client, body, headers={"User-Agent": "curl/8.4.0"}).status_code == 202
    assert post(client, body, headers={"Sec-Purpose": "prefetch"}).status_code == 202
    spam = {**body, "referrer": "https://www.semalt.com/"}
    assert post(client, spam).status_code == 202
    assert count(db, Event) == 0
    assert drops(db) == {"bot": 3, "spam": 1}


def test_every_drop_reason_has_a_label_in_the_not_counted_report() -> None:
    assert set(DROP_LABELS) == set(DropReason)


def test_do_not_track_and_gpc_are_honoured_when_the_site_asks(make_app) -> None:
    body = {"site": "example.com", "type": "pageview", "url": "https://example.com/"}
    opted_out = ({"DNT": "1"}, {"Sec-GPC": "1"})
    for honour, stored in ((False, 3), (True, 1)):
        app = make_app()
        db = app.extensions["tracker.db"]
        with db.session() as session:
            session.query(Site).delete()
            add_site(session, "example.com").honour_dnt = honour
        client = app.test_client()
        for headers in (*opted_out, {"DNT": "0"}):
            assert post(client, body, headers=headers).status_code == 202
        assert count(db, Event) == stored
        assert drops(db) == ({"dnt": 2} if honour else {})


def test_untrusted_requests_cannot_set_trusted_fields(
    client: FlaskClient, db: Database, site: str
) -> None:
    body = {
        "site": site,
        "type": "pageview",
        "url": "https://example.com/",
        "timestamp": "2020-01-01T00:00:00Z",
        "user_agent": "curl/8.4.0",
        "ip": "8.8.8.8",
    }
    assert post(client, body).status_code == 202
    [event] = events(db)
    assert event.timestamp_ms > 1_700_000_000_000  # now, not 2020


def _key(db: Database, *, admin: bool = True, email: str = "admin@example.com") -> str:
    user = add_user(db, email, admin=admin)
    with db.session() as session:
        _, plain = create_api_key(session, user)
    return plain


def test_trusted_batch_sets_time_ip_and_agent(client: FlaskClient, db: Database, site: str) -> None:
    key = _key(db)
    batch = [
        {
            "site": site,
            "type": "pageview",
            "url": "https://example.com/b",
            "timestamp": "2026-01-05T10:05:00+01:00",
            "ip": "198.51.100.4",
            "user_agent": IPHONE,
        },
        {
            "site": site,
            "type": "pageview",
            "url": "https://example.com/a",
            "timestamp": "2026-01-05T09:00:00Z",
        },
        {"site": site, "type": "pageview", "url": "https://example.com/", "user_agent": "curl/8"},
    ]
    response = client.post(
        "/api/events", json=batch, headers={"Authorization": f"Bearer {key}", **CHROME}
    )
    assert response.status_code == 202
    assert response.json == {"accepted": 2, "dropped": {"bot": 1}}
    stored = events(db)
    assert [(e.path, e.timestamp_ms) for e in stored] == [
        ("/a", 1767603600000),  # stored in timestamp order
        ("/b", 1767603900000),
    ]
    with db.session() as session:
        devices = sorted(v.device for v in session.scalars(select(Visit)))
    assert devices == ["Desktop", "Mobile"]


def test_batch_accepts_ndjson(client: FlaskClient, db: Database, site: str) -> None:
    key = _key(db)
    lines = "\n".join(
        json.dumps({"site": site, "type": "pageview", "url": f"https://example.com/{i}"})
        for i in range(3)
    )
    response = client.post(
        "/api/events",
        data=lines + "\n",
        content_type="application/x-ndjson",
        headers={"Authorization": f"Bearer {key}", **CHROME},
    )
    assert response.status_code == 202
    assert response.json["accepted"] == 3


def test_batch_errors_name_the_event_and_store_nothing(
    client: FlaskClient, db: Database, site: str
) -> None:
    key = _key(db)
    auth = {"Authorization": f"Bearer {key}", **CHROME}
    good = {"site": site, "type": "pageview", "url": "https://example.com/"}
    future = {**good, "timestamp": "2999-01-01T00:00:00Z"}
    naive = {**good, "timestamp": "2026-01-01T10:00:00"}
    cases = [
        ([good, future], "events[1].timestamp: is in the future"),
        ([naive], "events[0].timestamp: needs a UTC offset"),
        ([{**good, "ip": "1.2.3"}], "events[0].ip: not an IPv4 or IPv6 address"),
        ([], "expected a JSON array or NDJSON"),
        ([good] * 1001, "at most 1000 events"),
    ]
    for batch, message in cases:
        response = client.post("/api/events", json=batch, headers=auth)
        assert response.status_code == 400, batch
        assert message in response.json["error"]
    response = client.post("/api/events", data='{"a": 1}\n{oops', headers=auth)
    assert response.json["error"] == "line 2: not valid JSON"
    assert count(db, Event) == 0


def test_batch_needs_a_valid_key(client: FlaskClient, site: str) -> None:
    body = [{"site": site, "type": "pageview", "url": "https://example.com/"}]
    assert client.post("/api/events", json=body).status_code == 401
    wrong = client.post("/api/events", json=body, headers={"Authorization": "Bearer trk_nope"})
    assert wrong.status_code == 401
    assert wrong.json["error"] == "Authorization: unknown API key"


def test_key_of_a_non_owner_cannot_post_for_a_site(
    client: FlaskClient, db: Database, site: str
) -> None:
    key = _key(db, admin=False, email="someone@example.com")
    body = [{"site": site, "type": "pageview", "url": "https://example.com/"}]
    response = client.post("/api/events", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403
    assert "may not send events" in response.json["error"]


def test_pixel_records_a_pageview_and_always_answers_a_gif(
    client: FlaskClient, db: Database, site: str
) -> None:
    ok = client.get(
        "/api/pixel.gif?site=example.com&url=https://example.com/nojs&referrer=https://bing.com/",
        headers=CHROME,
    )
    bad = client.get("/api/pixel.gif?site=unknown.org&url=https://unknown.org/", headers=CHROME)
    for response in (ok, bad):
        assert response.status_code == 200
        assert response.mimetype == "image/gif"
        assert response.data.startswith(b"GIF89a")
    [event] = events(db)
    assert (event.kind, event.path) == ("pageview", "/nojs")
    with db.session() as session:
        assert session.scalars(select(Visit.source)).one() == "Bing"


def test_store_events_goes_through_the_pipeline(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            {"url": "https://shop.test/", "timestamp": "2026-02-01T10:00:00Z"},
            {
                "url": "https://shop.test/",
                "timestamp": "2026-02-01T10:00:01Z",
                "user_agent": "curl/8",
            },
        ],
        site="shop.test",
    )
    assert count(db, Event) == 1
    assert drops(db) == {"bot": 1}


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"type": "pageview", "url": "https://example.com/"}, CHROME, 202),
        ({"type": "pageview", "url": "https://example.com/", "screen": "wide"}, CHROME, 400),
        ({"type": "pageview", "url": "https://example.com/"}, {"Authorization": "Bearer no"}, 401),
        ({"type": "pageview", "url": "https://elsewhere.org/"}, CHROME, 403),
    ],
    ids=["accepted", "malformed", "bad key", "refused"],
)
def test_the_beacon_endpoint_answers_as_the_flask_view_does(
    app: Flask, site: str, body: dict[str, str], headers: dict[str, str], status: int
) -> None:
    """POST /api/event is answered in front of Flask (tracker.ingest.views.BeaconEndpoint),
    refusals too; the Flask view, without it, gives the same answer."""
    data = json.dumps({"site": site, **body})
    answers = []
    for wsgi_app in (app.wsgi_app, app.wsgi_app.flask):  # type: ignore[attr-defined]
        app.wsgi_app = wsgi_app  # type: ignore[method-assign]
        response = app.test_client().post(
            "/api/event", data=data, content_type="text/plain", headers=headers
        )
        answers.append((response.status_code, response.get_data(), sorted(response.headers)))
    assert answers[0] == answers[1]
    assert answers[0][0] == status
    assert ("Access-Control-Allow-Origin", "*") in answers[0][2]
    assert count(app.extensions["tracker.db"], Event) == (2 if status == 202 else 0)


def test_a_refused_beacon_takes_one_token_of_the_rate_limit(make_app) -> None:
    """A beacon refused after the rate limit was taken (a page host the site does not allow)
    is answered at once: it used to go on to Flask, which took a second token."""
    app = make_app(ingest_rate_limit=2)
    with app.extensions["tracker.db"].session() as session:
        add_site(session, "example.com")
    client = app.test_client()
    refused = {"site": "example.com", "type": "pageview", "url": "https://elsewhere.org/"}
    body = {"site": "example.com", "type": "pageview", "url": "https://example.com/"}
    assert post(client, refused).status_code == 403
    assert [post(client, body).status_code for _ in range(2)] == [202, 429]


def test_one_address_over_the_rate_limit_gets_429(make_app) -> None:
    app = make_app(ingest_rate_limit=2)
    db = app.extensions["tracker.db"]
    with db.session() as session:
        add_site(session, "example.com")
    client = app.test_client()
    body = {"site": "example.com", "type": "pageview", "url": "https://example.com/"}
    assert [post(client, body).status_code for _ in range(2)] == [202, 202]
    response = post(client, body)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"  # a token every 30 s at 2 per minute
    assert response.json == {"error": "too many events from this address; retry later"}
    assert client.get("/api/pixel.gif?site=example.com&url=https://example.com/").status_code == 200
    assert count(db, Event) == 2
    store_events(app, [{"url": "https://example.com/api"}] * 3, site="example.com")
    assert count(db, Event) == 5  # API keys are not limited
