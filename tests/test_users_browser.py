"""The page of users in a real browser (Debian's chromium), on a phone: a server
administrator adds a user and copies the password link; a fresh browser opens it, chooses
the password and logs in; the administrator deletes another account from its row. The page
fits 390 px, its table scrolling inside its card."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import LiveServer, log_in_page, logged_in_context
from tests.helpers import add_user
from tracker.accounts import find_user
from tracker.db import Database

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ROOT, ROOT_PASSWORD = "root@example.com", "root password"
NEW, NEW_PASSWORD = "analyst@example.com", "analyst password"
PHONE = {"width": 390, "height": 844}


def test_an_administrator_adds_a_user_who_sets_a_password_and_logs_in(
    db: Database, browser: Any, live_server: LiveServer
) -> None:
    add_user(db, ROOT, ROOT_PASSWORD, admin=True)
    leaving = add_user(
        db, "contractor.with.a.long.address@agency.example", "x password", admin=False
    )
    base = live_server.url

    admins = logged_in_context(browser, live_server, ROOT, viewport=PHONE)
    page = admins.new_page()
    page.goto(f"{base}/sites")
    page.click("header a:has-text('Users')")
    page.wait_for_url(f"{base}/admin/users")  # loaded, styles applied, before measuring
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.fill("#add-user-form input[name=email]", NEW)
    page.click("#add-user-form button")
    assert "No mail server is set up" in page.inner_text("#new-link")
    link = page.input_value("#password-link")
    assert link.startswith(f"{base}/reset/")
    assert "no password chosen yet" in page.inner_text("#users table")

    newcomer = browser.new_context()
    theirs = newcomer.new_page()
    theirs.goto(link)
    assert theirs.inner_text("h1") == "Choose your password"
    theirs.fill("input[name=password]", NEW_PASSWORD)
    theirs.fill("input[name=confirm]", NEW_PASSWORD)
    theirs.click("button:has-text('Set my password')")
    assert theirs.url.startswith(f"{base}/login")
    assert f"Your password is set. Log in as {NEW} with it." in theirs.inner_text(".flash")
    log_in_page(theirs, base, NEW, NEW_PASSWORD)
    theirs.wait_for_load_state()
    assert theirs.url == f"{base}/sites"
    assert theirs.inner_text("header nav a[title='Your account']") == NEW
    assert theirs.locator("header a:has-text('Users')").count() == 0
    newcomer.close()

    page.goto(f"{base}/admin/users")
    assert "no password chosen yet" not in page.inner_text("#users table")
    row = page.locator(f"#user-{leaving.id}")
    row.locator("summary").click()
    row.locator("input[name=confirm]").fill(leaving.email)
    row.locator("button:has-text('Delete account')").click()
    page.wait_for_load_state()
    assert f"Deleted the account {leaving.email}" in page.inner_text(".flash")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    admins.close()
    with db.session() as session:
        assert find_user(session, leaving.email) is None
        assert find_user(session, NEW) is not None
