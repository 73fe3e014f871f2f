"""The account page in a real browser (Debian's chromium): an API key created, used and
revoked; two-factor login set up from the QR page and used to log in with a code made here
(pyotp) and with a recovery code; the page on a phone; a forgotten password reset through a
link mailed to a real SMTP server."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask

from tests.browser import LiveServer, logged_in_context
from tests.helpers import add_user
from tests.mailserver import SmtpServer
from tracker.db import Database
from tracker.mail import drain
from tracker.sites import add_site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "shop.example"
EMAIL, PASSWORD = "owner@example.com", "owner password"
MAILED_BASE = "https://stats.example.org"  # base_url: links in mails; the test opens them here


def _log_in(page: Any, base: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    page.wait_for_load_state()


def _log_out(page: Any) -> None:
    page.click("header button:has-text('Log out')")
    page.wait_for_load_state()


def _api(base: str, key: str, path: str, body: dict[str, Any] | None = None) -> int:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_an_api_key_is_created_used_and_revoked(
    db: Database, browser: Any, live_server: LiveServer
) -> None:
    owner = add_user(db, EMAIL, PASSWORD, admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=owner)
    base = live_server.url
    context = logged_in_context(browser, live_server, EMAIL)
    page = context.new_page()
    page.goto(f"{base}/sites")
    page.click(f"header a:has-text('{EMAIL}')")
    assert page.url == f"{base}/account"
    assert page.inner_text("#api-keys .empty") == "No API keys yet."
    page.fill("#create-key input[name=name]", "Sheet")
    page.select_option("#create-key select[name=scope]", "read")
    page.click("#create-key button")
    key = page.input_value("#new-key-value")
    assert key.startswith("trk_")
    cells = page.locator("#api-keys table.keys tbody tr td").all_inner_texts()
    assert (cells[0], cells[2], cells[4]) == ("Sheet", "read", "never")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # fits a phone
    page.set_viewport_size({"width": 1440, "height": 900})

    assert _api(base, key, f"/api/v1/goals?site_id={SITE}") == 200
    cost = {"site_id": SITE, "rows": []}
    assert _api(base, key, "/api/v1/costs", cost) == 403
    page.goto(f"{base}/account")
    assert page.locator("#new-key-value").count() == 0  # shown once
    assert "UTC" in page.inner_text("#api-keys table.keys tbody tr td:nth-child(5)")

    page.click("#api-keys button:has-text('Revoke')")
    page.wait_for_load_state()
    assert "revoked" in page.inner_text("main")
    assert page.inner_text("#api-keys .empty") == "No API keys yet."
    assert _api(base, key, f"/api/v1/goals?site_id={SITE}") == 401
    context.close()


def test_two_factor_set_up_then_code_and_recovery_logins(
    db: Database, browser: Any, live_server: LiveServer
) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    base = live_server.url
    context = logged_in_context(browser, live_server, EMAIL, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{base}/account")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # fits a phone
    page.click("a:has-text('Set up two-factor login')")
    qr = page.locator("#enrol .qr svg").bounding_box()
    assert qr is not None and qr["width"] >= 120 and qr["height"] == qr["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    totp = pyotp.TOTP(page.input_value("#totp-secret"))
    page.fill("#enrol input[name=code]", totp.now())
    page.fill("#enrol input[name=password]", PASSWORD)
    page.click("button:has-text('Turn on two-factor login')")
    page.wait_for_load_state()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.click("a:has-text('I have saved them')")
    assert "On." in page.inner_text("#two-factor")
    _log_out(page)

    _log_in(page, base)
    assert page.url == f"{base}/login/code"
    # The code of the next time step (an app a little ahead): the current one was taken.
    page.fill("input[name=code]", totp.at(datetime.now(UTC) + timedelta(seconds=30)))
    page.click("button:has-text('Log in')")
    page.wait_for_load_state()
    assert page.url == f"{base}/sites"
    _log_out(page)

    _log_in(page, base)
    page.fill("input[name=code]", codes[0])
    page.click("button:has-text('Log in')")
    page.wait_for_load_state()
    assert page.url == f"{base}/sites"
    page.goto(f"{base}/account")
    assert "Recovery codes left: 9" in page.inner_text("#two-factor")
    _log_out(page)

    _log_in(page, base)
    page.fill("input[name=code]", codes[0])  # used
    page.click("button:has-text('Log in')")
    page.wait_for_load_state()
    assert page.url == f"{base}/login/code"
    assert "That code is not right, or was used already." in page.inner_text("#login-code")
    context.close()


def test_forgotten_password_reset_by_a_mailed_link(
    make_app: Callable[..., Flask], smtp_server: SmtpServer, browser: Any
) -> None:
    app = make_app(**smtp_server.settings(base_url=MAILED_BASE))
    add_user(app.extensions["tracker.db"], EMAIL, PASSWORD, admin=False)
    server = LiveServer(app)
    try:
        context = browser.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.goto(f"{server.url}/login")
        page.click("a:has-text('Forgot password?')")
        page.fill("input[name=email]", EMAIL)
        page.click("button:has-text('Mail me a link')")
        page.wait_for_load_state()
        assert "If an account uses that address" in page.inner_text("#forgot")
        drain(app.extensions["tracker.db"], app.extensions["tracker.settings"])
        [message] = smtp_server.inbox.to(EMAIL)
        link = re.search(re.escape(MAILED_BASE) + r"(/reset/\S+)", message.get_content())
        assert link is not None
        page.goto(server.url + link[1])
        page.fill("input[name=password]", "a new password")
        page.fill("input[name=confirm]", "a new password")
        page.click("button:has-text('Set my new password')")
        page.wait_for_load_state()
        assert "Your new password is set" in page.inner_text("main")
        _log_in(page, server.url, "a new password")
        assert page.url == f"{server.url}/sites"
        page.goto(server.url + link[1])
        assert "was used already" in page.inner_text("#reset")
        context.close()
    finally:
        server.stop()
