"""What the collector acknowledges it stores: every 202 is a promise (issue 15).

Text that no database can take (NUL, lone surrogates) is made storable, anything longer
than its column is cut or refused before the answer, JSON the parser cannot hold is a
400, trusted timestamps are bounded, a chunked body over the limit is a 413 and a
pageview delivered twice is stored once. Each on SQLite and PostgreSQL, through the
beacon, the trusted batch and `tracker import events`.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import DEFAULT_IP, DEFAULT_USER_AGENT, _store_events_key
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import DropCount, Event, Visit
from tracker.sites import add_site

SITE = "example.com"
CHROME = {"User-Agent": DEFAULT_USER_AGENT}
PAGE = f'"site": "{SITE}", "type": "pageview", "url": "https://{SITE}/"'
# A page host of 600 characters: a subdomain of the site, so only its length is wrong.
LONG_HOST = ".".join(["a" * 60] * 10) + "." + SITE
LONG_REFERRER_HOST = ".".join(["b" * 60] * 5) + ".org"  # 304 characters


@pytest.fixture
def site(db: Database) -> str:
    with db.session() as session:
        add_site(session, SITE)
    return SITE


@pytest.fixture
def no_chunk_fails(caplog: pytest.LogCaptureFixture) -> Any:
    """Fails the test when the drain met data it could not store: then it drops to
    storing line by line and loses the bad line's events (`ChunkStore.store`)."""
    caplog.set_level(logging.WARNING, logger="tracker.storage.drain")
    yield
    failures = [r.getMessage() for r in caplog.records if r.name == "tracker.storage.drain"]
    assert failures == []


def beacon(client: FlaskClient, raw: str, **headers: str) -> Any:
    """POST /api/event with a body written by hand (escapes such as \\ud800 kept as sent)."""
    return client.post(
        "/api/event", data=raw, content_type="text/plain", headers={**CHROME, **headers}
    )


def stored(db: Database) -> list[Event]:
    with db.session() as session:
        return list(session.scalars(select(Event).order_by(Event.timestamp_ms, Event.id)))


def stored_visits(db: Database) -> list[Visit]:
    with db.session() as session:
        return list(session.scalars(select(Visit).order_by(Visit.started_ms)))


def drops(db: Database) -> dict[str, int]:
    """Drop counts per reason, over every day."""
    counts: dict[str, int] = {}
    with db.session() as session:
        for row in session.scalars(select(DropCount)):
            counts[row.reason] = counts.get(row.reason, 0) + row.count
    return counts


