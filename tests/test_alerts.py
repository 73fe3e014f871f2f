"""Alerts (tracker.alerts): each kind fires on the stats layer's numbers and clears; a
cool-down keeps a flapping condition from mailing again (still recorded); mails reach a
real SMTP server; the webhook gets signed JSON on a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.concurrency import on_two_servers
from tests.helpers import add_user, csrf_token, log_in, store_events
from tests.mailserver import SmtpServer
from tracker.alerts import (
    DROP,
    GOAL_DROP,
    PACING,
    SIGNATURE_HEADER,
    SPIKE,
    AlertError,
    add_rule,
    check_alerts,
)
from tracker.budgets import set_budget
from tracker.config import Settings
from tracker.db import Database
from tracker.db.models import AlertEvent, AlertRule, Site
from tracker.goals import add_goal
from tracker.mail import drain
from tracker.sites import add_site, find_site
from tracker.subscribers import set_recipient

SITE = "shop.example"
T0 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)  # a Tuesday


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _visitors(count: int, when: datetime, prefix: str = "198.51.100") -> list[dict[str, str]]:
    return [{"ip": f"{prefix}.{i + 1}", "timestamp": _at(when)} for i in range(count)]


@dataclass
class Hook:
    """A real HTTP server keeping each POST's headers and body."""

    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 204


