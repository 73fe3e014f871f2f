"""Exact report numbers from events stored through the real collector, on both databases.

One known morning of traffic (UTC site, 2026-03-02), hand-counted:

visitor A (1.1.1.1)
  09:00:00  pageview /          ?utm_source=newsletter&utm_campaign=spring
  09:01:00  pageview /pricing   (time on / = 60 s, the gap)
  09:01:30  click "Buy" -> https://shop.example/cart
  09:02:00  engagement on /pricing: 45 s
  -> visit 1: 2 pageviews, an interaction, duration 105 s, entry /, exit /pricing
  09:33:00  pageview /          31 min after the last event: visit 2, a bounce, 0 s
visitor B (2.2.2.2)
  09:10:00  pageview /blog      from https://www.google.com/
  09:10:40  engagement on /blog: 30 s
  -> visit 3: a bounce with a real duration of 30 s
  09:20:00  pageview /          ?utm_source=facebook&utm_campaign=autumn: another campaign,
                                so visit 4 (a bounce, time on page unknown)

Totals: 2 visitors, 4 visits, 5 pageviews, 3 bounces (75 %), 1.25 views per visit,
duration (105 + 0 + 30 + 0) / 4 = 33.75 s, time on page (60 + 45 + 30) / 3 = 45 s,
6 events (5 pageviews and a click).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from tests.helpers import store_events
from tracker.db import Database
from tracker.db.models import Site
from tracker.jobs import find_job
from tracker.sites import add_site, find_site
from tracker.stats import first_day, parse_query, rollups, run
from tracker.stats.query import site_ref
from tracker.stats.rollups import refresh_site

DAY = {"period": "custom", "from": "2026-03-02", "to": "2026-03-02"}
ALL_METRICS = (
    "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,time_on_page,events"
)
A, B = "1.1.1.1", "2.2.2.2"


def at(clock: str, day: str = "2026-03-02") -> str:
    return f"{day}T{clock}Z"


def morning(site: str = "example.com", day: str = "2026-03-02") -> list[dict[str, Any]]:
    url = f"https://{site}"
    return [
        {"ip": A, "timestamp": at("09:00:00", day), "pageview_id": "a1",
         "url": f"{url}/?utm_source=newsletter&utm_campaign=spring"},
        {"ip": A, "timestamp": at("09:01:00", day), "pageview_id": "a2", "url": f"{url}/pricing"},
        {"ip": A, "timestamp": at("09:01:30", day), "type": "click", "name": "Buy",
         "url": f"{url}/pricing", "target": "https://shop.example/cart", "pageview_id": "a2"},
        {"ip": A, "timestamp": at("09:02:00", day), "type": "engagement", "pageview_id": "a2",
         "url": f"{url}/pricing", "engaged_ms": 45000},
        {"ip": A, "timestamp": at("09:33:00", day), "pageview_id": "a3", "url": f"{url}/"},
        {"ip": B, "timestamp": at("09:10:00", day), "pageview_id": "b1", "url": f"{url}/blog",
         "referrer": "https://www.google.com/"},
        {"ip": B, "timestamp": at("09:10:40", day), "type": "engagement", "pageview_id": "b1",
         "url": f"{url}/blog", "engaged_ms": 30000},
        {"ip": B, "timestamp": at("09:20:00", day), "pageview_id": "b2",
         "url": f"{url}/?utm_source=facebook&utm_campaign=autumn"},
    ]  # fmt: skip


NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)


def site_of(db: Database, domain: str = "example.com") -> Site:
    with db.session() as session:
        site = find_site(session, domain)
        assert site is not None
        return site


def report(db: Database, site: Site, **args: str) -> list[dict[str, Any]]:
    query = parse_query(site, {**DAY, **args}, now=NOW)
    return run(db, query).rows


@pytest.fixture
def stored(app: Flask, db: Database) -> Site:
    store_events(app, morning(), site="example.com")
    return site_of(db)


def test_totals(db: Database, stored: Site) -> None:
    assert report(db, stored, metrics=ALL_METRICS) == [
        {
            "visitors": 2,
            "visits": 4,
            "pageviews": 5,
            "views_per_visit": 1.25,
            "bounce_rate": 75.0,
            "visit_duration": 33.8,
            "time_on_page": 45.0,
            "events": 6,
        }
    ]


def test_pages_with_time_on_page_and_bounce_rate(db: Database, stored: Site) -> None:
    rows = report(
        db,
        stored,
        dimension="event:page",
        metrics="visitors,visits,pageviews,time_on_page,bounce_rate",
        order="pageviews",
    )
    assert rows == [
        {"event:page": "/", "visitors": 2, "visits": 3, "pageviews": 3,
         "time_on_page": 60.0, "bounce_rate": 66.7},
        {"event:page": "/blog", "visitors": 1, "visits": 1, "pageviews": 1,
         "time_on_page": 30.0, "bounce_rate": 100.0},
        {"event:page": "/pricing", "visitors": 1, "visits": 1, "pageviews": 1,
         "time_on_page": 45.0, "bounce_rate": 0.0},
    ]  # fmt: skip


def test_entry_and_exit_pages(db: Database, stored: Site) -> None:
    entry = report(db, stored, dimension="visit:entry_page", metrics="visits,bounce_rate")
    assert entry == [
        {"visit:entry_page": "/", "visits": 3, "bounce_rate": 66.7},
        {"visit:entry_page": "/blog", "visits": 1, "bounce_rate": 100.0},
    ]
    exits = report(db, stored, dimension="visit:exit_page", metrics="visits")
    assert exits == [
        {"visit:exit_page": "/", "visits": 2},
        {"visit:exit_page": "/blog", "visits": 1},
        {"visit:exit_page": "/pricing", "visits": 1},
    ]


def test_sources_campaigns_and_a_filter(db: Database, stored: Site) -> None:
    sources = report(db, stored, dimension="visit:source", metrics="visits,visit_duration")
    assert sources == [
        # Ties sort by value; known tagged sources take their names (facebook -> Facebook).
        {"visit:source": "Direct / None", "visits": 1, "visit_duration": 0.0},
        {"visit:source": "Facebook", "visits": 1, "visit_duration": 0.0},
        {"visit:source": "Google", "visits": 1, "visit_duration": 30.0},
        {"visit:source": "Newsletter", "visits": 1, "visit_duration": 105.0},
    ]
    campaigns = report(db, stored, dimension="visit:utm_campaign", metrics="visitors", limit="1")
    assert campaigns == [{"visit:utm_campaign": "", "visitors": 2}]
    google = report(db, stored, source="Google", metrics="visits,pageviews,bounce_rate")
    assert report(db, stored, utm_campaign="autumn|spring", metrics="visitors") == [{"visitors": 2}]
    assert google == [{"visits": 1, "pageviews": 1, "bounce_rate": 100.0}]
    not_direct = report(db, stored, source="!Direct / None", page="~pric", metrics="visits")
    assert not_direct == [{"visits": 1}]


def test_clicks_by_target_and_name(db: Database, stored: Site) -> None:
    targets = report(db, stored, dimension="event:target", metrics="visitors,events")
    assert targets == [{"event:target": "https://shop.example/cart", "visitors": 1, "events": 1}]
    names = report(db, stored, dimension="event:name", metrics="events")
    assert names == [{"event:name": "Buy", "events": 1}]


def test_limit_offset_and_has_more(db: Database, stored: Site) -> None:
    args = {**DAY, "dimension": "visit:source", "metrics": "visits", "limit": "3"}
    first = run(db, parse_query(stored, args, now=NOW))
    assert [r["visit:source"] for r in first.rows] == ["Direct / None", "Facebook", "Google"]
    assert first.has_more
    second = run(db, parse_query(stored, {**args, "offset": "3"}, now=NOW))
    assert [r["visit:source"] for r in second.rows] == ["Newsletter"]
    assert not second.has_more


def test_comparison_with_the_previous_day(app: Flask, db: Database, stored: Site) -> None:
    # The day before: only visitor B's two visits.
    store_events(app, morning(day="2026-03-01")[5:], site="example.com")
    args = {**DAY, "metrics": "visitors,visits,bounce_rate", "compare": "previous_period"}
    result = run(db, parse_query(stored, args, now=NOW))
    assert result.rows == [
        {
            "visitors": 2,
            "visits": 4,
            "bounce_rate": 75.0,
            "comparison": {"visitors": 1, "visits": 2, "bounce_rate": 100.0},
            "change": {"visitors": 100, "visits": 100, "bounce_rate": -25.0},
        }
    ]
    by_source = run(
        db, parse_query(stored, {**args, "dimension": "visit:source", "metrics": "visits"}, now=NOW)
    )
    changes = {
        r["visit:source"]: (r["comparison"]["visits"], r["change"]["visits"])
        for r in by_source.rows
    }
    assert changes == {
        "Direct / None": (0, None),
        "Facebook": (1, 0),
        "Google": (1, 0),
        "Newsletter": (0, None),
    }
    series = run(
        db,
        parse_query(
            stored,
            {"period": "custom", "from": "2026-03-02", "to": "2026-03-03",
             "dimension": "time:day", "metrics": "visits", "compare": "previous_period"},
            now=NOW,
        ),
    )  # fmt: skip
    assert [(r["time:day"], r["visits"], r["comparison"]["visits"]) for r in series.rows] == [
        ("2026-03-02", 4, 0),
        ("2026-03-03", 0, 2),
    ]
    assert [r["time:day"] for r in series.comparison.rows] == ["2026-02-28", "2026-03-01"]


@pytest.mark.parametrize(
    ("tz", "day", "hours", "utc_times", "expected_days"),
    [
        # Paris springs forward on 2026-03-29 (23 hours): 23:30 UTC on the 28th is already
        # the 29th (CET +1), 22:30 UTC on the 29th is already the 30th (CEST +2).
        (
            "Europe/Paris",
            "2026-03-29",
            23,
            ["2026-03-28T23:30:00Z", "2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z",
             "2026-03-29T21:30:00Z", "2026-03-29T22:30:00Z"],
            [("2026-03-28", 0), ("2026-03-29", 4), ("2026-03-30", 1)],
        ),
        # New York falls back on 2026-11-01 (25 hours): 04:30 UTC is 00:30 EDT; 05:30 and
        # 06:30 UTC are both 01:30; 04:30 UTC on the 2nd is 23:30 EST on the 1st.
        (
            "America/New_York",
            "2026-11-01",
            25,
            ["2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z",
             "2026-11-02T04:30:00Z", "2026-11-02T05:30:00Z"],
            [("2026-10-31", 0), ("2026-11-01", 4), ("2026-11-02", 1)],
        ),
    ],
)  # fmt: skip
def test_dst_days_through_the_collector(
    app: Flask,
    db: Database,
    tz: str,
    day: str,
    hours: int,
    utc_times: list[str],
    expected_days: list[tuple[str, int]],
) -> None:
    with db.session() as session:
        add_site(session, "dst.example", timezone=tz)
    # Each pageview from a new address: one visit each.
    events = [
        {"ip": f"10.0.0.{i}", "timestamp": ts, "url": "https://dst.example/"}
        for i, ts in enumerate(utc_times)
    ]
    store_events(app, events, site="dst.example")
    site = site_of(db, "dst.example")
    around = {"period": "custom", "from": expected_days[0][0], "to": expected_days[-1][0]}
    days = run(db, parse_query(site, {**around, "dimension": "time:day", "metrics": "visits"}))
    assert [(r["time:day"], r["visits"]) for r in days.rows] == expected_days
    one = {"period": "custom", "from": day, "to": day, "dimension": "time:hour"}
    by_hour = run(db, parse_query(site, {**one, "metrics": "visits"})).rows
    assert len(by_hour) == hours
    assert sum(r["visits"] for r in by_hour) == expected_days[1][1]


# (report, which path answers it once the days are rolled up)
REPORTS = [
    ({"metrics": ALL_METRICS}, "rollup"),
    ({"metrics": ALL_METRICS, "dimension": "time:day", "period": "7d"}, "rollup"),
    ({"metrics": "visitors,visits", "dimension": "time:week", "period": "30d"}, "rollup"),
    # Days after today are not rolled up yet: read raw (empty), hence "mixed".
    ({"metrics": "visitors,pageviews", "dimension": "time:month", "period": "12mo"}, "mixed"),
    ({"metrics": ALL_METRICS, "dimension": "visit:source"}, "rollup"),
    ({"metrics": ALL_METRICS, "dimension": "event:page"}, "rollup"),
    ({"metrics": ALL_METRICS, "dimension": "visit:entry_page"}, "rollup"),
    ({"metrics": ALL_METRICS, "dimension": "visit:exit_page"}, "rollup"),
    ({"metrics": ALL_METRICS, "dimension": "event:target"}, "rollup"),
    ({"metrics": ALL_METRICS, "dimension": "event:name"}, "rollup"),
    ({"metrics": "visitors,events", "dimension": "event:target", "event": "Buy"}, "rollup"),
    ({"metrics": "visitors,events", "dimension": "event:name,event:target"}, "rollup"),
    ({"metrics": ALL_METRICS, "dimension": "visit:utm_campaign"}, "rollup"),
    (
        {"metrics": ALL_METRICS, "dimension": "visit:channel", "compare": "previous_period"},
        "rollup",
    ),
    ({"metrics": ALL_METRICS, "page": "~/b", "dimension": "event:page"}, "rollup"),
    # Visits add up across the sources a filter keeps (one source each); visitors do not.
    ({"metrics": "visits", "dimension": "time:day", "source": "!Google"}, "rollup"),
    ({"metrics": ALL_METRICS, "source": "Google|facebook"}, "raw"),
    # One value of a dimension, by day: the dimension's rows.
    ({"metrics": ALL_METRICS, "source": "newsletter", "dimension": "time:day"}, "rollup"),
    # A filter on a dimension the breakdown is not by: no rollup holds both (the columnar
    # store answers them for closed days).
    ({"metrics": ALL_METRICS, "source": "Google", "dimension": "event:page"}, "raw"),
    ({"metrics": ALL_METRICS, "utm_campaign": "spring", "dimension": "event:name"}, "raw"),
    ({"metrics": ALL_METRICS, "channel": "Organic Search", "dimension": "visit:device"}, "raw"),
    ({"metrics": ALL_METRICS, "page": "/pricing", "dimension": "visit:source"}, "raw"),
    ({"metrics": ALL_METRICS, "entry_page": "/", "dimension": "visit:utm_campaign"}, "raw"),
    (
        {
            "metrics": "visitors,events",
            "utm_source": "newsletter",
            "dimension": "event:target",
            "event": "Buy",
        },
        "raw",
    ),
    (
        {
            "metrics": ALL_METRICS,
            "source": "Google",
            "dimension": "event:page",
            "page": "!/pricing",
            "compare": "previous_period",
        },
        "raw",
    ),
    ({"metrics": ALL_METRICS, "source": "Google", "dimension": "visit:entry_page"}, "raw"),
    ({"metrics": ALL_METRICS, "source": "!Google", "dimension": "event:page"}, "raw"),
    ({"metrics": ALL_METRICS, "page": "~/b", "dimension": "visit:source"}, "raw"),
    ({"metrics": ALL_METRICS, "source": "Google", "device": "Desktop", "page": "/blog"}, "raw"),
]


@pytest.mark.slow
def test_rollups_give_identical_numbers(app: Flask, db: Database) -> None:
    for day in ("2026-03-01", "2026-03-02", "2026-03-04"):
        store_events(app, morning(day=day), site="example.com")
    site = site_of(db)
    now_ms = int(NOW.timestamp() * 1000)
    assert refresh_site(db, site_ref(site), now_ms=now_ms) is not None
    for args, path in REPORTS:
        query = parse_query(site, {"period": "7d", **args}, now=NOW)
        rolled, raw = run(db, query), run(db, query, rollups=False)
        assert rolled.meta["source"] == path, args
        assert raw.meta["source"] == "raw"
        assert rolled.rows == raw.rows, args
        assert any(row[query.metrics[0]] for row in rolled.rows), args  # not vacuous
    assert refresh_site(db, site_ref(site), now_ms=now_ms) is None  # nothing new: no work
    # Events stored later for a rolled-up day are picked up by the next refresh.
    store_events(app, morning(day="2026-03-03"), site="example.com")
    rebuilt = refresh_site(db, site_ref(site), now_ms=now_ms)
    assert rebuilt is not None and rebuilt[0] <= date(2026, 3, 3) < rebuilt[1]
    query = parse_query(
        site, {"period": "7d", "metrics": "visits", "dimension": "time:day"}, now=NOW
    )
    rolled = run(db, query)
    assert rolled.meta["source"] == "rollup"
    assert [r["visits"] for r in rolled.rows] == [0, 0, 4, 4, 4, 4, 0]
    assert rolled.rows == run(db, query, rollups=False).rows


@pytest.mark.slow
def test_rollups_written_a_row_per_transaction_give_identical_numbers(
    app: Flask, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day's rows go in transactions of WRITE_ROWS rows, a dimension's values cut into
    ranges: with one row each, every range boundary is crossed, twice (a rebuild of 03-03
    replaces its rows range by range)."""
    monkeypatch.setattr(rollups, "WRITE_ROWS", 1)
    for day in ("2026-03-02", "2026-03-03"):
        store_events(app, morning(day=day), site="example.com")
    site = site_of(db)
    now_ms = int(NOW.timestamp() * 1000)
    refresh_site(db, site_ref(site), now_ms=now_ms)
    late = {
        "ip": "3.3.3.3",
        "timestamp": at("12:00:00", "2026-03-03"),
        "url": "https://example.com/new",
    }
    store_events(app, [late], site="example.com")
    refresh_site(db, site_ref(site), now_ms=now_ms)
    for args in (
        {},
        {"dimension": "event:page"},
        {"dimension": "visit:exit_page"},
        {"dimension": "visit:source", "compare": "previous_period"},
        {"dimension": "event:name,event:target"},
        {"dimension": "time:day"},
    ):
        query = parse_query(site, {"period": "7d", "metrics": ALL_METRICS, **args}, now=NOW)
        rolled = run(db, query)
        assert rolled.meta["source"] == "rollup", args
        assert rolled.rows == run(db, query, rollups=False).rows, args
    pages = parse_query(site, {"period": "7d", "dimension": "event:page"}, now=NOW)
    assert {r["event:page"]: r["visitors"] for r in run(db, pages).rows} == {
        "/": 4,
        "/pricing": 2,
        "/blog": 2,
        "/new": 1,
    }


