"""Inviting a viewer in a real browser (Debian's chromium): the owner creates an invitation
on the settings page and copies its link; a fresh browser opens it, sets a password and
logs in; the viewer sees that one site only, and no settings or buttons that change it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import LiveServer, logged_in_context
from tests.helpers import add_user, store_events
from tracker.db import Database
from tracker.sites import add_site

# What a browser runs does not depend on the database: SQLite only, to keep the suite quick.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "shop.example"
OWNER_PASSWORD = "owner password"
VIEWER_PASSWORD = "viewer password"


def _log_in(page: Any, email: str, password: str) -> None:
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    page.wait_for_load_state()


def test_owner_invites_a_viewer_who_sees_only_that_site(
    app: Any, db: Database, browser: Any, live_server: LiveServer
) -> None:
    owner = add_user(db, "owner@example.com", OWNER_PASSWORD, admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=owner)
        add_site(session, "private.example", owner=owner)
    store_events(app, [{"url": f"https://{SITE}/pricing"}], site=SITE)
    base = live_server.url

    owners = logged_in_context(browser, live_server, "owner@example.com")
    page = owners.new_page()
    page.goto(f"{base}/sites/{SITE}/settings#members")
    page.fill("#invite input[name=email]", "viewer@example.com")
    page.select_option("#invite-role", "viewer")
    page.click("#invite button")
    link = page.input_value("#invite-link")
    assert link.startswith(f"{base}/invite/")
    assert "viewer@example.com" in page.inner_text("#members table.invitations")
    owners.close()

    fresh = browser.new_context()
    page = fresh.new_page()
    page.goto(link)
    assert "Choose a password for your new account, viewer@example.com." in page.inner_text(
        "#invitation"
    )
    page.fill("input[name=password]", VIEWER_PASSWORD)
    page.fill("input[name=confirm]", VIEWER_PASSWORD)
    page.click("button:has-text('Create my account')")
    page.wait_for_load_state()
    assert "/login" in page.url
    assert "you joined shop.example as viewer" in page.inner_text("main")
    _log_in(page, "viewer@example.com", VIEWER_PASSWORD)

    # The stats page of the site, read-only: no settings, no form but logging out.
    assert page.url == f"{base}/sites/{SITE}"
    assert page.inner_text("section.kpis").startswith("VISITORS\n1")  # CSS upper-cases it
    assert page.locator("a:has-text('Settings')").count() == 0
    assert page.locator("main form[method=post]").count() == 0
    assert page.locator("a:has-text('events.csv')").count() == 1  # viewers read exports

    # Only this site in the list.
    page.goto(f"{base}/sites")
    listed = page.locator("ul.sites h2").all_inner_texts()
    assert listed == [SITE]
    assert "Your role: viewer" in page.inner_text("ul.sites")

    # Settings and another site's pages are closed to the viewer.
    response = page.goto(f"{base}/sites/{SITE}/settings")
    assert response is not None and response.status == 403
    assert "only an admin or an owner of the site may do this" in page.inner_text("main")
    response = page.goto(f"{base}/sites/private.example")
    assert response is not None and response.status == 404

    # The link worked once.
    response = page.goto(link)
    assert response is not None and response.status == 410
    assert "already used" in page.inner_text("main")
    fresh.close()
