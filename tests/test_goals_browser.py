"""Goals in a real browser (Debian's chromium): a visitor clicks a buy button whose handler
sends "Purchase" with revenue; a goal defined afterwards counts it, and the stats page
shows it in the Goals card and in conversion mode."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.browser import LiveServer, TestSite, logged_in_context, wait_for
from tests.helpers import add_user
from tracker.db import Database
from tracker.db.models import Event, Site
from tracker.goals import add_goal

# What a browser runs does not depend on the database: SQLite only, to keep the suite quick.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "shop.test"
PASSWORD = "correct horse"
# Beacons are asynchronous and the spool's writer stores them moments later: poll, with a
# deadline generous enough for a loaded machine (it returns as soon as they are there).
DEADLINE = 30.0


def stored(db: Database) -> list[tuple[str, str, int | None, str]]:
    with db.session() as session:
        rows = session.scalars(select(Event).order_by(Event.id))
        return [(e.kind, e.name, e.revenue_minor, e.revenue_currency) for e in rows]


def wait_stored(db: Database, expected: tuple[str, str, int | None, str]) -> None:
    found = wait_for(lambda: expected in stored(db), timeout=DEADLINE)
    assert found, f"expected {expected}, stored: {stored(db)}"


def watch(page: Any, console: bool = True) -> list[str]:
    """Uncaught exceptions of a page (and console errors), collected as they happen."""
    errors: list[str] = []
    if console:
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_purchase_button_with_revenue_shows_in_the_goals_card(
    app: Any, db: Database, browser: Any, live_server: LiveServer, test_site: TestSite
) -> None:
    with db.session() as session:
        # The test site is served from 127.0.0.1, which the site allows besides its domain.
        session.add(Site(domain=SITE, timezone="UTC", allowed_hostnames=["127.0.0.1"]))
    add_user(db, "owner@example.com", PASSWORD)
    script = (
        f'<script defer data-site="{SITE}" data-allow-local '
        f'src="{live_server.url}/tracker.js"></script>'
    )
    button = (
        '<button id="buy" onclick="tracker(\'Purchase\', '
        "{revenue: {amount: '42.50', currency: 'EUR'}})\">Buy now</button>"
    )
    # The empty icon keeps the browser from requesting /favicon.ico (a 404 is a console error).
    url = test_site.page(
        "/checkout",
        f'<!doctype html><html><head><title>Checkout</title><link rel="icon" href="data:,">'
        f"{script}</head><body>{button}</body></html>",
    )

    visitor = browser.new_context()
    page = visitor.new_page()
    errors = watch(page)
    page.goto(url)
    wait_stored(db, ("pageview", "", None, ""))  # the script ran: tracker() is defined
    page.click("#buy")
    wait_stored(db, ("event", "Purchase", 4250, "EUR"))
    visitor.close()
    assert errors == [], "the checkout page logged errors"

    # Defined after the fact: goals are read from stored events.
    with db.session() as session:
        site = session.scalars(select(Site).where(Site.domain == SITE)).one()
        add_goal(
            session, site, name="Purchase", kind="event", event_name="Purchase", currency="EUR"
        )

    owner = logged_in_context(
        browser, live_server, "owner@example.com", viewport={"width": 1280, "height": 900}
    )
    page = owner.new_page()
    # Script errors only: the app has no /favicon.ico, a 404 chromium logs to the console.
    errors = watch(page, console=False)
    page.goto(f"{live_server.url}/sites/{SITE}")
    goals = page.locator("#goals")
    assert goals.locator("h2").text_content() == "Goals"
    goals.locator("tbody tr").first.wait_for()  # the card loads after the page (stats.js)
    [row] = goals.locator("tbody tr").all()
    cells = [c.strip() for c in row.locator("td").all_text_contents()]
    # Goal, converting visitors, conversions, events, conversion rate, revenue.
    assert cells == ["Purchase", "1", "1", "1", "100.0%", "42.50 EUR"]

    # The goal's link switches the page into conversion mode.
    row.locator("a", has_text="Purchase").click()
    page.wait_for_url("**goal=Purchase**")
    labels = [k.strip() for k in page.locator(".kpis .k").all_text_contents()]
    values = [v.strip() for v in page.locator(".kpis .v").all_text_contents()]
    headline = dict(zip(labels, values, strict=True))
    assert headline["Conversions"] == "1" and headline["Conversion rate"] == "100.0%"
    assert headline["Revenue"] == "42.50 EUR"
    assert page.locator(".filters li").inner_text().startswith("Goal is Purchase")
    owner.close()
    assert errors == [], "the stats page raised errors"
