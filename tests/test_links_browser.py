"""The UTM link builder in a real browser (Debian's chromium): the owner builds a link on a
phone-sized screen, copies and saves it; a visitor opens it on a page carrying the tracker
script; the visit is attributed to exactly that campaign, source, medium and content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.browser import LiveServer, TestSite, logged_in_context, wait_for
from tests.helpers import add_user
from tracker.db import Database
from tracker.db.models import Site, Visit
from tracker.members import OWNER, add_member
from tracker.stats import parse_query, run

# What a browser runs does not depend on the database: SQLite only, to keep the suite quick.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SITE = "shop.test"
PASSWORD = "correct horse"
PHONE = {"width": 390, "height": 844}
DEADLINE = 30.0  # beacons are stored moments after they are answered


def watch(page: Any) -> list[str]:
    """Uncaught exceptions of a page, collected as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def no_sideways_scroll(page: Any) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def visits(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Visit)) or 0


def report(db: Database, site: Site, dimension: str) -> list[tuple[str, int]]:
    args = {"period": "today", "dimension": dimension, "metrics": "visits"}
    return [(row[dimension], row["visits"]) for row in run(db, parse_query(site, args)).rows]


def test_a_built_link_brings_a_visit_to_exactly_its_campaign(
    app: Any, db: Database, browser: Any, live_server: LiveServer, test_site: TestSite
) -> None:
    owner = add_user(db, "owner@example.com", PASSWORD, admin=False)
    with db.session() as session:
        # The test site is served from 127.0.0.1, which the site allows besides its domain.
        site = Site(domain=SITE, timezone="UTC", allowed_hostnames=["127.0.0.1"])
        session.add(site)
        session.flush()
        add_member(session, site, owner, OWNER)
    script = (
        f'<script defer data-site="{SITE}" data-allow-local '
        f'src="{live_server.url}/tracker.js"></script>'
    )
    landing = test_site.page(
        "/landing",
        '<!doctype html><html><head><title>Spring sale</title><link rel="icon" href="data:,">'
        f"{script}</head><body><h1 id='pricing'>Prices</h1></body></html>",
    )

    context = logged_in_context(browser, live_server, "owner@example.com", viewport=PHONE)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    errors = watch(page)
    page.goto(f"{live_server.url}/sites/{SITE}/links")
    assert no_sideways_scroll(page)

    page.fill("input[name=base_url]", f"{landing}?ref=mail#pricing")
    page.fill("input[name=source]", " Newsletter ")
    page.fill("input[name=medium]", "Email")
    page.fill("input[name=campaign]", "Spring Sale 2026")
    page.fill("input[name=content]", "header & hero")
    page.click("button:has-text('Build link')")
    page.wait_for_selector("#built")
    link = page.input_value("#built-link")
    assert link == (
        f"{landing}?ref=mail&utm_source=newsletter&utm_medium=email"
        "&utm_campaign=spring%20sale%202026&utm_content=header%20%26%20hero#pricing"
    )
    assert page.locator(".link-warnings").count() == 0  # 127.0.0.1 is allowed; no data yet
    assert no_sideways_scroll(page)  # the long link stays inside its box

    copy = page.locator("[data-copy=built-link]")
    copy.click()
    # The label changes when the clipboard's promise settles, a moment after the click.
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link

    page.click("button:has-text('Save link')")
    page.wait_for_url("**#saved")
    assert page.locator(".flash").inner_text() == "Link saved."
    # The saved values are lower-case already: the box keeps its default, unticked.
    assert not page.is_checked("input[name=keep_case]")
    [saved] = page.locator("#saved li").all()
    assert saved.locator("input[readonly]").input_value() == link
    assert no_sideways_scroll(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "links-phone.png"), full_page=True)

    visitor = browser.new_context()
    landed = visitor.new_page()
    visitor_errors = watch(landed)
    landed.goto(link)
    assert landed.evaluate("location.hash") == "#pricing"
    assert wait_for(lambda: visits(db) == 1, timeout=DEADLINE), "the visit was not stored"
    visitor.close()

    with db.session() as session:
        site = session.scalars(select(Site).where(Site.domain == SITE)).one()
    assert report(db, site, "visit:utm_campaign") == [("spring sale 2026", 1)]
    assert report(db, site, "visit:utm_source") == [("newsletter", 1)]
    assert report(db, site, "visit:utm_medium") == [("email", 1)]
    assert report(db, site, "visit:utm_content") == [("header & hero", 1)]
    assert report(db, site, "visit:utm_term") == [("", 1)]
    assert report(db, site, "visit:channel") == [("Email", 1)]

    # The stats page's campaigns report shows the one row, and the builder now knows it.
    page.goto(f"{live_server.url}/sites/{SITE}?period=today&sources_tab=campaigns")
    rows = page.locator("#sources table tbody tr").all()
    assert [r.locator("td").first.inner_text().strip() for r in rows] == ["spring sale 2026"]
    assert rows[0].locator("td").nth(1).inner_text().strip() == "1"
    page.click("a:has-text('Campaign links')")
    page.fill("input[name=base_url]", landing)
    page.fill("input[name=source]", "newsletter")
    page.fill("input[name=medium]", "email")
    page.fill("input[name=campaign]", "Spring  Sale 2026")
    page.check("input[name=keep_case]")
    page.click("button:has-text('Build link')")
    warning = page.locator(".link-warnings li")
    assert warning.count() == 1
    assert "from 'spring sale 2026', used in 1 visit of the last 90 days" in warning.inner_text()
    warning.locator("a").click()
    page.wait_for_selector("#built")
    assert page.input_value("#built-link").endswith("utm_campaign=spring%20sale%202026")
    assert page.locator(".link-warnings").count() == 0
    context.close()
    assert errors == [] and visitor_errors == [], "a page raised errors"
