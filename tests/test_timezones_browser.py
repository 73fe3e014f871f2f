"""Time zones in a real browser: one searchable list of every zone on the add-a-site form and
on the settings page, a new site starting in the browser's own zone. 1440x900 and 390x844."""

from __future__ import annotations

import pytest

from tests.browser import logged_in_context
from tests.helpers import add_user
from tracker.sites import find_site
from tracker.web.timezones import timezone_choices

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

PASSWORD = "correct horse"


@pytest.mark.parametrize(
    ("size", "zone", "domain"),
    [
        ({"width": 1440, "height": 900}, "America/Santiago", "wide.example"),
        ({"width": 390, "height": 844}, "Asia/Tokyo", "phone.example"),
    ],
)
def test_new_site_takes_the_browser_zone_from_one_searchable_list(
    app, db, browser, live_server, size, zone, domain
):
    add_user(db, "owner@example.com", PASSWORD)
    context = logged_in_context(
        browser, live_server, "owner@example.com", viewport=size, timezone_id=zone
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/sites")
    field = page.locator("input[name=timezone]")
    assert field.input_value() == zone
    every_zone = len(timezone_choices())
    assert page.locator(f"datalist#{field.get_attribute('list')} option").count() == every_zone
    box = field.bounding_box()
    assert box is not None and box["x"] + box["width"] <= size["width"]

    page.fill("input[name=domain]", domain)
    field.fill("Mars/Olympus")
    page.click("button:has-text('Add site')")
    assert "'Mars/Olympus' is not a time zone" in page.locator(".error").inner_text()
    field = page.locator("input[name=timezone]")
    assert field.input_value() == "Mars/Olympus"  # kept as typed, not replaced by the browser's
    field.fill(zone)
    page.click("button:has-text('Add site')")
    with db.session() as session:
        assert find_site(session, domain).timezone == zone

    page.goto(f"{live_server.url}/sites/{domain}/settings")
    field = page.locator("#general input[name=timezone]")
    assert field.input_value() == zone
    assert page.locator(f"datalist#{field.get_attribute('list')} option").count() == every_zone
    context.close()
