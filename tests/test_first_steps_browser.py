"""A newcomer's first steps in a real browser, at 1440x900 and 390x844: the welcome after
setting up, the sites list (visitors and a sparkline per site, copy buttons), the stats
page (no console error, one row of report tabs), and a friendly page for an unknown site."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import store_events
from tracker.sites import add_site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "first.example"
PASSWORD = "correct horse battery"
SIZES = ({"width": 1440, "height": 900}, {"width": 390, "height": 844})


def _traffic(app) -> None:
    """Visitors on three of the last days: 1, 3 and 2."""
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    events = [
        {"timestamp": (now - timedelta(days=ago)).isoformat(), "ip": f"203.0.113.{ago}{n}",
         "url": f"https://{SITE}/?utm_source=news", "referrer": "https://news.example/"}
        for ago, count in ((3, 1), (2, 3), (1, 2)) for n in range(count)
    ]  # fmt: skip
    store_events(app, events, site=SITE)


def _no_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", SIZES, ids=["1440", "390"])
def test_first_steps(app, db, browser, live_server, size):
    with db.session() as session:
        add_site(session, SITE)
    context = browser.new_context(viewport=size)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))

    page.goto(f"{live_server.url}/setup")
    page.fill("input[name=email]", "owner@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("button:has-text('Create admin account')")
    # A site exists already (as `make run`'s demo makes one): no "add your first site".
    flash = page.locator(".flash").inner_text()
    assert f"Open {SITE} below" in flash and "first site" not in flash
    _traffic(app)  # (its API key's user exists from now on: no first run any more)
    page.reload()

    site = page.locator("ul.sites li").first
    assert site.locator(".trend b").inner_text() == "6"  # 1 + 3 + 2 visitors in 30 days
    line = site.locator("svg.spark path").get_attribute("d") or ""
    assert line.startswith("M") and line.count("L") == 29  # one point a day
    copy = site.locator("button[data-copy]")
    copy.click()
    copy.filter(has_text="Copied").wait_for()
    tag = f'<script defer data-site="{SITE}" src="{live_server.url}/tracker.js"></script>'
    assert page.evaluate("navigator.clipboard.readText()") == tag
    assert _no_overflow(page)

    page.goto(f"{live_server.url}/sites/{SITE}")
    assert page.locator("link[rel=icon]").count() == 1
    icon = page.request.get(live_server.url + page.locator("link[rel=icon]").get_attribute("href"))
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")
    tabs = page.eval_on_selector_all(
        ".reports .tabs",
        "els => els.map(e => [e.scrollWidth, e.clientWidth,"
        " new Set([...e.children].map(a => a.getBoundingClientRect().top)).size])",
    )
    assert tabs and all(rows == 1 for _, _, rows in tabs)  # never wrapped
    if size["width"] == 1440:
        assert all(scroll <= width for scroll, width, _ in tabs)  # and all of them seen
    assert _no_overflow(page)

    response = page.goto(f"{live_server.url}/sites/nope.example")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "No site “nope.example” here"
    page.click("a:has-text('Your sites')")
    assert page.url == f"{live_server.url}/sites"
    # The one console error: the unknown site's page itself answering 404.
    assert errors == [
        "Failed to load resource: the server responded with a status of 404 (NOT FOUND)"
    ]
    context.close()
