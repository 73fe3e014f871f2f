"""Scroll depth in the pages report: the average of each pageview's deepest scroll over the
pageviews that reported one, exact on both databases from raw rows, the columnar store and
rollups alike; refused where no page is named; on the page, in its CSV and the Stats API."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select, text

from tests.helpers import add_owner, log_in, store_events
from tests.stats_fixture import card, rows
from tests.test_members import blank_url  # noqa: F401 - the fixture: an empty database
from tracker.accounts import create_api_key
from tracker.columnar.build import CLOSE_AFTER_MS, refresh
from tracker.columnar.layout import read_manifest
from tracker.db.migrate import upgrade
from tracker.db.models import Site, StatsRollup, StatsRollupState, User
from tracker.sites import find_site
from tracker.stats import QueryError, parse_query, run
from tracker.stats.query import site_ref
from tracker.stats.rollups import refresh_site

SITE = "scroll.example"
BOTH = {"period": "custom", "from": "2026-03-02", "to": "2026-03-03"}
FIRST = {"period": "custom", "from": "2026-03-02", "to": "2026-03-02"}
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
# Each visit (one per address): its pageviews as (time, page, scroll reports). A pageview
# keeps the deepest it reported; None sends an engagement with time only, [] nothing.
VISITS: dict[str, list[tuple[str, str, list[int] | None]]] = {
    "203.0.113.1": [("2026-03-02T10:00", "/", [50]), ("2026-03-02T10:02", "/pricing", [100])],
    "203.0.113.2": [("2026-03-02T10:00", "/", [25, 75]), ("2026-03-02T10:03", "/pricing", None)],
    "203.0.113.3": [("2026-03-02T10:00", "/", [])],
    "203.0.113.4": [("2026-03-02T10:00", "/blog", None)],
    "203.0.113.5": [("2026-03-02T10:00", "/pricing", [40])],
    "203.0.113.6": [("2026-03-03T09:00", "/", [100]), ("2026-03-03T09:01", "/pricing", [10])],
}
# "/": 50, 75, 100 of 4 pageviews -> 75 (not 56: a pageview without a report is left out);
# "/pricing": 100, 40, 10 of 4 -> 50; "/blog": none reported.
EXPECTED = {"/": (4, 75), "/pricing": (4, 50), "/blog": (1, None)}
# The first day alone: "/" (50 + 75) / 2 = 62.5, halves rounded up; "/pricing" 140 / 2.
EXPECTED_FIRST = {"/": (3, 63), "/pricing": (3, 70), "/blog": (1, None)}


def _events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for ip, views in VISITS.items():
        for at, page, scrolls in views:
            url = f"https://{SITE}{page}"
            view = {"ip": ip, "url": url, "pageview_id": f"{ip}{at}"}
            events.append({**view, "timestamp": f"{at}:00Z"})
            reports = (
                [{"engaged_ms": 4000}] if scrolls is None else [{"scroll": s} for s in scrolls]
            )
            for n, report in enumerate(reports, start=1):
                events.append({**view, **report, "type": "engagement",
                               "timestamp": f"{at}:{10 * n}Z"})  # fmt: skip
    return events


@pytest.fixture
def site(app, db) -> Site:
    add_owner(db, SITE)
    store_events(app, _events(), site=SITE)
    with db.session() as session:
        found = find_site(session, SITE)
        assert found is not None
        session.expunge(found)
    return found


def _run(db, site, args: dict[str, str], *, rollups: bool = True):
    return run(db, parse_query(site, args, now=NOW), rollups=rollups)


def _pages(db, site, period=BOTH, *, rollups: bool = True, **args: str):
    result = _run(
        db,
        site,
        {**period, "dimension": "event:page", "metrics": "pageviews,scroll_depth", **args},
        rollups=rollups,
    )
    shown = {r["event:page"]: (r["pageviews"], r["scroll_depth"]) for r in result.rows}
    return shown, result.meta["source"]


def _build_store(db, root: Path) -> None:
    """The columnar store of every UTC day before 2026-03-04, read by reports."""
    until_ms = int(datetime(2026, 3, 4, tzinfo=UTC).timestamp() * 1000)
    refresh(db, root, now_ms=until_ms + CLOSE_AFTER_MS, budget_s=None)
    db.columnar_root = root


def _page_series(db, site, *, rollups: bool = True) -> tuple[list[Any], Any, str]:
    """Scroll depth of "/" per day, and over both days, with a page filter."""
    page = {**BOTH, "page": "/", "metrics": "scroll_depth"}
    daily = _run(db, site, {**page, "dimension": "time:day"}, rollups=rollups)
    total = _run(db, site, page, rollups=rollups)
    return (
        [r["scroll_depth"] for r in daily.rows],
        total.totals["scroll_depth"],
        daily.meta["source"],
    )


def test_scroll_depth_is_the_same_from_raw_rows_the_store_and_rollups(db, site, tmp_path):
    assert _pages(db, site, rollups=False) == (EXPECTED, "raw")
    assert _pages(db, site, FIRST, rollups=False) == (EXPECTED_FIRST, "raw")
    assert _page_series(db, site, rollups=False) == ([63, 100], 75, "raw")

    _build_store(db, tmp_path / "columnar")
    manifest = read_manifest(tmp_path / "columnar", site.id)
    assert manifest is not None and manifest.parts
    assert _pages(db, site) == (EXPECTED, "columnar")
    assert _pages(db, site, FIRST) == (EXPECTED_FIRST, "columnar")
    assert _page_series(db, site) == ([63, 100], 75, "columnar")
    # A filter no rollup holds is read from the store, after rollups are built too.
    filtered = {"page": "~p", "source": "!Google"}
    assert _pages(db, site, **filtered) == ({"/pricing": (4, 50)}, "columnar")

    assert refresh_site(db, site_ref(site), now_ms=NOW_MS) is not None
    assert _pages(db, site) == (EXPECTED, "rollup")
    assert _pages(db, site, FIRST) == (EXPECTED_FIRST, "rollup")
    assert _page_series(db, site) == ([63, 100], 75, "rollup")
    assert _pages(db, site, **filtered) == ({"/pricing": (4, 50)}, "columnar")


def test_scroll_depth_from_rollups_and_raw_rows_mixed(db, site):
    """Rollups cover the first day only: the second is read from raw rows, summed as one."""
    late_first_day = int(datetime(2026, 3, 2, 23, tzinfo=UTC).timestamp() * 1000)
    assert refresh_site(db, site_ref(site), now_ms=late_first_day) is not None
    assert _pages(db, site) == (EXPECTED, "mixed")


def test_scroll_depth_orders_and_compares(db, site):
    ordered = _run(
        db,
        site,
        {**BOTH, "dimension": "event:page", "metrics": "scroll_depth", "order": "scroll_depth"},
    )
    assert [(r["event:page"], r["scroll_depth"]) for r in ordered.rows] == [
        ("/", 75), ("/pricing", 50), ("/blog", None)
    ]  # fmt: skip
    second = {"period": "custom", "from": "2026-03-03", "to": "2026-03-03"}
    compared = _run(
        db,
        site,
        {**second, "dimension": "event:page", "metrics": "scroll_depth",
         "compare": "previous_period"},
    )  # fmt: skip
    by_page = {
        r["event:page"]: (r["scroll_depth"], r["change"]["scroll_depth"]) for r in compared.rows
    }
    assert by_page == {"/": (100, 37), "/pricing": (10, -60)}


@pytest.mark.parametrize(
    "args",
    [
        {"metrics": "scroll_depth"},
        {"metrics": "visitors,scroll_depth", "dimension": "visit:source"},
        {"metrics": "scroll_depth", "dimension": "visit:exit_page"},
        {"metrics": "scroll_depth", "dimension": "time:day", "source": "Google"},
    ],
)
def test_scroll_depth_needs_a_page(db, site, args):
    with pytest.raises(QueryError, match="scroll_depth.*event:page"):
        _run(db, site, {**BOTH, **args})


def test_pages_report_on_the_page_and_in_csv(app, client, db, site):
    log_in(client, db_user(db))
    query = "period=custom&from=2026-03-02&to=2026-03-03"
    html = client.get(f"/sites/{SITE}?{query}").get_data(as_text=True)
    pages = card(html, "pages")
    assert "Scroll depth" in pages
    assert 'title="Average of the deepest scroll each pageview reached' in pages
    shown = {r[0]: r[4] for r in rows(pages)}
    assert shown == {"/": "75%", "/pricing": "50%", "/blog": "—"}
    more = client.get(f"/sites/{SITE}/reports/pages?{query}").get_data(as_text=True)
    assert {r[0]: r[4] for r in rows(more)} == shown
    data = client.get(f"/sites/{SITE}/reports/pages.csv?{query}").get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(data)))
    assert {r["event:page"]: r["scroll_depth"] for r in table} == {
        "/": "75", "/pricing": "50", "/blog": ""
    }  # fmt: skip


def db_user(db) -> User:
    with db.session() as session:
        user = session.query(User).filter_by(email="owner@example.com").one()
        session.expunge(user)
        return user


def test_stats_api(app, client, db, site):
    with db.session() as session:
        _, key = create_api_key(session, session.get(User, db_user(db).id))
    headers = {"Authorization": f"Bearer {key}"}
    period = {"site_id": SITE, "period": "custom", "date": "2026-03-02,2026-03-03"}

    def get(path: str, **params: str):
        return client.get(f"/api/v1/stats/{path}", query_string={**period, **params},
                          headers=headers)  # fmt: skip

    found = get("breakdown", property="event:page", metrics="pageviews,scroll_depth")
    assert found.status_code == 200, found.get_data(as_text=True)
    assert found.get_json()["results"] == [
        {"page": "/", "pageviews": 4, "scroll_depth": 75},
        {"page": "/pricing", "pageviews": 4, "scroll_depth": 50},
        {"page": "/blog", "pageviews": 1, "scroll_depth": None},
    ]
    one = get("aggregate", metrics="scroll_depth", filters="event:page==/pricing")
    assert one.get_json()["results"] == {"scroll_depth": {"value": 50}}
    for path, params in (
        ("aggregate", {"metrics": "visitors,scroll_depth"}),
        ("breakdown", {"property": "visit:source", "metrics": "scroll_depth"}),
        ("timeseries", {"metrics": "scroll_depth"}),
    ):
        refused = get(path, **params)
        assert refused.status_code == 400
        assert "scroll_depth" in refused.get_json()["error"]
        assert "event:page" in refused.get_json()["error"]


def test_migration_has_rollups_rebuilt(blank_url: str) -> None:  # noqa: F811
    """Rows rolled up before scroll depth hold 0 for its parts: the rollup state goes, so
    reports read raw rows until the next refresh has rebuilt every day."""
    upgrade(blank_url, "0021")
    engine = create_engine(blank_url)
    with engine.begin() as conn:
        site_id = conn.execute(insert(Site).values(domain=SITE).returning(Site.id)).scalar_one()
        conn.execute(
            text(
                "INSERT INTO stats_rollups (site_id, day, dimension, value, value2, visitors, "
                "visits, bounces, pageviews, events, duration_ms, time_on_page_ms, "
                "time_on_page_known) VALUES (:site, 20514, 'event:page', '/', '', 1, 1, 0, 1, "
                "1, 0, 0, 0)"
            ),
            {"site": site_id},
        )
        conn.execute(
            insert(StatsRollupState).values(
                site_id=site_id, last_day=20514, timezone="UTC", last_event_id=1, built_ms=0
            )
        )
    upgrade(blank_url)
    with engine.connect() as conn:
        parts = conn.execute(select(StatsRollup.scroll_sum, StatsRollup.scroll_known)).all()
        assert [tuple(p) for p in parts] == [(0, 0)]
        assert conn.execute(select(StatsRollupState.site_id)).all() == []
    engine.dispose()
