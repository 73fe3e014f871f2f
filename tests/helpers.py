"""Small helpers shared by tests: users, logins, CSRF tokens, and `store_events`."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from werkzeug.test import TestResponse

from tracker.accounts import create_api_key, create_user, find_user
from tracker.db import Database
from tracker.db.models import User
from tracker.sites import add_site, find_site

CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'name="csrf_token" value="([^"]+)"'
)


_openapi_specs: dict[str, OpenAPI] = {}


def openapi_spec(client: FlaskClient) -> OpenAPI:
    """The app's OpenAPI document (/api/v1/openapi.json), checked and loaded once per test
    process for each distinct document: checking one costs a second of CPU, and every test
    that calls the API validates its answers against it."""
    document = client.get("/api/v1/openapi.json").get_json()
    key = json.dumps(document, sort_keys=True)
    if key not in _openapi_specs:
        _openapi_specs[key] = OpenAPI.from_dict(document)
    return _openapi_specs[key]


def csrf_token(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def session_token(client: FlaskClient) -> str:
    """A logged-in client's CSRF token, read off its account page: the token is the
    session's, whichever page shows it, and a site's settings page costs six times more."""
    return csrf_token(client, "/account")


def post_form(client: FlaskClient, path: str, **data: str) -> TestResponse:
    """Post a form to `path` as the page would, with the session's CSRF token unless `data`
    names one."""
    data.setdefault("csrf_token", session_token(client))
    return client.post(path, data=data)


def choose_password(
    client: FlaskClient, path: str, password: str, confirm_with: str | None = None
) -> TestResponse:
    """Post a password (and its confirmation) to a password link's page, `path`."""
    return client.post(
        path,
        data={
            "csrf_token": csrf_token(client, "/login"),
            "password": password,
            "confirm": confirm_with or password,
        },
    )


def add_user(
    db: Database,
    email: str = "admin@example.com",
    password: str = "correct horse",
    *,
    admin: bool = True,
) -> User:
    with db.session() as session:
        return create_user(session, email, password, is_admin=admin)


def add_owner(db: Database, domain: str, email: str = "owner@example.com") -> User:
    """A user (not a server administrator) who owns a new site `domain`."""
    user = add_user(db, email, admin=False)
    with db.session() as session:
        add_site(session, domain, owner=user)
    return user


def log_in(client: FlaskClient, user: User) -> None:
    """Log in by session, as Flask-Login stores it (the login form has its own tests)."""
    with client.session_transaction() as session:
        session["_user_id"] = f"{user.id}:{user.session_generation}"
        session["_fresh"] = True


DEFAULT_IP = "203.0.113.7"  # TEST-NET-3: public-looking, never routed
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
STORE_EVENTS_USER = "store-events@example.com"


def stored(app: Flask) -> None:
    """Wait until the events the app accepted are in the database: beacons are answered
    once they are in the spool, and its writer stores them moments later."""
    assert app.extensions["tracker.ingest"].flush(), "the spool writer did not catch up"


def _store_events_key(app: Flask) -> str:
    key = app.extensions.get("tests.store_events_key")
    if key is None:
        db: Database = app.extensions["tracker.db"]
        with db.session() as session:
            user = find_user(session, STORE_EVENTS_USER) or create_user(
                session, STORE_EVENTS_USER, "store-events-password", is_admin=True
            )
            _, key = create_api_key(session, user, "store_events")
        app.extensions["tests.store_events_key"] = key
    return key


def store_events(app: Flask, events: list[dict[str, Any]], *, site: str | None = None) -> None:
    """Store events through the real collector: POST /api/events with an API key, 202 asserted.

    Each dict is an event of the ingestion protocol (README "Ingestion") plus the trusted fields
    `timestamp` (ISO 8601 with offset, e.g. "2026-03-02T09:00:00Z"), `ip` and `user_agent`.
    Defaults: `site` from the keyword (else the event's own), `type` "pageview",
    `url` "https://<site>/", `timestamp` now, `ip` DEFAULT_IP, `user_agent` a desktop Chrome
    (DEFAULT_USER_AGENT). Sites that do not exist yet are created (time zone UTC). Events are
    sent in timestamp order, 1,000 per batch, and go through the whole pipeline: bots and
    spam are dropped, visits are assigned exactly as for live traffic. Same ip + user_agent
    on the same UTC day = same visitor.

        store_events(app, [
            {"url": "https://example.com/?utm_source=news", "timestamp": "2026-03-02T09:00:00Z"},
            {"url": "https://example.com/pricing", "timestamp": "2026-03-02T09:01:00Z"},
            {"type": "click", "url": "https://example.com/pricing", "name": "Buy",
             "timestamp": "2026-03-02T09:01:30Z"},
        ], site="example.com")
    """
    prepared = []
    for event in events:
        full = dict(event)
        if site is not None:
            full.setdefault("site", site)
        assert full.get("site"), "store_events: give site= or a 'site' in each event"
        full.setdefault("type", "pageview")
        full.setdefault("url", f"https://{full['site']}/")
        full.setdefault("timestamp", datetime.now(UTC).isoformat())
        full.setdefault("ip", DEFAULT_IP)
        full.setdefault("user_agent", DEFAULT_USER_AGENT)
        prepared.append(full)
    prepared.sort(key=lambda e: datetime.fromisoformat(e["timestamp"]))
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        for domain in {e["site"] for e in prepared}:
            if find_site(session, domain) is None:
                add_site(session, domain)
    headers = {"Authorization": f"Bearer {_store_events_key(app)}"}
    client = app.test_client()
    for start in range(0, len(prepared), 1000):
        response = client.post("/api/events", json=prepared[start : start + 1000], headers=headers)
        assert response.status_code == 202, response.get_data(as_text=True)


