"""Chart annotations in a real browser (Debian's chromium): hovering a marker reads its
notes, a note holding a script never runs, and the form under the chart adds one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import logged_in_context
from tests.helpers import add_user
from tests.stats_fixture import SITE, store_fixture
from tracker.annotations import add_annotation
from tracker.sites import find_site

# What a browser runs does not depend on the database: SQLite only, to keep the suite quick.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PASSWORD = "correct horse"
WEEK = "period=custom&from=2026-02-28&to=2026-03-06&compare=off"
SCRIPT = "<script>window.__xss='note'</script>"


def test_markers_read_their_notes_and_the_form_adds_one(app, db, browser, live_server):
    add_user(db, "owner@example.com", PASSWORD)
    store_fixture(app)
    with db.session() as session:
        site = find_site(session, SITE)
        add_annotation(session, site, "2026-03-02", "Launch")
        add_annotation(session, site, "2026-03-02", SCRIPT)
    context = logged_in_context(
        browser, live_server, "owner@example.com", viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/sites/{SITE}?{WEEK}")
    # Two notes on Monday: one marker; hovering it shows the day and both notes.
    assert page.locator(".chart .note").count() == 1
    page.locator(".chart .note-flag").hover()
    assert page.locator(".chart .tip").inner_text().split("\n") == [
        "Mon 2 Mar 2026",
        "Launch",
        SCRIPT,
    ]
    # Hovering a day without notes shows its value as before.
    page.locator(".chart .hit").nth(5).hover()
    assert page.locator(".chart .tip").inner_text().split("\n") == ["Thu 5 Mar 2026", "0"]
    assert page.locator("ul.notes li").all_inner_texts() == [f"Mon 2 Mar 2026: Launch; {SCRIPT}"]
    assert page.evaluate("window.__xss") is None
    # The form under the chart: today by default; add a note on Wednesday.
    page.click("summary:has-text('Add a note to the chart')")
    page.fill("#add-note input[name=date]", "2026-03-04")
    page.fill("#add-note input[name=text]", "Budget doubled")
    page.click("#add-note button")
    page.wait_for_selector(".flash")
    assert page.locator(".flash").inner_text() == "Note added on 4 Mar 2026: Budget doubled"
    assert page.url.endswith(f"/sites/{SITE}?{WEEK}")
    assert page.locator(".chart .note").count() == 2
    page.locator(".chart .note-flag").nth(1).hover()
    assert page.locator(".chart .tip").inner_text().split("\n") == [
        "Wed 4 Mar 2026",
        "Budget doubled",
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("section.card", has=page.locator(".chart")).screenshot(
        path=str(ARTIFACTS / "chart-annotations.png")
    )
    assert page.evaluate("window.__xss") is None
    context.close()
