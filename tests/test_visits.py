"""Visit assignment and visit metrics, with controlled timestamps, through the real pipeline."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from tests.helpers import store_events
from tests.test_ingest_spool import a_hit
from tracker.db import Database
from tracker.db.models import Event, Visit
from tracker.enrich.visitor import rotate_salts
from tracker.storage.visits import event_row

SITE = "example.com"


def at(clock: str, day: str = "2026-03-02") -> str:
    return f"{day}T{clock}Z"


def pv(path: str, clock: str, **extra: Any) -> dict[str, Any]:
    return {"url": f"https://{SITE}{path}", "timestamp": at(clock), **extra}


def visits(db: Database) -> list[Visit]:
    with db.session() as session:
        return list(session.scalars(select(Visit).order_by(Visit.started_ms)))


def pageviews(db: Database) -> list[Event]:
    with db.session() as session:
        query = select(Event).where(Event.kind == "pageview").order_by(Event.timestamp_ms)
        return list(session.scalars(query))


def test_one_visit_with_entry_exit_and_gap_times(app: Flask, db: Database) -> None:
    store_events(
        app,
        [pv("/", "09:00:00"), pv("/pricing", "09:02:00"), pv("/signup", "09:02:30")],
        site=SITE,
    )
    [visit] = visits(db)
    assert (visit.entry_page, visit.exit_page, visit.pageviews, visit.events) == (
        "/",
        "/signup",
        3,
        3,
    )
    assert (visit.is_bounce, visit.duration_ms, visit.interactions) == (False, 150_000, 0)
    assert [p.time_on_page_ms for p in pageviews(db)] == [120_000, 30_000, None]


def test_thirty_minute_gap_starts_a_new_visit(app: Flask, db: Database) -> None:
    store_events(
        app,
        [pv("/", "09:00:00"), pv("/a", "09:30:00"), pv("/b", "10:00:00.001")],
        site=SITE,
    )
    first, second = visits(db)
    assert (first.pageviews, first.exit_page, second.entry_page) == (2, "/a", "/b")
    assert (first.is_bounce, second.is_bounce) == (False, True)
    # The last page of a visit has no next pageview: its time is unknown, not 30 minutes.
    assert [p.time_on_page_ms for p in pageviews(db)] == [1_800_000, None, None]
    assert first.visitor_id == second.visitor_id


def test_timeout_is_a_setting(make_app) -> None:
    app = make_app(visit_timeout_minutes=5)
    store_events(app, [pv("/", "09:00:00"), pv("/a", "09:06:00")], site=SITE)
    assert len(visits(app.extensions["tracker.db"])) == 2


def test_campaign_change_and_new_click_id_start_new_visits(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            pv("/?utm_source=news&utm_campaign=spring", "09:00:00"),
            pv("/about", "09:01:00"),
            pv("/?utm_source=news&utm_campaign=spring", "09:02:00"),  # same campaign: same visit
            pv("/?utm_source=news&utm_campaign=summer", "09:03:00"),
            pv("/?gclid=abc", "09:04:00"),
            pv("/?gclid=abc", "09:05:00"),
            pv("/?gclid=xyz", "09:06:00"),
        ],
        site=SITE,
    )
    assert [(v.utm_campaign, v.click_id, v.pageviews) for v in visits(db)] == [
        ("spring", "", 3),
        ("summer", "", 1),
        ("", "gclid:abc", 2),
        ("", "gclid:xyz", 1),
    ]


def test_external_referrer_mid_visit_does_not_split(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            pv("/cart", "09:00:00", referrer="https://www.google.com/"),
            pv("/thanks", "09:03:00", referrer="https://checkout.stripe.com/pay"),
        ],
        site=SITE,
    )
    [visit] = visits(db)
    assert (visit.source, visit.channel, visit.pageviews) == ("Google", "Organic Search", 2)


def test_engagement_sets_time_on_page_but_never_unbounces(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            pv("/article", "09:00:00", pageview_id="p1"),
            {
                "type": "engagement",
                "url": f"https://{SITE}/article",
                "pageview_id": "p1",
                "engaged_ms": 20_000,
                "scroll": 40,
                "timestamp": at("09:00:25"),
            },
            {
                "type": "engagement",
                "url": f"https://{SITE}/article",
                "pageview_id": "p1",
                "engaged_ms": 45_000,
                "scroll": 30,
                "timestamp": at("09:01:00"),
            },
        ],
        site=SITE,
    )
    [visit] = visits(db)
    assert (visit.pageviews, visit.events, visit.interactions) == (1, 1, 0)
    assert (visit.is_bounce, visit.duration_ms) == (True, 45_000)
    assert visit.last_ms - visit.started_ms == 60_000  # engagement keeps the visit alive
    [page] = pageviews(db)
    assert (page.engaged_ms, page.scroll, page.time_on_page_ms) == (45_000, 40, 45_000)


def test_engagement_after_the_next_pageview_replaces_the_gap(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            pv("/", "09:00:00", pageview_id="p1"),
            pv("/next", "09:05:00", pageview_id="p2"),
            {
                "type": "engagement",
                "url": f"https://{SITE}/",
                "pageview_id": "p1",
                "engaged_ms": 70_000,
                "timestamp": at("09:05:01"),
            },
            {
                "type": "engagement",
                "url": f"https://{SITE}/next",
                "pageview_id": "p2",
                "engaged_ms": 10_000,
                "timestamp": at("09:05:11"),
            },
        ],
        site=SITE,
    )
    [visit] = visits(db)
    assert [p.time_on_page_ms for p in pageviews(db)] == [70_000, 10_000]
    assert visit.duration_ms == 80_000


def test_engagement_in_a_later_batch_updates_the_stored_visit(app: Flask, db: Database) -> None:
    store_events(app, [pv("/", "09:00:00", pageview_id="p1")], site=SITE)
    store_events(
        app,
        [
            {
                "type": "engagement",
                "url": f"https://{SITE}/",
                "pageview_id": "p1",
                "engaged_ms": 12_000,
                "timestamp": at("09:00:30"),
            }
        ],
        site=SITE,
    )
    store_events(app, [pv("/two", "09:01:00", pageview_id="p2")], site=SITE)
    [visit] = visits(db)
    assert (visit.pageviews, visit.duration_ms, visit.is_bounce) == (2, 12_000, False)
    assert [p.time_on_page_ms for p in pageviews(db)] == [12_000, None]


def test_engagement_without_its_pageview_is_dropped(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            {
                "type": "engagement",
                "url": f"https://{SITE}/",
                "pageview_id": "ghost",
                "engaged_ms": 5,
                "timestamp": at("09:00:00"),
            }
        ],
        site=SITE,
    )
    assert visits(db) == []


def test_click_and_custom_event_are_interactions(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            pv("/", "09:00:00"),
            {
                "type": "click",
                "url": f"https://{SITE}/",
                "name": "CTA",
                "timestamp": at("09:00:10"),
            },
            pv("/", "11:00:00"),
            {
                "type": "event",
                "url": f"https://{SITE}/",
                "name": "Signup",
                "timestamp": at("11:00:10"),
            },
            pv("/", "13:00:00"),
        ],
        site=SITE,
    )
    assert [(v.pageviews, v.events, v.interactions, v.is_bounce) for v in visits(db)] == [
        (1, 2, 1, False),
        (1, 2, 1, False),
        (1, 1, 0, True),
    ]


def test_visitors_are_told_apart_by_ip_and_user_agent(app: Flask, db: Database) -> None:
    store_events(
        app,
        [pv("/", "09:00:00"), pv("/", "09:00:01", ip="198.51.100.9"), pv("/", "09:00:02")],
        site=SITE,
    )
    first, second = visits(db)
    assert first.visitor_id != second.visitor_id
    assert (first.pageviews, second.pageviews) == (2, 1)


def test_visit_continues_across_midnight(app: Flask, db: Database) -> None:
    store_events(
        app,
        [
            pv("/", "23:50:00", pageview_id="a"),
            {"url": f"https://{SITE}/after", "timestamp": at("00:10:00", "2026-03-03")},
            {"url": f"https://{SITE}/later", "timestamp": at("09:00:00", "2026-03-03")},
        ],
        site=SITE,
    )
    first, second = visits(db)
    assert (first.pageviews, first.exit_page, first.duration_ms) == (2, "/after", 1_200_000)
    # A new day's visit has the new day's visitor id: ids do not link days.
    assert second.visitor_id != first.visitor_id


def test_rotation_keeps_two_salts(app: Flask, db: Database) -> None:
    from datetime import date

    from tracker.db.models import DailySalt

    for day in (date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)):
        rotate_salts(db, day)
    rotate_salts(db, date(2026, 3, 3))  # idempotent
    with db.session() as session:
        days = sorted(s.day for s in session.scalars(select(DailySalt)))
    assert days == [date(2026, 3, 2), date(2026, 3, 3)]


def test_a_visit_starting_with_a_click_gets_its_entry_from_the_first_pageview(
    app: Flask, db: Database
) -> None:
    store_events(
        app,
        [
            {"type": "click", "url": f"https://{SITE}/x", "name": "a", "timestamp": at("09:00:00")},
            pv("/landing", "09:00:05"),
        ],
        site=SITE,
    )
    [visit] = visits(db)
    assert (visit.entry_page, visit.exit_page, visit.pageviews, visit.events) == (
        "/landing",
        "/landing",
        1,
        2,
    )


def test_a_new_event_row_fills_every_column_of_events() -> None:
    """The row follows the payload's declaration: a field added there without its column
    (or a column without its field) would be lost on the way."""
    row = event_row(a_hit(), visitor_id=42)
    assert set(row) | {"id", "visit_id"} == set(Event.__table__.columns.keys())
    assert (row["path"], row["pageview_id"], row["scroll"]) == ("/cart", "abc", None)
