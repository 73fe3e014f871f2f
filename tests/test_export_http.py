"""GET /sites/<domain>/export/events.csv and visits.csv: rows, streaming, filters, access."""

from __future__ import annotations

import csv
import io
import types

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import (
    EXPORT_FORMULA_TITLE,
    EXPORT_SITE,
    EXPORT_TITLE,
    add_user,
    log_in,
    store_export_fixture,
)

from tracker.accounts import create_api_key
from tracker.db.models import Site, User
from tracker.sites import create_share_link, find_site, revoke_share_link

RANGE = "from=2026-03-02&to=2026-03-03"
EVENTS = f"/sites/{EXPORT_SITE}/export/events.csv?{RANGE}"
VISITS = f"/sites/{EXPORT_SITE}/export/visits.csv?{RANGE}"


@pytest.fixture
def owner(app: Flask) -> User:
    user = add_user(app.extensions["tracker.db"], "owner@example.com", admin=False)
    store_export_fixture(app, user)
    return user


def api_key(app: Flask, user: User) -> str:
    with app.extensions["tracker.db"].session() as session:
        _, key = create_api_key(session, session.get(User, user.id))
    return key


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def set_site(app: Flask, **values: object) -> None:
    with app.extensions["tracker.db"].session() as session:
        site = find_site(session, EXPORT_SITE)
        assert isinstance(site, Site)
        for name, value in values.items():
            setattr(site, name, value)


def test_events_csv_rows_in_time_order(client: FlaskClient, owner: User) -> None:
    log_in(client, owner)
    response = client.get(EVENTS)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=shop.example-events-2026-03-02-to-2026-03-03.csv"
    )
    got = rows(response.get_data(as_text=True))
    assert [(r["timestamp_utc"], r["type"], r["page"]) for r in got] == [
        ("2026-03-02T09:00:00.000Z", "pageview", "/"),
        ("2026-03-02T09:01:00.000Z", "pageview", "/pricing"),
        ("2026-03-02T09:01:30.000Z", "click", "/pricing"),
        ("2026-03-02T10:00:00.000Z", "pageview", "/blog/post"),
        ("2026-03-03T08:00:00.000Z", "pageview", "/blog/post"),
        ("2026-03-03T08:00:40.000Z", "event", "/blog/post"),
    ]
    first, click, bounce, signup = got[0], got[2], got[3], got[5]
    assert first["timestamp_local"] == "2026-03-02T10:00:00.000+01:00"
    assert (first["source"], first["utm_source"], first["utm_campaign"]) == (
        "news",
        "news",
        "spring",
    )
    assert first["query"] == "utm_source=news&utm_campaign=spring"
    assert first["time_on_page_ms"] == "60000"
    assert (click["name"], click["target"]) == ("Buy", "https://pay.example.net/checkout")
    assert (bounce["engaged_ms"], bounce["scroll"], bounce["source"]) == ("12000", "80", "Google")
    assert bounce["channel"] == "Organic Search"
    assert (signup["name"], signup["props"]) == ("Signup", '{"plan": "pro, annual"}')
    assert first["visit_id"] == click["visit_id"] != bounce["visit_id"]
    assert (first["browser"], first["os"], first["device"]) == ("Chrome", "Windows", "Desktop")


def test_text_survives_and_formulas_are_neutralised(client: FlaskClient, owner: User) -> None:
    log_in(client, owner)
    got = rows(client.get(EVENTS).get_data(as_text=True))
    assert got[1]["title"] == EXPORT_TITLE  # comma, quotes, newline and emoji intact
    assert got[3]["title"] == "'" + EXPORT_FORMULA_TITLE


def test_response_is_streamed_not_built(client: FlaskClient, owner: User) -> None:
    log_in(client, owner)
    response = client.get(EVENTS, buffered=False)
    assert response.is_streamed and "Content-Length" not in response.headers
    # The header goes out before any row is read: the body is produced as it is sent.
    chunks = iter(response.response)
    assert next(chunks).decode().startswith("timestamp_utc,") and next(chunks).count(b"\r\n") == 6
    response.close()


def test_rows_come_in_batches(app: Flask, owner: User) -> None:
    from tracker.export import TABLES, row_count
    from tracker.stats import event_rows, parse_query

    with app.extensions["tracker.db"].session() as session:
        site = find_site(session, EXPORT_SITE)
    query = parse_query(site, {"period": "custom", "from": "2026-03-02", "to": "2026-03-03"})
    batches = event_rows(
        app.extensions["tracker.db"], query, TABLES["events"].cells(), batch_rows=4
    )
    assert isinstance(batches, types.GeneratorType)
    assert [row_count(b) for b in batches] == [4, 2]


