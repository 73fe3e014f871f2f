"""Exit rate: a page's exits over its pageviews, exact on both databases, from rollups and
raw rows alike, with a comparison, on the page, in the Stats API and in the CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from tests.helpers import add_user, log_in, store_events
from tests.stats_fixture import card, rows
from tracker.sites import find_site
from tracker.stats import QueryError, exits, parse_query, run
from tracker.stats.query import site_ref
from tracker.stats.rollups import refresh_site

SITE = "exits.example"
DAY = {"period": "custom", "from": "2026-03-02", "to": "2026-03-02"}
NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)
# Visits (one per address), their pages in order: / is viewed 4 times and ends 2 visits,
# /pricing viewed 3 times ends 2, /blog viewed once ends 1.
VISITS = {
    "203.0.113.1": ["/", "/pricing"],
    "203.0.113.2": ["/pricing"],
    "203.0.113.3": ["/", "/blog"],
    "203.0.113.4": ["/"],
    "203.0.113.5": ["/pricing", "/"],
}
EXPECTED = {"/": (2, 50.0), "/pricing": (2, 66.7), "/blog": (1, 100.0)}


@pytest.fixture
def site(app, db):
    events = [
        {"ip": ip, "url": f"https://{SITE}{path}", "timestamp": f"2026-03-02T10:0{n}:00Z"}
        for ip, paths in VISITS.items()
        for n, path in enumerate(paths)
    ]
    store_events(app, events, site=SITE)
    with db.session() as session:
        found = find_site(session, SITE)
        session.expunge(found)
    return found


def _rates(db, site, rollups=True, **args):
    query = parse_query(
        site, {**DAY, "dimension": "visit:exit_page", "metrics": "visits,exit_rate", **args},
        now=NOW,
    )  # fmt: skip
    return {
        r["visit:exit_page"]: (r["visits"], r["exit_rate"])
        for r in run(db, query, rollups=rollups).rows
    }


def test_exit_rate_is_exits_over_the_page_pageviews(db, site):
    assert _rates(db, site) == EXPECTED
    assert refresh_site(db, site_ref(site), now_ms=int(NOW.timestamp() * 1000)) is not None
    assert _rates(db, site) == _rates(db, site, rollups=False) == EXPECTED
    # A filter on the exit page keeps the page's own pageviews: the same rate.
    assert _rates(db, site, exit_page="/pricing") == {"/pricing": (2, 66.7)}
    ordered = parse_query(
        site, {**DAY, "dimension": "visit:exit_page", "metrics": "exit_rate",
               "order": "exit_rate:asc"}, now=NOW,
    )  # fmt: skip
    assert [r["exit_rate"] for r in run(db, ordered).rows] == [50.0, 66.7, 100.0]


@pytest.mark.parametrize("limit", [2, 3])
def test_exit_rate_of_many_exit_pages_reads_every_page(db, site, monkeypatch, limit):
    """Past MAX_FILTERED_PAGES exit pages (PostgreSQL binds at most 65,535 values, and a
    100,000-page site's CSV or sort by exit rate has that many) their pageviews are read
    without a filter listing them: the same rates, from rollups and raw rows."""
    monkeypatch.setattr(exits, "MAX_FILTERED_PAGES", limit)
    asked = []
    completing = exits.complete

    def spying(query, rows, runner):
        def recording(viewed, keys):
            asked.append(viewed)
            return runner(viewed, keys)

        completing(query, rows, recording)

    monkeypatch.setattr(exits, "complete", spying)
    assert refresh_site(db, site_ref(site), now_ms=int(NOW.timestamp() * 1000)) is not None
    assert _rates(db, site) == _rates(db, site, rollups=False) == EXPECTED
    # The three exit pages: listed in a filter up to the limit, not past it.
    page_filters = [[f for f in q.filters if f.dimension == "event:page"] for q in asked]
    if limit < len(EXPECTED):
        assert page_filters == [[], []]
    else:
        assert [[f.values for f in fs] for fs in page_filters] == [[tuple(sorted(EXPECTED))]] * 2


def test_exit_rate_needs_the_exit_page_dimension(db, site):
    with pytest.raises(QueryError, match="exit_rate"):
        run(db, parse_query(site, {**DAY, "metrics": "exit_rate"}, now=NOW))


def test_exit_pages_report_on_the_page_and_in_csv(app, client, db, site):
    log_in(client, add_user(db, "owner@example.com"))
    query = "period=custom&from=2026-03-02&to=2026-03-02&pages_tab=exit_pages"
    html = client.get(f"/sites/{SITE}?{query}").get_data(as_text=True)
    shown = {r[0]: (r[1], r[2]) for r in rows(card(html, "pages"))}
    assert shown == {"/": ("2", "50.0%"), "/pricing": ("2", "66.7%"), "/blog": ("1", "100.0%")}
    assert "Exit rate" in card(html, "pages")
    data = client.get(f"/sites/{SITE}/reports/exit_pages.csv?{query}").get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(data)))
    assert {r["visit:exit_page"]: r["exit_rate"] for r in table} == {
        "/": "50.0", "/pricing": "66.7", "/blog": "100.0"
    }  # fmt: skip
