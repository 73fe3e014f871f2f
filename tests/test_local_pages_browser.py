"""Testing on localhost, in a real browser: the beacon sends nothing from a local page, and
the site's empty state says so (naming the page) and offers the `data-allow-local` tag,
which does record. Checked at 1440x900 and 390x844."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.browser import logged_in_context, wait_for
from tests.helpers import add_user
from tracker.db import Database
from tracker.db.models import Event, Site
from tracker.web.local_pages import recent_local_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "shop.test"
PASSWORD = "correct horse"
SIZES = ({"width": 1440, "height": 900}, {"width": 390, "height": 844})


def _page_with(tag_attrs: str, collector: str) -> str:
    return (
        '<!doctype html><title>Local</title><link rel="icon" href="data:,">'
        f'<script defer data-site="{SITE}"{tag_attrs} src="{collector}/tracker.js"></script>'
    )


def stored_events(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def _inside(page, selector: str, width: int) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


def test_local_page_is_explained_and_allow_local_records(app, db, browser, live_server, test_site):
    add_user(db, "owner@example.com", PASSWORD)
    with db.session() as session:
        session.add(Site(domain=SITE, timezone="UTC", allowed_hostnames=["127.0.0.1"]))
    data_dir = app.extensions["tracker.settings"].data_dir
    owner = logged_in_context(browser, live_server, "owner@example.com", viewport=SIZES[1])
    waiting = owner.new_page()
    # The page's clock is the test's to move on: its next poll of status.json comes when the
    # test has made something to see, not up to 3 s later.
    waiting.clock.install()
    waiting.goto(f"{live_server.url}/sites/{SITE}")
    note = waiting.locator("[data-local-note]")
    assert not note.is_visible()  # no local page yet: nothing to explain

    visitor = browser.new_context()
    tester = visitor.new_page()
    tester.goto(test_site.page("/plain", _page_with("", live_server.url)))
    assert wait_for(lambda: recent_local_page(data_dir)) == test_site.url
    # The open page's check learns it at its next poll, and says what to do.
    waiting.clock.run_for(3000)
    note.wait_for(state="visible", timeout=10_000)
    assert test_site.url in note.inner_text()
    assert waiting.locator("details[data-local]").get_attribute("open") is not None
    snippet = waiting.locator("details[data-local] textarea").input_value()
    assert f'data-site="{SITE}" data-allow-local src="{live_server.url}/tracker.js"' in snippet
    assert _inside(waiting, "[data-local-note]", 390)
    assert _inside(waiting, "details[data-local] textarea", 390)

    page = owner.new_page()
    page.set_viewport_size(SIZES[0])
    page.goto(f"{live_server.url}/sites/{SITE}")  # rendered with the note, no poll needed
    assert page.locator("[data-local-note]").is_visible()
    assert test_site.url in page.locator("[data-local-note]").inner_text()
    assert _inside(page, "details[data-local] textarea", 1440)

    tester.goto(test_site.page("/allowed", _page_with(" data-allow-local", live_server.url)))
    assert wait_for(lambda: stored_events(db) >= 1), "the allowed local page was not recorded"
    waiting.clock.run_for(3000)
    status = waiting.locator("[data-status-text]")
    status.filter(has_text="First pageview received").wait_for(timeout=10_000)
    visitor.close()
    owner.close()
