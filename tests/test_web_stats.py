"""The stats page over a known day of traffic: exact numbers, filters, reports, CSV, limits."""

import csv
import html
import io
import re

import pytest

from tests.helpers import add_user, log_in, store_events
from tests.stats_fixture import DAY, SITE, card, kpis, row_links, rows, store_fixture


@pytest.fixture
def viewer(app, client, db):
    store_fixture(app)
    log_in(client, add_user(db, "owner@example.com"))
    return client


def page(client, query=""):
    response = client.get(f"/sites/{SITE}?{DAY}{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_headline_numbers_and_changes(viewer):
    assert kpis(page(viewer)) == {
        "Visitors": ("3", "+200%", "good"),
        "Visits": ("3", "+200%", "good"),
        "Pageviews": ("5", "+400%", "good"),
        "Views per visit": ("1.67", "+67%", "good"),
        "Bounce rate": ("33%", "-67 pts", "good"),  # fewer bounces is better
        "Visit duration": ("37s", "", "flat"),  # no change from 0 can be said
    }
    no_compare = kpis(page(viewer, "&compare=off"))
    assert no_compare["Visitors"] == ("3", "", "flat")


def test_reports_show_exact_rows(viewer):
    html = page(viewer)
    assert sorted(rows(card(html, "sources"))) == [
        ("Direct / None", "1", "1", "0%"),
        ("Google", "1", "1", "100%"),
        ("news", "1", "1", "0%"),
    ]
    pages = rows(card(html, "pages"))
    # Time on page: (30 s + 20 s) / 2; no scroll depth reported (tests/test_stats_scroll.py).
    assert pages[0] == ("/", "2", "2", "25s", "—", pages[0][5])
    assert dict((r[0], r[1:4]) for r in pages) == {
        "/": ("2", "2", "25s"),
        "/pricing": ("1", "1", "1m 00s"),
        "/blog": ("1", "1", "—"),  # no engagement and no next page: unknown
        "/signup": ("1", "1", "—"),
    }
    assert rows(card(html, "clicks")) == [("https://partner.example/deal", "1", "1")]
    outbound = card(page(viewer, "&clicks_tab=outbound_links"), "clicks")
    assert rows(outbound) == [("https://partner.example/deal", "1", "1")]
    assert "Nothing in this period" in card(page(viewer, "&clicks_tab=downloads"), "clicks")
    assert rows(card(html, "events")) == [("Signup", "1", "1")]
    props = card(page(viewer, "&events_tab=event_props"), "events")
    assert rows(props) == [("Signup · plan: pro", "1", "1")]
    by_props = viewer.get(row_links(props)["Signup · plan: pro"]).get_data(as_text=True)
    assert 'Properties is {"plan": "pro"}' in by_props.replace("&#34;", '"')
    assert kpis(by_props)["Visitors"][0] == "1"
    entry = rows(card(page(viewer, "&pages_tab=entry_pages"), "pages"))
    assert sorted(entry) == [("/", "2", "0%", "55s"), ("/blog", "1", "100%", "0s")]
    campaigns = rows(card(page(viewer, "&sources_tab=campaigns"), "sources"))
    assert campaigns == [("spring", "1", "1", "0%")]


def test_a_row_link_filters_the_page_and_the_filter_can_be_removed(viewer):
    google = row_links(card(page(viewer), "sources"))["Google"]
    assert "source=Google" in google and "from=2026-03-02" in google
    filtered = viewer.get(google).get_data(as_text=True)
    assert "Source is Google" in filtered
    assert kpis(filtered)["Visitors"][0] == "1" and kpis(filtered)["Bounce rate"][0] == "100%"
    assert rows(card(filtered, "pages")) == [("/blog", "1", "1", "—", "—", "100%")]
    remove = filtered.split('class="x" href="')[1].split('"')[0].replace("&amp;", "&")
    assert "source=" not in remove and "from=2026-03-02" in remove
    assert kpis(viewer.get(remove).get_data(as_text=True))["Visitors"][0] == "3"


def test_more_list_and_csv_hold_the_same_rows(viewer):
    more = viewer.get(f"/sites/{SITE}/reports/pages?{DAY}").get_data(as_text=True)
    listed = rows(more)
    assert len(listed) == 4 and 'rel="next"' not in more
    exits = viewer.get(f"/sites/{SITE}/reports/exit_pages?{DAY}").get_data(as_text=True)
    assert "pages_tab=exit_pages#pages" in exits  # back to the card, on the same tab
    response = viewer.get(f"/sites/{SITE}/reports/pages.csv?{DAY}")
    assert response.mimetype == "text/csv"
    assert (
        'filename="shop.example-pages-2026-03-02-to-2026-03-02.csv"'
        in response.headers["Content-Disposition"]
    )
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == [
        "event:page", "visitors", "pageviews", "time_on_page", "scroll_depth", "bounce_rate"
    ]  # fmt: skip
    assert [r[0] for r in table[1:]] == [r[0] for r in listed]
    assert table[1][:4] == ["/", "2", "2", "25.0"]
    assert viewer.get(f"/sites/{SITE}/reports/nope?{DAY}").status_code == 404


def test_more_pages_through_long_lists(app, viewer):
    store_events(
        app,
        [{"url": f"https://{SITE}/p{i:03d}", "timestamp": f"2026-03-02T13:{i // 60:02d}:"
          f"{i % 60:02d}Z"} for i in range(120)],
        site=SITE,
    )  # fmt: skip
    first = viewer.get(f"/sites/{SITE}/reports/pages?{DAY}").get_data(as_text=True)
    second_url = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = viewer.get(second_url.replace("&amp;", "&")).get_data(as_text=True)
    assert len(rows(first)) == 100 and len(rows(second)) == 124 - 100
    assert not set(rows(first)) & set(rows(second))


def test_csv_cells_cannot_become_formulas(app, viewer):
    store_events(
        app,
        [{"url": f"https://{SITE}/?utm_campaign=%3D1%2B2", "timestamp": "2026-03-02T15:00:00Z",
          "ip": "203.0.113.50"}],
        site=SITE,
    )  # fmt: skip
    text = viewer.get(f"/sites/{SITE}/reports/campaigns.csv?{DAY}").get_data(as_text=True)
    lines = text.splitlines()
    assert "'=1+2,1,1,100.0" in lines and not any(line.startswith("=") for line in lines)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("period=fortnight", "not a known period"),
        ("period=custom&from=2026-03-05&to=2026-03-01", "is after"),
        ("period=custom&from=yesterday&to=2026-03-01", "is not a date"),
    ],
)
def test_bad_parameters_answer_400_with_a_sentence(viewer, query, message):
    response = viewer.get(f"/sites/{SITE}?{query}")
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert viewer.get(f"/sites/{SITE}/reports/sources.csv?{query}").status_code == 400


