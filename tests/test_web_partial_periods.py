"""Periods still running on the stats page: compared like with like (up to the same time of
day), their last bucket drawn dashed, and today's headline as fresh as the real-time count.

The page reads the real clock, so the site's time zone is picked to make it about noon
there: "the same time yesterday" then stays inside yesterday whenever the test runs.
"""

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import add_user, log_in, store_events
from tests.stats_fixture import kpis
from tracker.sites import find_site
from tracker.stats.rollups import refresh

SITE = "partial.example"


def _noon_zone() -> str:
    """A fixed-offset zone where it is between 11:00 and 13:00 now (Etc/GMT-N is UTC+N)."""
    offset = 12 - datetime.now(UTC).hour
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def _at(moment: datetime, ip: str) -> dict[str, str]:
    return {"timestamp": moment.isoformat(), "ip": ip}


@pytest.fixture
def viewer(app, client, db):
    now = datetime.now(UTC)
    yesterday, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    store_events(
        app,
        [
            _at(now - timedelta(minutes=2), "203.0.113.1"),
            _at(yesterday - timedelta(hours=2), "203.0.113.2"),
            _at(yesterday - timedelta(minutes=40), "203.0.113.3"),
            # Later in the day than it is now: not part of the comparison yet.
            _at(yesterday + timedelta(minutes=30), "203.0.113.4"),
            _at(yesterday + timedelta(minutes=50), "203.0.113.5"),
            _at(week_ago - timedelta(minutes=40), "203.0.113.6"),
            _at(week_ago + timedelta(minutes=40), "203.0.113.7"),
        ],
        site=SITE,
    )
    with db.session() as session:
        find_site(session, SITE).timezone = _noon_zone()
    refresh(db)  # rollups cover yesterday and today, as the minute job leaves them
    log_in(client, add_user(db, "owner@example.com"))
    return client


def _page(client, query: str) -> str:
    response = client.get(f"/sites/{SITE}?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_today_is_compared_with_yesterday_up_to_the_same_time(viewer):
    html = _page(viewer, "period=today")
    # 1 visitor so far today, 2 by this time yesterday (4 over the whole of yesterday).
    assert kpis(html)["Visitors"] == ("1", "-50%", "bad")
    assert 'title="2 in the comparison period"' in html


def test_seven_days_compare_their_last_day_up_to_the_same_time(viewer):
    # 5 visitors in the last 7 days against 1 in the 7 before, whose last day (a week
    # ago) stops at the time it is now: 2 over the whole of it.
    assert kpis(_page(viewer, "period=7d"))["Visitors"] == ("5", "+400%", "good")
    # A period that is over is compared whole.
    assert kpis(_page(viewer, "period=yesterday"))["Visitors"][0] == "4"


def test_the_bucket_still_running_is_dashed(viewer):
    week = _page(viewer, "period=7d")
    assert week.count('class="line partial"') == 1
    assert week.count('class="compare partial"') == 1
    assert week.count("(so far)") == 2  # today's bucket: its tooltip, with and without JS
    over = _page(viewer, "period=yesterday")
    assert 'class="line partial"' not in over and "(so far)" not in over


def test_today_headline_keeps_up_with_the_real_time_count(app, viewer):
    store_events(app, [_at(datetime.now(UTC), "203.0.113.9")], site=SITE)
    html = _page(viewer, "period=today")
    # The rollups were built before this visitor came: the headline must not lag behind.
    assert kpis(html)["Visitors"][0] == "2"
    assert "<b>2</b> <span>current visitors" in html