def test_a_refresh_rebuilds_only_the_days_new_events_touched(
    app: Flask, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late event of 03-01 rebuilds 03-01 and the day after (its visit may have left it),
    not the days since, and another site's events cost this one nothing."""
    for day in ("2026-03-01", "2026-03-04"):
        store_events(app, morning(day=day), site="example.com")
    site = site_of(db)
    now_ms = int(NOW.timestamp() * 1000)
    refresh_site(db, site_ref(site), now_ms=now_ms)
    built: list[tuple[date, date]] = []
    real = rollups._Build

    def recording(conn: Any, site: Any, start: date, end: date, goals: Any = ()) -> Any:
        built.append((start, end))
        return real(conn, site, start, end, goals)

    monkeypatch.setattr(rollups, "_Build", recording)
    # PostgreSQL re-checks the last ID_MARGIN ids (committed out of order): here, every one.
    monkeypatch.setitem(rollups.ID_MARGIN, "postgresql", 0)
    late = {
        "ip": "3.3.3.3",
        "timestamp": at("12:00:00", "2026-03-01"),
        "url": "https://example.com/",
    }
    store_events(app, [late], site="example.com")
    assert refresh_site(db, site_ref(site), now_ms=now_ms) == (date(2026, 3, 1), date(2026, 3, 5))
    assert built == [(date(2026, 3, 1), date(2026, 3, 2))]
    days = {"period": "custom", "from": "2026-03-01", "to": "2026-03-05"}
    query = parse_query(site, {**days, "metrics": "visits", "dimension": "time:day"}, now=NOW)
    rolled = run(db, query)
    assert rolled.meta["source"] == "rollup"
    assert [r["visits"] for r in rolled.rows] == [5, 0, 0, 4, 0]
    with db.session() as session:
        add_site(session, "other.example")
    store_events(app, morning(site="other.example", day="2026-03-05"), site="other.example")
    assert refresh_site(db, site_ref(site), now_ms=now_ms) is None
    assert built == [(date(2026, 3, 1), date(2026, 3, 2))]


def test_filters_keeping_several_values_never_add_up_visitors(app: Flask, db: Database) -> None:
    """Visitor B came from Google, then from a facebook campaign: one visitor, two visits."""
    store_events(app, morning(), site="example.com")
    site = site_of(db)
    refresh_site(db, site_ref(site), now_ms=int(NOW.timestamp() * 1000))
    expected = [
        ({"source": "Google|facebook"}, {"visitors": 1, "visits": 2, "pageviews": 2}),
        ({"source": "!newsletter"}, {"visitors": 2, "visits": 3, "pageviews": 3}),
        ({"page": "~/"}, {"visitors": 2, "visits": 4, "pageviews": 5}),
    ]
    for args, totals in expected:
        query = parse_query(site, {**DAY, "metrics": "visitors,visits,pageviews", **args}, now=NOW)
        assert run(db, query).totals == totals, args
        assert run(db, query, rollups=False).totals == totals, args


def test_rollups_follow_a_time_zone_change(app: Flask, db: Database) -> None:
    store_events(app, morning(), site="example.com")
    refresh_site(db, site_ref(site_of(db)), now_ms=int(NOW.timestamp() * 1000))
    site = site_of(db)
    with db.session() as session:
        session.get(Site, site.id).timezone = "Asia/Tokyo"  # 09:00 UTC is 18:00 in Tokyo
    site = site_of(db)
    args = {**DAY, "dimension": "time:hour", "metrics": "visits"}
    query = parse_query(site, {**DAY, "metrics": "visits", "dimension": "time:day"}, now=NOW)
    assert run(db, query).meta["source"] == "raw"  # days cut in UTC no longer count
    refresh_site(db, site_ref(site), now_ms=int(NOW.timestamp() * 1000))
    rolled = run(db, query)
    assert rolled.meta["source"] == "rollup"
    assert rolled.rows == [{"time:day": "2026-03-02", "visits": 4}]
    hours = run(db, parse_query(site, args, now=NOW)).rows
    assert [(r["time:hour"], r["visits"]) for r in hours if r["visits"]] == [
        ("2026-03-02T18:00+09:00", 4)
    ]


def test_the_rollups_job_builds_every_site_up_to_today(app: Flask, db: Database) -> None:
    # Yesterday's traffic: the job builds from a site's first day to today (a few days).
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    store_events(app, morning(day=yesterday), site="example.com")
    site = site_of(db)
    query = parse_query(site, {"period": "7d", "metrics": "visits"})
    assert run(db, query).meta["source"] == "raw"
    find_job("stats_rollups").func(db, app.extensions["tracker.settings"])
    assert run(db, query).meta["source"] == "rollup"
    assert run(db, query).totals["visits"] == 4


def test_event_props_are_read_from_raw_events_even_when_rolled_up(app: Flask, db: Database) -> None:
    """Properties are not rolled up (their JSON text is unbounded): such queries read raw."""
    store_events(
        app,
        [
            {"url": "https://example.com/", "timestamp": at("09:00:00"), "ip": A},
            {"type": "event", "name": "Signup", "props": {"plan": "pro"},
             "url": "https://example.com/", "timestamp": at("09:00:10"), "ip": A},
            {"url": "https://example.com/", "timestamp": at("10:00:00"), "ip": B},
        ],
        site="example.com",
    )  # fmt: skip
    site = site_of(db)
    assert refresh_site(db, site_ref(site), now_ms=int(NOW.timestamp() * 1000)) is not None
    by_props = parse_query(site, {**DAY, "props": '{"plan": "pro"}'}, now=NOW)
    result = run(db, by_props)
    assert result.meta["source"] == "raw" and result.totals["visitors"] == 1
    detail = parse_query(site, {**DAY, "dimension": "event:name,event:props"}, now=NOW)
    assert [(r["event:name"], r["event:props"]) for r in run(db, detail).rows] == [
        ("Signup", '{"plan": "pro"}')
    ]
    assert run(db, parse_query(site, DAY, now=NOW)).meta["source"] == "rollup"


def test_period_all_starts_at_the_first_visit(db: Database, stored: Site) -> None:
    start = first_day(db, stored)
    assert start == date(2026, 3, 2)
    args = {"period": "all", "metrics": "visits", "dimension": "time:day"}
    query = parse_query(stored, args, first_day=start, now=NOW)
    assert (query.period.start, query.period.end) == (date(2026, 3, 2), date(2026, 3, 5))
    assert [r["visits"] for r in run(db, query).rows] == [4, 0, 0, 0]
    assert query.params() == {"period": "all"}