def batch(app: Flask, events: list[dict[str, Any]] | str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {_store_events_key(app)}", **CHROME}
    data = events if isinstance(events, str) else json.dumps(events)
    return app.test_client().post(
        "/api/events", data=data, content_type="application/json", headers=headers, **kwargs
    )


def trusted(**fields: Any) -> dict[str, Any]:
    return {
        "site": SITE,
        "type": "pageview",
        "url": f"https://{SITE}/",
        "timestamp": "2026-03-02T09:00:00Z",
        "ip": DEFAULT_IP,
        "user_agent": DEFAULT_USER_AGENT,
        **fields,
    }


# --- item 4: text no database takes is made storable before the 202 --------------------


@pytest.mark.usefixtures("no_chunk_fails")
def test_lone_surrogates_and_nul_characters_are_stored_cleaned(
    client: FlaskClient, db: Database, site: str
) -> None:
    body = (
        '{"site": "example.com", "type": "event", "url": "https://example.com/a\\u0000b?q=1",'
        ' "name": "Sign\\u0000up", "title": "cut \\ud83d", "target": "x\\udfffy",'
        ' "referrer": "https://news.example.org/\\u0000p", "pageview_id": "p\\u00001",'
        ' "props": {"k\\u0000": "v\\ud800", "emoji": "\\ud83d\\ude00"}}'
    )
    response = beacon(client, body)
    assert response.status_code == 202
    [event] = stored(db)
    assert (event.path, event.name, event.title, event.target) == (
        "/ab",
        "Signup",
        "cut \ufffd",  # a lone surrogate is U+FFFD
        "x\ufffdy",
    )
    assert (event.referrer, event.pageview_id) == ("https://news.example.org/p", "p1")
    assert event.props == {"k": "v\ufffd", "emoji": "😀"}  # a pair stays its character


@pytest.mark.usefixtures("no_chunk_fails")
def test_values_longer_than_their_columns_are_cut_or_refused(
    client: FlaskClient, db: Database, site: str
) -> None:
    too_long = beacon(
        client, f'{{"site": "{SITE}", "type": "pageview", "url": "https://{LONG_HOST}/"}}'
    )
    assert too_long.status_code == 400
    assert too_long.json["error"] == "url: host name longer than 253 characters"
    # Landing tags case-fold longer (ß -> ss), a referrer's host is as long as the page says,
    # %00 in the query decodes to NUL: all cut or cleaned to what visits hold.
    query = "utm_source=" + "ß" * 255 + "&utm_campaign=a%00b&gclid=" + "g" * 400
    response = beacon(
        client,
        f'{{"site": "{SITE}", "type": "pageview", "url": "https://{SITE}/?{query}",'
        f' "referrer": "https://{LONG_REFERRER_HOST}/"}}',
    )
    assert response.status_code == 202
    [visit] = stored_visits(db)
    assert (visit.source, visit.utm_campaign) == ("ss" * 127 + "s", "ab")
    assert len(visit.click_id) == 255 and visit.click_id.startswith("gclid:ggg")
    untagged = beacon(
        client,
        f'{{{PAGE}, "referrer": "https://{LONG_REFERRER_HOST}/"}}',
        **{"User-Agent": DEFAULT_USER_AGENT + " other"},
    )
    assert untagged.status_code == 202
    second = stored_visits(db)[1]
    assert second.source == LONG_REFERRER_HOST[:255]
    assert second.referrer == f"https://{LONG_REFERRER_HOST}/"


@pytest.mark.usefixtures("no_chunk_fails")
def test_the_longest_event_the_protocol_allows_is_stored(
    client: FlaskClient, db: Database, site: str, app: Flask
) -> None:
    """Every field at its limit in characters that take 4 bytes (PostgreSQL counts
    characters, as the collector does), and a user agent whose parts are as long."""
    wide = "😀"
    url = f"https://{SITE}/" + wide * 1000 + "?" + "q=" + wide * 980
    event = trusted(
        type="event",
        url=url[:2000],
        name=wide * 300,
        title=wide * 600,
        target="https://t.example/" + wide * 2500,
        referrer="https://r.example/" + wide * 2500,
        pageview_id=wide * 100,
        props={str(i) + wide * 150: wide * 600 for i in range(40)},
        user_agent=("Mozilla/5.0 (Windows NT 10.0) Chrome/" + "9" * 300)[:1000],
    )
    response = batch(app, [event])
    assert response.status_code == 202 and response.json["accepted"] == 1
    [row] = stored(db)
    assert (len(row.name), len(row.title), len(row.pageview_id)) == (200, 500, 64)
    assert len(row.props or {}) == 30


@pytest.mark.usefixtures("no_chunk_fails")
def test_a_trusted_batch_with_bad_text_stores_every_event(
    app: Flask, db: Database, site: str
) -> None:
    events = [
        trusted(url=f"https://{SITE}/1", timestamp="2026-03-02T09:00:00Z", title="\ud800"),
        trusted(url=f"https://{SITE}/2", timestamp="2026-03-02T09:01:00Z", name="x\x00"),
        trusted(url=f"https://{SITE}/3", timestamp="2026-03-02T09:02:00Z"),
    ]
    response = batch(app, events)
    assert response.status_code == 202
    assert response.json == {"accepted": 3, "dropped": {}}
    assert [e.path for e in stored(db)] == ["/1", "/2", "/3"]


def test_import_of_lines_with_bad_text_stores_them(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tracker.storage.drain")
    db = Database(database_url)
    with db.session() as session:
        add_site(session, SITE)
    lines = [
        json.dumps(trusted(url=f"https://{SITE}/1", title="\ud800")),
        json.dumps(trusted(url=f"https://{SITE}/2", title="nul\x00")),
        json.dumps(trusted(url=f"https://{SITE}/3", referrer=f"https://{LONG_REFERRER_HOST}/")),
        json.dumps(trusted(url=f"https://{SITE}/4?utm_source=a%00b")),
        json.dumps(trusted(url=f"https://{LONG_HOST}/5")),
        '{"site": "example.com", "screen": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        json.dumps(trusted(url=f"https://{SITE}/6", timestamp="0001-01-01T00:00:00Z")),
        json.dumps(trusted(url=f"https://{SITE}/7", props={"n": 1.5})),
    ]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "d")}
    result = CliRunner().invoke(cli, ["import", "events", str(path)], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1
    assert "Imported 5 events from events.ndjson." in result.stdout
    assert result.stderr.splitlines()[-5:] == [
        "Rejected 4 lines:",
        "  line 5: url: host name longer than 253 characters",
        "  line 6: not valid JSON",
        "  line 7: not valid JSON",
        "  line 8: timestamp: is before 2000-01-01",
    ]
    with db.session() as session:
        paths = [e.path for e in session.scalars(select(Event).order_by(Event.path))]
    db.dispose()
    assert paths == ["/1", "/2", "/3", "/4", "/7"]
    assert [r.getMessage() for r in caplog.records if r.name == "tracker.storage.drain"] == []


# --- item 8: JSON the parser cannot hold is a 400 with a sentence -----------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"site": "example.com", "screen": ' + "9" * 5000 + "}",
         "body: a number has more than 4,300 digits"),
        (f'{{{PAGE}, "screen": 1e99999999999999999999}}',
         "body: a number's exponent is out of range"),
        ('{"a": ' + "[" * 30_000 + "]" * 30_000 + "}", "body: JSON nested too deeply"),
    ],
)  # fmt: skip
def test_numbers_and_nesting_json_cannot_hold_are_400(
    app: Flask, client: FlaskClient, db: Database, site: str, body: str, message: str
) -> None:
    response = beacon(client, body)
    assert (response.status_code, response.json) == (400, {"error": message})
    trusted_batch = batch(app, "[" + body + "]")
    assert (trusted_batch.status_code, trusted_batch.json) == (400, {"error": message})
    assert stored(db) == []


