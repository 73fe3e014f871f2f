"""The stats page in a real browser (Debian's chromium): filtering by a click, and an XSS
canary: attacker-controlled text in every stored field must never run as script."""

from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.browser import logged_in_context
from tests.helpers import add_user, store_events, stored
from tests.stats_fixture import DAY, SITE, store_fixture

# What a browser runs does not depend on the database: SQLite only, to keep the suite quick.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PASSWORD = "correct horse"
# Each payload sets window.__xss if it ever runs: a script, an event handler, a javascript: URL.
PAYLOADS = [
    "<script>window.__xss='script'</script>",
    "\"'><svg/onload=window.__xss='attr'>",
    "javascript:window.__xss='url'",
    "</title><img src=x onerror=window.__xss='img'>",
]


def _canary_events(site):
    events = []
    for i, payload in enumerate(PAYLOADS):
        utm = urlencode({f"utm_{k}": payload for k in ("source", "medium", "campaign", "term",
                                                        "content")})  # fmt: skip
        page = f"https://{site}/{quote(payload, safe='')}"
        common = {"ip": f"203.0.113.{10 + i}", "timestamp": f"2026-03-02T12:0{i}:00Z"}
        events += [
            {"url": f"{page}?{utm}", "title": payload, "referrer": f"https://ref{i}.example/"
             f"{payload}", **common, "pageview_id": f"x{i}"},
            {"url": f"https://{site}/raw{i}{payload}", "title": payload, **common},
            {"type": "click", "url": page, "name": "Outbound Link", "target": payload, **common},
            {"type": "click", "url": page, "name": "File Download",
             "target": f"https://{site}/{payload}.pdf", **common},
            {"type": "event", "url": page, "name": payload, "props": {payload: payload}, **common},
        ]  # fmt: skip
    return events


def _visit_everything(page, base, site):
    """The page, every tab of every card, every "more" list, real time; returns pages seen."""
    seen = []
    start = f"{base}/sites/{site}?{DAY}"
    page.goto(start)
    tabs = page.eval_on_selector_all(".tabs a, .report .foot a[href*='/reports/']",
                                     "els => els.map(e => e.href)")  # fmt: skip
    for url in [start, *tabs, f"{base}/sites/{site}/realtime"]:
        if url.endswith(".csv") or ".csv?" in url:
            continue
        page.goto(url)
        seen.append(url)
        assert page.evaluate("window.__xss") is None, url
    return seen


def test_xss_canary_never_runs(app, db, browser, live_server):
    add_user(db, "owner@example.com", PASSWORD)
    store_events(app, _canary_events("xss.example"), site="xss.example")
    context = logged_in_context(browser, live_server, "owner@example.com")
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    seen = _visit_everything(page, live_server.url, "xss.example")
    assert len(seen) > 20
    # The payloads are shown as text, and filtering by one keeps them inert.
    page.goto(f"{live_server.url}/sites/xss.example?{DAY}&sources_tab=campaigns")
    assert page.get_by_text(PAYLOADS[0]).count() >= 1
    page.locator("#sources tbody a", has_text="svg/onload").first.click()
    page.wait_for_load_state()
    assert page.locator(".filters li", has_text="UTM campaign is").count() == 1
    assert page.evaluate("window.__xss") is None and dialogs == []
    context.close()


def test_clicking_a_source_filters_the_page(app, db, browser, live_server):
    add_user(db, "owner@example.com", PASSWORD)
    store_fixture(app)
    ARTIFACTS.mkdir(exist_ok=True)
    context = logged_in_context(
        browser, live_server, "owner@example.com", viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/sites/{SITE}?{DAY}")
    assert page.locator(".kpis a").first.inner_text().split("\n")[:2] == ["VISITORS", "3"]
    page.locator("#sources tbody a", has_text="Google").click()
    page.wait_for_url("**source=Google**")
    assert page.locator(".filters li").inner_text().startswith("Source is Google")
    assert page.locator(".kpis a").first.inner_text().split("\n")[:2] == ["VISITORS", "1"]
    assert page.locator("#pages tbody a").all_inner_texts() == ["/blog"]
    page.screenshot(path=str(ARTIFACTS / "stats-filtered-by-source.png"), full_page=True)
    # The chart answers a hover with the day's value and the comparison day's.
    page.locator(".chart .hit").nth(10).hover()  # 10:00, when the Google visit came
    assert page.locator(".chart .tip").inner_text().split("\n") == [
        "Mon 2 Mar, 10:00",
        "1",
        "vs 0 (Sun 1 Mar, 10:00)",
    ]
    page.locator(".filters a.x").click()
    page.wait_for_load_state()
    assert page.locator(".filters li").count() == 0
    context.close()


def test_phone_layout_and_screenshots(app, db, browser, live_server):
    """Desktop and phone screenshots of a demo site (kept under test-artifacts/)."""
    from tracker.demo import demo_days

    add_user(db, "owner@example.com", PASSWORD)
    for events in demo_days("demo.example", days=14, visits_per_day=60):
        store_events(app, events, site="demo.example")
    ARTIFACTS.mkdir(exist_ok=True)
    context = logged_in_context(browser, live_server, "owner@example.com")
    page = context.new_page()
    for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{live_server.url}/sites/demo.example?period=7d")
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(ARTIFACTS / f"stats-{name}.png"), full_page=True)
    context.close()


def test_empty_state_turns_green_by_itself(app, db, browser, live_server):
    from tracker.sites import add_site

    add_user(db, "owner@example.com", PASSWORD)
    with db.session() as session:
        add_site(session, "new.example")
    context = logged_in_context(browser, live_server, "owner@example.com")
    page = context.new_page()
    # The page's clock is the test's to move on: its poll comes when the pageview is stored,
    # not up to 3 s later.
    page.clock.install()
    page.goto(f"{live_server.url}/sites/new.example")
    assert page.locator("[data-status-text]").inner_text() == "Waiting for the first pageview…"
    store_events(app, [{"url": "https://new.example/"}], site="new.example")
    stored(app)
    # The page polls status.json, turns green, then reloads into the stats.
    page.clock.run_for(3000)
    page.wait_for_selector(".teach.ok", timeout=15_000)
    page.wait_for_selector(".kpis", timeout=15_000)
    assert page.locator(".kpis a").first.inner_text().split("\n")[:2] == ["VISITORS", "1"]
    context.close()


def test_realtime_bars_stay_inside_their_box(app, db, browser, live_server):
    """Issue 20: every bar was pageviews x 100% tall, spilling over the header."""
    add_user(db, "owner@example.com", PASSWORD)
    store_events(
        app,
        [{"url": f"https://{SITE}/p{i % 3}", "ip": f"203.0.113.{i}"} for i in range(7)],
        site=SITE,
    )
    context = logged_in_context(browser, live_server, "owner@example.com")
    page = context.new_page()
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{live_server.url}/sites/{SITE}/realtime")
        box = page.locator(".realtime .bars").bounding_box()
        bars = [b.bounding_box() for b in page.locator(".realtime .bars span").all()]
        assert len(bars) == 30
        for bar in bars:
            assert bar["y"] >= box["y"] - 0.5
            assert bar["y"] + bar["height"] <= box["y"] + box["height"] + 0.5
        assert max(bar["height"] for bar in bars) == pytest.approx(box["height"], abs=1)
        axis = page.locator(".realtime .axis").inner_text()
        assert "busiest minute: 7 pageviews" in axis
    context.close()
