"""Real time: current visitors (last 5 minutes), the last 30 minutes by minute, pages now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask

from tests.helpers import store_events
from tracker.db import Database
from tracker.sites import find_site
from tracker.stats import current_visitors, realtime

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def ago(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat()


def test_current_visitors_and_the_last_30_minutes(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            {"ip": "1.1.1.1", "timestamp": ago(40), "url": "https://example.com/old"},
            {"ip": "1.1.1.1", "timestamp": ago(12.5), "url": "https://example.com/"},
            {"ip": "1.1.1.1", "timestamp": ago(4.5), "url": "https://example.com/pricing"},
            {"ip": "2.2.2.2", "timestamp": ago(0.5), "url": "https://example.com/pricing"},
            {"ip": "2.2.2.2", "timestamp": ago(0.2), "type": "click", "name": "Buy",
             "url": "https://example.com/pricing", "target": "https://shop.example/"},
            {"ip": "3.3.3.3", "timestamp": ago(6), "url": "https://example.com/blog"},
            {"ip": "4.4.4.4", "timestamp": ago(2), "url": "https://example.com/"},
        ],
        site="example.com",
    )  # fmt: skip
    with db.session() as session:
        site = find_site(session, "example.com")
        assert site is not None
    now_ms = int(NOW.timestamp() * 1000)
    # 1.1.1.1 (4.5 min ago), 2.2.2.2 and 4.4.4.4; 3.3.3.3 left 6 minutes ago.
    assert current_visitors(db, site, now_ms=now_ms) == 3
    live = realtime(db, site, now_ms=now_ms)
    assert live.current_visitors == 3
    assert len(live.minutes) == 30 and live.minutes[0][0] == 30 and live.minutes[-1][0] == 1
    busy = [(m, pageviews, visitors) for m, pageviews, visitors in live.minutes if pageviews]
    assert busy == [(13, 1, 1), (7, 1, 1), (5, 1, 1), (3, 1, 1), (1, 1, 1)]
    assert live.pages == [("/pricing", 2), ("/", 1)]
    # An hour later nobody is here and the minutes are empty.
    later = realtime(db, site, now_ms=now_ms + 3_600_000)
    assert later.current_visitors == 0 and later.pages == []
    assert all(p == 0 for _, p, _ in later.minutes)