def test_a_property_too_large_for_a_float_keeps_its_digits(
    client: FlaskClient, db: Database, site: str
) -> None:
    digits = "1" * 400 + ".5"
    assert beacon(client, f'{{{PAGE}, "props": {{"n": {digits}, "m": 1.50}}}}').status_code == 202
    [event] = stored(db)
    assert event.props == {"n": digits, "m": "1.5"}  # not "inf"


# --- item 9: trusted timestamps are bounded ----------------------------------------------


def test_trusted_timestamps_from_2000_to_now(app: Flask, db: Database, site: str) -> None:
    for moment, message in [
        ("0001-01-01T00:00:00Z", "events[0].timestamp: is before 2000-01-01"),
        ("1900-06-01T12:00:00+01:00", "events[0].timestamp: is before 2000-01-01"),
        ("1999-12-31T23:59:59.999Z", "events[0].timestamp: is before 2000-01-01"),
        ("2000-01-01T00:30:00+01:00", "events[0].timestamp: is before 2000-01-01"),
        ("9999-12-31T23:59:59Z", "events[0].timestamp: is in the future"),
    ]:
        response = batch(app, [trusted(timestamp=moment)])
        assert (response.status_code, response.json) == (400, {"error": message}), moment
    response = batch(app, [trusted(timestamp="2000-01-01T00:00:00Z")])
    assert response.status_code == 202 and response.json["accepted"] == 1
    assert [e.timestamp_ms for e in stored(db)] == [946_684_800_000]


# --- item 13: a chunked body over the limit, a beacon delivered twice --------------------


def chunked(client: FlaskClient, path: str, body: bytes, **headers: str) -> Any:
    """A body without Content-Length, as a server hands a chunked request to the app
    (gunicorn dechunks it and sets wsgi.input_terminated)."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type="text/plain",
        headers={**CHROME, "Transfer-Encoding": "chunked", **headers},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_over_the_limit_is_413(make_app: Any) -> None:
    """Werkzeug cuts a chunked body at the limit, and a cut body can parse: JSON followed
    by spaces, or NDJSON cut between lines. Both were stored; both are 413 now."""
    app = make_app(max_body_bytes=1000)
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        add_site(session, SITE)
    client = app.test_client()
    body = f'{{{PAGE}, "title": "padded"}}'.encode()
    at_limit = chunked(client, "/api/event", body.ljust(1000))
    assert at_limit.status_code == 202
    over = chunked(client, "/api/event", body.ljust(1001))
    assert (over.status_code, over.json) == (
        413,
        {"error": "body: larger than the limit of this endpoint"},
    )
    # 512 lines of 16 KB are the batch's 8 MB exactly; a 513th is over.
    line = json.dumps(trusted(url=f"https://{SITE}/n", padding="")).encode()
    line = line.replace(b'"padding": ""', b'"padding": "' + b"x" * (16383 - len(line)) + b'"')
    assert len(line + b"\n") == 16384
    auth = {"Authorization": f"Bearer {_store_events_key(app)}"}
    over_batch = chunked(client, "/api/events", (line + b"\n") * 513, **auth)
    assert over_batch.status_code == 413
    assert [e.title for e in stored(db)] == ["padded"]


@pytest.mark.usefixtures("no_chunk_fails")
def test_a_pageview_delivered_twice_is_stored_once(
    client: FlaskClient, db: Database, site: str, app: Flask
) -> None:
    page = f'{{{PAGE}, "pageview_id": "k2x9f", "title": "Home"}}'
    click = (
        f'{{"site": "{SITE}", "type": "click", "url": "https://{SITE}/", "pageview_id": "k2x9f",'
        ' "name": "Outbound Link", "target": "https://elsewhere.example/"}'
    )
    for body in (page, page, click, click):
        assert beacon(client, body).status_code == 202
    # Another visitor whose page drew the same id: a pageview of its own.
    assert beacon(client, page, **{"User-Agent": DEFAULT_USER_AGENT + " other"}).status_code == 202
    kinds = [e.kind for e in stored(db)]
    # Clicks carry no id of their own: a repeated one is a second click (at least once).
    assert sorted(kinds) == ["click", "click", "pageview", "pageview"]
    first, other = stored_visits(db)
    assert (first.pageviews, first.events, other.pageviews) == (1, 3, 1)
    assert drops(db) == {"duplicate": 1}
    # In one trusted batch too, and a day later the same id is another page.
    events = [
        trusted(pageview_id="b1", timestamp="2026-03-02T09:00:00Z"),
        trusted(pageview_id="b1", timestamp="2026-03-02T09:00:01Z"),
        trusted(pageview_id="b1", timestamp="2026-03-03T09:00:00Z"),
    ]
    response = batch(app, events)
    assert response.json == {"accepted": 3, "dropped": {}}  # known only when stored
    with db.session() as session:
        later = session.scalars(select(Event).where(Event.pageview_id == "b1")).all()
    assert len(later) == 2
    assert drops(db) == {"duplicate": 2}