# A small, fully known traffic fixture for the export and Stats API tests (2026-03-02/03,
# site in Europe/Paris). Visits: A (2 pages + a click, 60 s), B (bounce, 12 s engaged),
# C (a page and a custom event, next day). Another site gets one pageview that must never show.
EXPORT_SITE = "shop.example"
EXPORT_TITLE = 'Pricing, "best" plans\nfor 🎉 teams'
EXPORT_FORMULA_TITLE = "=cmd|' /C calc'!A0"
_IP_A, _IP_B, _IP_C = "203.0.113.7", "203.0.113.20", "203.0.113.30"


def add_export_site(app: Flask, owner: User | None = None) -> None:
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        owner_record = session.get(User, owner.id) if owner else None
        add_site(session, EXPORT_SITE, timezone="Europe/Paris", owner=owner_record)


def store_export_fixture(app: Flask, owner: User | None = None) -> None:
    add_export_site(app, owner)
    store_export_events(app)


def store_export_events(app: Flask) -> None:
    base = f"https://{EXPORT_SITE}"
    store_events(
        app,
        [
            {"url": f"{base}/?utm_source=news&utm_campaign=spring", "ip": _IP_A,
             "referrer": "https://mail.example.org/", "title": "Home",
             "timestamp": "2026-03-02T09:00:00Z", "pageview_id": "a1"},
            {"url": f"{base}/pricing", "ip": _IP_A, "title": EXPORT_TITLE,
             "referrer": f"{base}/", "timestamp": "2026-03-02T09:01:00Z", "pageview_id": "a2"},
            {"type": "click", "url": f"{base}/pricing", "ip": _IP_A, "name": "Buy",
             "target": "https://pay.example.net/checkout", "pageview_id": "a2",
             "timestamp": "2026-03-02T09:01:30Z"},
            {"url": f"{base}/blog/post", "ip": _IP_B, "referrer": "https://www.google.com/",
             "title": EXPORT_FORMULA_TITLE, "timestamp": "2026-03-02T10:00:00Z",
             "pageview_id": "b1"},
            {"type": "engagement", "url": f"{base}/blog/post", "ip": _IP_B, "pageview_id": "b1",
             "engaged_ms": 12000, "scroll": 80, "timestamp": "2026-03-02T10:00:20Z"},
            {"url": f"{base}/blog/post", "ip": _IP_C, "referrer": "https://www.google.com/",
             "title": "Post", "timestamp": "2026-03-03T08:00:00Z", "pageview_id": "c1"},
            {"type": "event", "url": f"{base}/blog/post", "ip": _IP_C, "name": "Signup",
             "props": {"plan": "pro, annual"}, "pageview_id": "c1",
             "timestamp": "2026-03-03T08:00:40Z"},
            {"site": "other.example", "url": "https://other.example/",
             "timestamp": "2026-03-02T09:30:00Z"},
        ],
        site=EXPORT_SITE,
    )  # fmt: skip


def duckdb_settings_per_thread(
    connect: Callable[[], Any], names: Sequence[str]
) -> list[tuple[Any, ...]]:
    """The settings `names` of `connect()`'s DuckDB as read back in another thread, then in
    this one: each thread's is made once (asked twice, the same) and is not another
    thread's. Fetched to the end: the connection goes on serving its thread afterwards (an
    unfinished result broke every later statement of a writer)."""
    found: list[Any] = []
    rows: list[tuple[Any, ...]] = []

    def read() -> None:
        duck = connect()
        assert connect() is duck
        found.append(duck)
        sql = "SELECT " + ", ".join(f"current_setting('{name}')" for name in names)
        rows.extend(duck.execute(sql).fetchall())

    worker = threading.Thread(target=read)
    worker.start()
    worker.join()
    read()
    assert len(found) == 2 and found[0] is not found[1]
    return rows