def test_visits_csv(client: FlaskClient, owner: User) -> None:
    log_in(client, owner)
    response = client.get(VISITS)
    assert response.headers["Content-Disposition"].endswith(
        "shop.example-visits-2026-03-02-to-2026-03-03.csv"
    )
    got = rows(response.get_data(as_text=True))
    assert [
        (r["entry_page"], r["exit_page"], r["pageviews"], r["bounce"], r["duration_ms"])
        for r in got
    ] == [
        ("/", "/pricing", "2", "0", "60000"),
        ("/blog/post", "/blog/post", "1", "1", "12000"),
        ("/blog/post", "/blog/post", "1", "0", "0"),
    ]
    assert got[0]["started_local"] == "2026-03-02T10:00:00.000+01:00"
    assert got[0]["last_event_utc"] == "2026-03-02T09:01:30.000Z"


def test_filters_select_rows_as_on_the_page(client: FlaskClient, owner: User) -> None:
    log_in(client, owner)
    google = rows(client.get(f"{EVENTS}&source=Google").get_data(as_text=True))
    assert [r["type"] for r in google] == ["pageview", "pageview", "event"]
    pricing = rows(client.get(f"{EVENTS}&page=/pricing").get_data(as_text=True))
    assert [(r["type"], r["page"]) for r in pricing] == [("pageview", "/pricing")]
    visits = rows(client.get(f"{VISITS}&page=~blog").get_data(as_text=True))
    assert [r["entry_page"] for r in visits] == ["/blog/post", "/blog/post"]
    day = f"/sites/{EXPORT_SITE}/export/events.csv?from=2026-03-03&to=2026-03-03"
    one_day = rows(client.get(day).get_data(as_text=True))
    assert [r["timestamp_utc"][:10] for r in one_day] == ["2026-03-03", "2026-03-03"]


def test_bad_range_is_a_400_naming_the_parameter(client: FlaskClient, owner: User) -> None:
    log_in(client, owner)
    response = client.get(f"/sites/{EXPORT_SITE}/export/events.csv?from=2026-03-40&to=2026-03-03")
    assert response.status_code == 400
    assert "from" in response.get_data(as_text=True)
    response = client.get(f"/sites/{EXPORT_SITE}/export/events.csv?from=2026-03-02")
    assert response.status_code == 400 and "to" in response.get_data(as_text=True)


def test_api_key_of_the_owner_exports(app: Flask, client: FlaskClient, owner: User) -> None:
    key = api_key(app, owner)
    response = client.get(EVENTS, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert len(rows(response.get_data(as_text=True))) == 6


def test_admin_exports_any_site(app: Flask, client: FlaskClient, owner: User) -> None:
    log_in(client, add_user(app.extensions["tracker.db"], "root@example.com", admin=True))
    assert client.get(VISITS).status_code == 200


def test_others_get_404_and_strangers_a_login(app: Flask, client: FlaskClient, owner: User) -> None:
    other = add_user(app.extensions["tracker.db"], "other@example.com", admin=False)
    key = api_key(app, other)
    assert client.get(EVENTS, headers={"Authorization": f"Bearer {key}"}).status_code == 404
    missing = f"/sites/nope.example/export/events.csv?{RANGE}"
    assert client.get(missing, headers={"Authorization": f"Bearer {key}"}).status_code == 404
    bad = client.get(EVENTS, headers={"Authorization": "Bearer trk_wrong"})
    assert bad.status_code == 401 and "not valid" in bad.get_data(as_text=True)
    anonymous = client.get(EVENTS)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    log_in(client, other)
    assert client.get(EVENTS).status_code == 404


def test_public_site_exports_only_when_shared_export(
    app: Flask, client: FlaskClient, owner: User
) -> None:
    set_site(app, public=True)
    assert client.get(EVENTS).status_code == 302
    set_site(app, shared_export=True)
    response = client.get(EVENTS)
    assert response.status_code == 200
    assert len(rows(response.get_data(as_text=True))) == 6
    set_site(app, public=False)
    assert client.get(EVENTS).status_code == 302


def test_share_link_exports_only_when_shared_export(
    app: Flask, client: FlaskClient, owner: User
) -> None:
    with app.extensions["tracker.db"].session() as session:
        site = find_site(session, EXPORT_SITE)
        assert isinstance(site, Site)
        link = create_share_link(session, site)
        token, link_id = link.token, link.id
    shared = f"/share/{token}/export/events.csv?{RANGE}"
    assert client.get(shared).status_code == 404
    assert "export/events.csv" not in client.get(f"/share/{token}").get_data(as_text=True)
    set_site(app, shared_export=True)
    response = client.get(shared)
    assert response.status_code == 200
    assert len(rows(response.get_data(as_text=True))) == 6
    assert f"/share/{token}/export/visits.csv" in client.get(f"/share/{token}").get_data(
        as_text=True
    )
    assert client.get(EVENTS).status_code == 302  # the link opens nothing under /sites/
    with app.extensions["tracker.db"].session() as session:
        site = find_site(session, EXPORT_SITE)
        assert isinstance(site, Site) and revoke_share_link(session, site, link_id)
    assert client.get(shared).status_code == 404