@pytest.fixture
def hook() -> Iterator[Hook]:
    box = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            box.received.append((dict(self.headers), body))
            self.send_response(box.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    # A short poll: shutdown() waits for it (half a second at the default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alert_app(make_app: Callable[..., Flask], smtp_server: SmtpServer) -> Flask:
    app = make_app(**smtp_server.settings(), base_url="https://stats.example")
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        site = add_site(session, SITE)
        set_recipient(session, site, "ann@example.com", weekly=False, monthly=False, alerts=True)
        set_recipient(session, site, "bob@example.com", weekly=True, monthly=False, alerts=False)
    return app


def _rule(db: Database, **values: Any) -> AlertRule:
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
        return add_rule(session, site, **values)


def _events(db: Database) -> list[AlertEvent]:
    with db.session() as session:
        return list(session.scalars(select(AlertEvent).order_by(AlertEvent.id)))


def _settings(app: Flask) -> Settings:
    return app.extensions["tracker.settings"]


def test_spike_fires_clears_and_cools_down(
    alert_app: Flask, smtp_server: SmtpServer, hook: Hook
) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    settings = _settings(alert_app)
    rule = _rule(db, kind=SPIKE, threshold=2, cooldown_minutes=60, webhook_url=hook.url)
    bursts = [T0 - timedelta(minutes=1), T0 + timedelta(minutes=29), T0 + timedelta(minutes=89)]
    store_events(alert_app, [e for when in bursts for e in _visitors(3, when)], site=SITE)
    assert [e.message for e in check_alerts(db, settings, T0)] == [
        "3 current visitors on shop.example (alert above 2)"
    ]
    assert check_alerts(db, settings, T0 + timedelta(minutes=2)) == []  # still on: no news
    check_alerts(db, settings, T0 + timedelta(minutes=10))  # nobody now: cleared
    again = check_alerts(db, settings, T0 + timedelta(minutes=30))  # within the cool-down
    check_alerts(db, settings, T0 + timedelta(minutes=40))
    last = check_alerts(db, settings, T0 + timedelta(minutes=90))  # the cool-down is over
    assert len(again) == len(last) == 1
    events = _events(db)
    assert [(e.notified, e.cleared_at is not None) for e in events] == [
        (True, True),
        (False, True),
        (True, False),
    ]
    assert events[0].cleared_at is not None
    assert events[0].cleared_at.replace(tzinfo=UTC) == T0 + timedelta(minutes=10)
    # Fired, cleared, fired again: the quiet firing within the cool-down clears quietly.
    # Mails to the alert recipient only, and the same three webhook posts.
    assert drain(db, settings).sent == 3
    assert smtp_server.inbox.to("bob@example.com") == []
    mails = smtp_server.inbox.to("ann@example.com")
    assert [m["Subject"] for m in mails] == [
        "[Alert] Traffic spike on shop.example",
        "[Cleared] Traffic spike on shop.example",
        "[Alert] Traffic spike on shop.example",
    ]
    assert mails[0]["List-Unsubscribe"].startswith("<https://stats.example/unsubscribe/")
    cleared = (
        "Cleared at 12:10 (UTC) after 10 min: 3 current visitors on shop.example (alert above 2)"
    )
    assert cleared in mails[1].get_body(("plain",)).get_content()
    assert mails[1]["List-Unsubscribe"].startswith("<https://stats.example/unsubscribe/")
    assert [json.loads(body)["event"] for _, body in hook.received] == ["fired", "cleared", "fired"]
    with db.session() as session:
        secret = session.get(AlertRule, rule.id).webhook_secret  # type: ignore[union-attr]
    headers, body = hook.received[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["site"] == SITE and payload["alert"] == "spike"
    assert payload["message"] == "3 current visitors on shop.example (alert above 2)"
    assert payload["fired_at"] == T0.isoformat()
    headers, body = hook.received[1]
    assert (
        headers[SIGNATURE_HEADER]
        == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    )
    assert json.loads(body) == {
        "event": "cleared",
        "site": SITE,
        "alert": "spike",
        "rule_id": rule.id,
        "message": cleared,
        "fired_at": T0.isoformat(),
        "cleared_at": (T0 + timedelta(minutes=10)).isoformat(),
        "link": "https://stats.example/sites/shop.example?period=today",
    }


def test_webhook_failure_is_recorded(alert_app: Flask, hook: Hook) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    hook.status = 500
    _rule(db, kind=SPIKE, threshold=1, webhook_url=hook.url)
    store_events(alert_app, _visitors(2, T0 - timedelta(minutes=1)), site=SITE)
    check_alerts(db, _settings(alert_app), T0)
    [event] = _events(db)
    assert event.webhook_error == "the webhook answered 500 Internal Server Error"


def test_traffic_drop_against_the_same_weekday(alert_app: Flask) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    settings = _settings(alert_app)
    _rule(db, kind=DROP, threshold=50)
    # 25 visitors each Tuesday morning of the last four weeks, 5 this Tuesday by noon.
    past = [
        e
        for weeks in range(1, 5)
        for e in _visitors(25, T0 - timedelta(weeks=weeks, hours=3), prefix=f"198.51.{weeks}")
    ]
    later_that_day = _visitors(40, T0 - timedelta(weeks=1) + timedelta(hours=5), "203.0.113")
    store_events(alert_app, [*past, *later_that_day, *_visitors(5, T0 - timedelta(hours=2))],
                 site=SITE)  # fmt: skip
    [event] = check_alerts(db, settings, T0)
    assert event.message == (
        "5 visitors on shop.example today by 12:00, 20% of the usual 25 on a Tuesday "
        "(alert below 50%)"
    )
    store_events(alert_app, _visitors(10, T0 + timedelta(minutes=1), "192.0.2"), site=SITE)
    assert check_alerts(db, settings, T0 + timedelta(minutes=5)) == []
    assert _events(db)[0].cleared_at is not None  # 15 of 25: back above half


def test_goal_drop_after_hours_without_a_conversion(alert_app: Flask) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
        goal = add_goal(session, site, name="Signup", kind="event", event_name="Signup")
    _rule(db, kind=GOAL_DROP, threshold=24, goal_id=goal.id)
    # One signup a day for four weeks, the last 30 hours ago.
    signups = [
        {"type": "event", "name": "Signup", "ip": f"198.51.100.{day}",
         "timestamp": _at(T0 - timedelta(hours=30) - timedelta(days=day))}
        for day in range(28)
    ]  # fmt: skip
    store_events(alert_app, signups, site=SITE)
    [event] = check_alerts(db, _settings(alert_app), T0)
    assert event.message == (
        "No Signup conversion on shop.example for 24 hours; usually 1.0 in that time"
    )
    store_events(
        alert_app,
        [{"type": "event", "name": "Signup", "ip": "192.0.2.1", "timestamp": _at(T0)}],
        site=SITE,
    )
    assert check_alerts(db, _settings(alert_app), T0 + timedelta(minutes=5)) == []
    assert _events(db)[0].cleared_at is not None


def test_budget_pacing(alert_app: Flask) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
        set_budget(session, site, scope="campaign", name="Spring", amount="300", currency="EUR")
    _rule(db, kind=PACING)
    [event] = check_alerts(db, _settings(alert_app), T0)  # day 31 of 31, nothing spent
    assert event.message == "Budgets of shop.example off pace: Spring under pace"


def test_rules_are_checked_before_saving(alert_app: Flask) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    cases = [
        ({"kind": "flood"},
         "Choose one of: Traffic spike, Traffic drop, Goal drop, Budget pacing."),
        ({"kind": SPIKE, "threshold": 0},
         "A spike needs a number of current visitors, 1 or more."),
        ({"kind": DROP, "threshold": 120}, "A drop needs a percentage from 1 to 99."),
        ({"kind": GOAL_DROP, "threshold": 6}, "Choose the goal to watch."),
        ({"kind": SPIKE, "threshold": 5, "webhook_url": "ftp://x"},
         "'ftp://x' is not an http(s) URL."),
    ]  # fmt: skip
    for values, message in cases:
        with pytest.raises(AlertError) as raised:
            _rule(db, **values)
        assert str(raised.value) == message
    with db.session() as session:
        assert session.scalars(select(AlertRule)).all() == []


def test_settings_page_adds_lists_and_deletes_rules(alert_app: Flask) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    user = add_user(db, "owner@example.com")
    client = alert_app.test_client()
    log_in(client, user)
    token = csrf_token(client, f"/sites/{SITE}/settings")
    refused = client.post(
        f"/sites/{SITE}/settings/alerts",
        data={"csrf_token": token, "kind": "drop", "threshold": "150", "cooldown_hours": "6"},
    )
    assert refused.status_code == 400
    assert "A drop needs a percentage from 1 to 99." in refused.get_data(as_text=True)
    added = client.post(
        f"/sites/{SITE}/settings/alerts",
        data={"csrf_token": token, "kind": "spike", "threshold": "50", "cooldown_hours": "2"},
    )
    assert added.status_code == 302
    page = client.get(f"/sites/{SITE}/settings").get_data(as_text=True)
    assert "Traffic spike: more than 50 current visitors" in page and "cool-down 2 h" in page
    with db.session() as session:
        [rule] = session.scalars(select(AlertRule)).all()
        assert (rule.cooldown_minutes, rule.threshold) == (120, 50)
        assert session.scalar(select(Site.domain)) == SITE
    deleted = client.post(
        f"/sites/{SITE}/settings/alerts/{rule.id}/delete", data={"csrf_token": token}
    )
    assert deleted.status_code == 302
    assert "No alerts yet." in client.get(f"/sites/{SITE}/settings").get_data(as_text=True)


def test_two_checkers_fire_an_alert_once(alert_app: Flask, database_url: str, hook: Hook) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    _rule(db, kind=SPIKE, threshold=1, webhook_url=hook.url)
    store_events(alert_app, _visitors(3, T0 - timedelta(minutes=1)), site=SITE)
    fired = on_two_servers(
        database_url, lambda server: len(check_alerts(server, _settings(alert_app), T0))
    )
    assert sorted(fired) == [0, 1]
    assert len(_events(db)) == 1 and len(hook.received) == 1


def test_two_checkers_clear_an_alert_once(
    alert_app: Flask, database_url: str, smtp_server: SmtpServer, hook: Hook
) -> None:
    db: Database = alert_app.extensions["tracker.db"]
    settings = _settings(alert_app)
    _rule(db, kind=SPIKE, threshold=1, webhook_url=hook.url)
    store_events(alert_app, _visitors(3, T0 - timedelta(minutes=1)), site=SITE)
    check_alerts(db, settings, T0)
    later = T0 + timedelta(minutes=10)  # nobody now: both checkers see the alert end
    on_two_servers(database_url, lambda server: check_alerts(server, settings, later))
    [event] = _events(db)
    assert event.cleared_at is not None and event.cleared_at.replace(tzinfo=UTC) == later
    assert [json.loads(body)["event"] for _, body in hook.received] == ["fired", "cleared"]
    assert drain(db, settings).sent == 2
    assert [m["Subject"] for m in smtp_server.inbox.to("ann@example.com")] == [
        "[Alert] Traffic spike on shop.example",
        "[Cleared] Traffic spike on shop.example",
    ]
