"""Revenue sent with custom events: `revenue: {"amount": ..., "currency": ...}` is checked
before the answer, kept as exact integer minor units of its ISO 4217 currency, and carried
through the spool to the event row.

Every accepted beacon goes through the spool: the app's writer stores what the collector
appended (tests/fixtures.py's client waits for it), so the POST tests are spool round
trips too; the replay tests below write segments by hand, old lines included.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.helpers import DEFAULT_USER_AGENT, _store_events_key, store_events
from tests.test_ingest_spool import LINES_OF_EARLIER_VERSIONS, a_hit, with_payload
from tracker.db import Database
from tracker.db.models import Event
from tracker.money import minor_digits
from tracker.sites import add_site
from tracker.storage.drain import replay
from tracker.storage.spool import decode_batch, encode_batch

SITE = "shop.example"
URL = f"https://{SITE}/checkout/done"
CHROME = {"User-Agent": DEFAULT_USER_AGENT}


@pytest.fixture
def site(db: Database) -> int:
    with db.session() as session:
        return add_site(session, SITE).id


def purchase(revenue: object) -> dict[str, object]:
    return {"site": SITE, "type": "event", "name": "Purchase", "url": URL, "revenue": revenue}


def post(client: FlaskClient, body: object) -> object:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/api/event", data=data, content_type="text/plain", headers=CHROME)


def revenues(db: Database) -> list[tuple[str, int | None, str]]:
    with db.session() as session:
        rows = session.execute(
            select(Event.kind, Event.revenue_minor, Event.revenue_currency).order_by(Event.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def event_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


# --- valid amounts: exact minor units ----------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor", "stored_currency"),
    [
        ("42.5", "EUR", 4250, "EUR"),  # raw JSON numbers: as the beacon's JSON.stringify
        ('"42.50"', "EUR", 4250, "EUR"),
        ("1000", "JPY", 1000, "JPY"),
        ('"1000"', "jpy", 1000, "JPY"),  # codes are uppercased
        ("1.234", "KWD", 1234, "KWD"),
        ('"0.005"', "BHD", 5, "BHD"),
        ("4.35", "USD", 435, "USD"),  # as a float, 4.35 * 100 = 434.99999999999994
        ("0.29", "GBP", 29, "GBP"),  # and 0.29 * 100 = 28.999999999999996
        ('"1000.00"', "JPY", 1000, "JPY"),  # zeros after the point: no rounding needed
        ("42.500", "EUR", 4250, "EUR"),
        ("0", "EUR", 0, "EUR"),
        ("1000000000000", "EUR", 100_000_000_000_000, "EUR"),  # 1e12, the largest amount
        ('"999999999999.9999"', "CLF", 9_999_999_999_999_999, "CLF"),  # 4 minor digits
        ('"123456789012.34"', "EUR", 12_345_678_901_234, "EUR"),  # beyond a float's digits
    ],
)
def test_amounts_are_stored_as_exact_minor_units(
    client: FlaskClient,
    db: Database,
    site: int,
    amount: str,
    currency: str,
    minor: int,
    stored_currency: str,
) -> None:
    body = json.dumps(purchase("REVENUE")).replace(
        '"REVENUE"', f'{{"amount": {amount}, "currency": "{currency}"}}'
    )
    response = post(client, body)
    assert response.status_code == 202, response.get_data(as_text=True)  # type: ignore[attr-defined]
    assert revenues(db) == [("event", minor, stored_currency)]


def test_decimal_amounts_add_up_exactly(client: FlaskClient, db: Database, site: int) -> None:
    """0.1 + 0.2 is 0.30000000000000004 in floats; in minor units it is 30."""
    for amount in ("0.1", "0.2", '"0.1"', '"0.2"'):
        body = json.dumps(purchase("R")).replace('"R"', f'{{"amount":{amount},"currency":"EUR"}}')
        assert post(client, body).status_code == 202  # type: ignore[attr-defined]
    with db.session() as session:
        total = session.scalar(select(func.sum(Event.revenue_minor)))
    assert total == 60


def test_events_without_revenue_store_null_and_empty_currency(
    client: FlaskClient, db: Database, site: int
) -> None:
    assert post(client, {"site": SITE, "type": "pageview", "url": URL}).status_code == 202  # type: ignore[attr-defined]
    body = {"site": SITE, "type": "event", "name": "Signup", "url": URL, "revenue": None}
    assert post(client, body).status_code == 202  # type: ignore[attr-defined]
    assert revenues(db) == [("pageview", None, ""), ("event", None, "")]


def test_the_currency_table_knows_minor_units() -> None:
    digits = minor_digits()
    assert (digits["EUR"], digits["USD"], digits["JPY"], digits["KRW"]) == (2, 2, 0, 0)
    assert {digits[c] for c in ("KWD", "BHD", "JOD", "OMR", "TND", "IQD", "LYD")} == {3}
    assert (digits["CLF"], digits["UYW"]) == (4, 4)
    assert "XXX" not in digits and "XAU" not in digits and "HRK" not in digits
    assert len(digits) > 150 and all(len(code) == 3 and code.isupper() for code in digits)


# --- bad input: 400 naming the field, nothing stored -------------------------------------

_AMOUNT = "revenue.amount: "
_CURRENCY = "revenue.currency: "

BAD = [
    # (the revenue as raw JSON, the error's start)
    ('{"amount": true, "currency": "EUR"}', _AMOUNT + "must be a number or a decimal string"),
    ('{"amount": [42], "currency": "EUR"}', _AMOUNT + "must be a number or a decimal string"),
    ('{"amount": {"v": 1}, "currency": "EUR"}', _AMOUNT + "must be a number or a decimal"),
    ('{"amount": NaN, "currency": "EUR"}', _AMOUNT + "must be a finite number"),
    ('{"amount": Infinity, "currency": "EUR"}', _AMOUNT + "must be a finite number"),
    ('{"amount": -Infinity, "currency": "EUR"}', _AMOUNT + "must be a finite number"),
    ('{"amount": "NaN", "currency": "EUR"}', _AMOUNT + "must be digits"),
    ('{"amount": "Infinity", "currency": "EUR"}', _AMOUNT + "must be digits"),
    ('{"amount": 1e3, "currency": "EUR"}', _AMOUNT + "exponent notation is not allowed"),
    ('{"amount": 1.5E2, "currency": "EUR"}', _AMOUNT + "exponent notation is not allowed"),
    ('{"amount": "1e3", "currency": "EUR"}', _AMOUNT + "must be digits"),
    ('{"amount": "1,000.00", "currency": "EUR"}', _AMOUNT + "must be digits"),
    ('{"amount": "42,50", "currency": "EUR"}', _AMOUNT + "must be digits"),
    ('{"amount": "", "currency": "EUR"}', _AMOUNT + "must be digits"),
    ('{"amount": "٤٢", "currency": "EUR"}', _AMOUNT + "must be digits"),  # Arabic-Indic
    ('{"amount": -1, "currency": "EUR"}', _AMOUNT + "must not be negative"),
    ('{"amount": -0.5, "currency": "EUR"}', _AMOUNT + "must not be negative"),
    ('{"amount": "-42.50", "currency": "EUR"}', _AMOUNT + "must not be negative"),
    ('{"amount": 1000000000000.01, "currency": "EUR"}', _AMOUNT + "must not be over"),
    ('{"amount": "1000000000001", "currency": "JPY"}', _AMOUNT + "must not be over"),
    ('{"amount": 42.505, "currency": "EUR"}', _AMOUNT + "more decimals than EUR has (2)"),
    ('{"amount": "1000.5", "currency": "JPY"}', _AMOUNT + "more decimals than JPY has (0)"),
    ('{"amount": "1.2345", "currency": "KWD"}', _AMOUNT + "more decimals than KWD has (3)"),
    ('{"amount": "0.' + "1" * 50 + '", "currency": "EUR"}', _AMOUNT + "longer than"),
    ('{"currency": "EUR"}', _AMOUNT + "is required"),
    ('{"amount": 42.5}', _CURRENCY + "is required"),
    ('{"amount": 42.5, "currency": null}', _CURRENCY + "is required"),
    ('{"amount": 42.5, "currency": 978}', _CURRENCY + "must be a string"),
    ('{"amount": 42.5, "currency": "EURO"}', _CURRENCY + "'EURO' is not an ISO 4217"),
    ('{"amount": 42.5, "currency": "ABC"}', _CURRENCY + "'ABC' is not an ISO 4217"),
    ('{"amount": 42.5, "currency": "XXX"}', _CURRENCY + "'XXX' is not an ISO 4217"),
    ('{"amount": 42.5, "currency": "€"}', _CURRENCY + "'€' is not an ISO 4217"),
    ('"42.50 EUR"', "revenue: must be an object"),
    ("42.5", "revenue: must be an object"),
]


@pytest.mark.parametrize(("revenue", "error"), BAD)
def test_bad_revenue_is_refused_naming_the_field(
    client: FlaskClient, db: Database, site: int, revenue: str, error: str
) -> None:
    body = json.dumps(purchase("R")).replace('"R"', revenue)
    response = post(client, body)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert response.json["error"].startswith(error), response.json  # type: ignore[attr-defined]
    assert event_count(db) == 0


@pytest.mark.parametrize("kind", ["pageview", "click", "engagement"])
def test_only_custom_events_carry_revenue(
    client: FlaskClient, db: Database, site: int, kind: str
) -> None:
    body = {
        "site": SITE,
        "type": kind,
        "url": URL,
        "name": "Outbound Link",
        "engaged_ms": 1000,
        "pageview_id": "p1",
        "revenue": {"amount": "42.50", "currency": "EUR"},
    }
    response = post(client, body)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert response.json == {  # type: ignore[attr-defined]
        "error": "revenue: only custom events (type=event) may carry revenue"
    }
    assert event_count(db) == 0


def test_other_numbers_still_parse_as_before(client: FlaskClient, db: Database, site: int) -> None:
    """Numbers with a point now come as Decimal (for money); other fields take them as
    they took floats."""
    body = (
        '{"site": "shop.example", "type": "event", "name": "Rate", "url": "' + URL + '",'
        ' "screen": 1280.0, "props": {"stars": 4.50, "big": 1e3, "n": 7}}'
    )
    assert post(client, body).status_code == 202  # type: ignore[attr-defined]
    with db.session() as session:
        event = session.scalars(select(Event)).one()
        assert event.props == {"stars": "4.5", "big": "1000.0", "n": "7"}
    huge = '{"site": "shop.example", "type": "event", "name": "X", "screen": ' + "9" * 5000 + "}"
    response = post(client, huge)  # over Python's 4,300 digits: was an uncaught ValueError
    assert response.status_code == 400  # type: ignore[attr-defined]
    error = "body: a number has more than 4,300 digits"
    assert response.json == {"error": error}  # type: ignore[attr-defined]


# --- the beacon endpoint and the Flask view ----------------------------------------------


@pytest.mark.parametrize(
    ("revenue", "status"),
    [
        ('{"amount": 42.5, "currency": "EUR"}', 202),
        ('{"amount": "0.10", "currency": "usd"}', 202),
        ('{"amount": 1e3, "currency": "EUR"}', 400),
        ('{"amount": NaN, "currency": "EUR"}', 400),
        ('{"amount": "1", "currency": "ZZZ"}', 400),
    ],
)
def test_the_beacon_endpoint_and_the_flask_view_agree(
    app: Flask, db: Database, site: int, revenue: str, status: int
) -> None:
    body = json.dumps(purchase("R")).replace('"R"', revenue)
    answers = []
    stored = []
    for wsgi_app in (app.wsgi_app, app.wsgi_app.flask):  # type: ignore[attr-defined]
        app.wsgi_app = wsgi_app  # type: ignore[method-assign]
        response = app.test_client().post(
            "/api/event", data=body, content_type="text/plain", headers=CHROME
        )
        answers.append((response.status_code, response.get_data(), sorted(response.headers)))
        stored.append(revenues(db))
    assert answers[0] == answers[1]
    assert answers[0][0] == status
    if status == 202:
        assert stored[1] == stored[0] * 2  # the same row, once by each
    else:
        assert stored == [[], []]


# --- the trusted batch API ---------------------------------------------------------------


def test_the_batch_api_stores_server_side_orders(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            {"url": URL, "timestamp": "2026-03-02T09:00:00Z"},
            {"type": "event", "name": "Purchase", "url": URL, "timestamp": "2026-03-02T09:01:00Z",
             "revenue": {"amount": "19.99", "currency": "EUR"}},
            {"type": "event", "name": "Purchase", "url": URL, "timestamp": "2026-03-02T09:02:00Z",
             "revenue": {"amount": 2500, "currency": "JPY"}},
            {"type": "event", "name": "Purchase", "url": URL, "timestamp": "2026-03-02T09:03:00Z",
             "revenue": {"amount": 0.1, "currency": "EUR"}},
        ],
        site=SITE,
    )  # fmt: skip
    assert revenues(db) == [
        ("pageview", None, ""),
        ("event", 1999, "EUR"),
        ("event", 2500, "JPY"),
        ("event", 10, "EUR"),
    ]


def _batch_headers(app: Flask) -> dict[str, str]:
    return {**CHROME, "Authorization": f"Bearer {_store_events_key(app)}"}


def test_one_bad_revenue_refuses_the_whole_batch(app: Flask, db: Database, site: int) -> None:
    good = purchase({"amount": "10.00", "currency": "EUR"})
    bad = purchase({"amount": "10.001", "currency": "EUR"})
    client = app.test_client()
    response = client.post("/api/events", json=[good, bad], headers=_batch_headers(app))
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"].startswith("events[1].revenue.amount: more decimals than EUR")
    # NDJSON, numbers written as they came: the same check, the same exactness.
    lines = "\n".join(
        [
            json.dumps(good),
            json.dumps(purchase("R")).replace('"R"', '{"amount":1e2,"currency":"EUR"}'),
        ]
    )
    response = client.post("/api/events", data=lines, headers=_batch_headers(app))
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"].startswith("events[1].revenue.amount: exponent notation")
    assert event_count(db) == 0
    ndjson = json.dumps(purchase("R")).replace('"R"', '{"amount":4.35,"currency":"EUR"}')
    assert client.post("/api/events", data=ndjson, headers=_batch_headers(app)).status_code == 202
    assert revenues(db) == [("event", 435, "EUR")]


# --- the spool ---------------------------------------------------------------------------


def test_revenue_survives_the_spool_line() -> None:
    hit = with_payload(a_hit(), revenue_minor=4250, revenue_currency="EUR")
    assert decode_batch(encode_batch([hit], Counter())) == ([hit], Counter())


def test_spool_lines_written_before_revenue_still_store(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    """A segment left by a dead process: a line of this version with revenue, and lines of
    earlier versions (fields by position without the revenue ones, and fields by name)."""
    app = make_app()
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        site_id = add_site(session, SITE).id
    with_revenue = with_payload(
        a_hit(site_id, "/paid", 1_764_000_000_000), revenue_minor=1234, revenue_currency="KWD"
    )
    _flat, flat_before_revenue, by_name = map(json.loads, LINES_OF_EARLIER_VERSIONS)
    old = flat_before_revenue["hits"][0]
    old[0], old[2], old[5] = site_id, 1_764_000_000_001, "/old"
    by_name["hits"][0].update(site_id=site_id, timestamp_ms=1_764_000_000_002, path="/older")
    flat_before_revenue["drops"] = by_name["drops"] = []  # of another site
    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / "dead-1.jsonl").write_bytes(
        encode_batch([with_revenue], Counter())
        + json.dumps(flat_before_revenue).encode()
        + b"\n"
        + json.dumps(by_name).encode()
        + b"\n"
    )
    assert replay(db, directory, 30 * 60_000) == 3
    with db.session() as session:
        rows = session.execute(
            select(Event.path, Event.revenue_minor, Event.revenue_currency).order_by(Event.id)
        )
        assert [tuple(row) for row in rows] == [
            ("/paid", 1234, "KWD"),
            ("/old", None, ""),
            ("/older", None, ""),
        ]