def test_realtime_and_live_count(app, viewer):
    store_events(app, [{"url": f"https://{SITE}/now", "ip": "203.0.113.77"}], site=SITE)
    assert viewer.get(f"/sites/{SITE}/live.json").get_json() == {"current_visitors": 1}
    live = viewer.get(f"/sites/{SITE}/realtime").get_data(as_text=True)
    assert "<b>1</b> current visitor<" in live
    assert '<td title="/now"><span>/now</span></td><td>1</td>' in live
    # The busiest minute is the chart's full height; the axis says how many that is.
    assert live.count('style="height:100.0%"') == 1
    assert "busiest minute: 1 pageview<" in live


def test_realtime_bars_are_shares_of_the_busiest_minute(app, viewer):
    store_events(
        app,
        [{"url": f"https://{SITE}/p{i}", "ip": f"203.0.113.{i}"} for i in range(4)],
        site=SITE,
    )
    live = viewer.get(f"/sites/{SITE}/realtime").get_data(as_text=True)
    heights = re.findall(r'<span style="height:([0-9.]+)%"', live)
    assert len(heights) == 30  # one bar per minute
    assert heights.count("100.0") == 1 and set(heights) == {"0.0", "100.0"}
    assert "busiest minute: 4 pageviews<" in live


def test_empty_state_turns_into_the_page(app, client, db):
    log_in(client, add_user(db, "owner@example.com"))
    with db.session() as session:
        from tracker.sites import add_site

        add_site(session, "new.example")
    empty = client.get("/sites/new.example").get_data(as_text=True)
    tag = 'data-site="new.example" src="http://localhost/tracker.js"'
    assert tag in html.unescape(empty)
    assert "Waiting for the first pageview" in empty
    waiting = {"has_events": False, "local_page": None}  # no page on localhost loaded it
    assert client.get("/sites/new.example/status.json").get_json() == waiting
    store_events(app, [{"url": "https://new.example/"}], site="new.example")
    started = {"has_events": True}
    assert client.get("/sites/new.example/status.json").get_json() == started
    assert "Waiting for the first pageview" not in client.get("/sites/new.example").get_data(
        as_text=True
    )


def test_page_weight_with_all_assets_is_under_60_kb(app, client, db):
    """Full cards (demo traffic), the HTML plus every stylesheet and script it loads."""
    from tracker.demo import demo_days

    with db.session() as session:
        from tracker.sites import add_site

        add_site(session, "demo.example")
    for events in demo_days("demo.example", days=2, visits_per_day=150):
        store_events(app, events, site="demo.example")
    log_in(client, add_user(db, "owner@example.com"))
    html = client.get("/sites/demo.example?period=7d").get_data(as_text=True)
    sizes = {"html": len(html.encode())}
    for path in re.findall(r'(?:src|href)="(/assets/[^"]+)"', html):
        sizes[path] = len(client.get(path).data)
    assert set(sizes) == {"html", "/assets/stats.js", "/assets/app.css", "/assets/favicon.svg"}
    assert min(len(rows(card(html, key))) for key in ("sources", "pages")) == 9  # full cards
    assert sum(sizes.values()) <= 60 * 1024, sizes


def test_raw_export_links_carry_the_view(viewer):
    filtered = page(viewer, "&source=Google")
    link = re.search(r'href="([^"]*/export/events\.csv[^"]*)"', filtered).group(1)
    link = link.replace("&amp;", "&")
    assert "source=Google" in link and "from=2026-03-02" in link
    response = viewer.get(link)
    assert response.status_code == 200
    exported = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert exported and all(row["source"] == "Google" for row in exported)
    assert "/export/visits.csv" in filtered
