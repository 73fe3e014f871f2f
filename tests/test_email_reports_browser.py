"""Email reports and alerts in a real browser (Debian's chromium), on a phone (390 px) and a
desktop (1440 px): an admin adds a recipient and an alert, previews the report and sends
a test that a real SMTP server receives; nothing is wider than the screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.browser import LiveServer, logged_in_context
from tests.helpers import add_user, store_events
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
PASSWORD = "owner password"
WIDTHS = (390, 1440)


@pytest.fixture
def app(make_app: Callable[..., Flask], smtp_server: SmtpServer) -> Flask:
    """The live server's app, with mail going to the test's SMTP server."""
    return make_app(**smtp_server.settings())


def _overflow(page: Any, selector: str = "body") -> int:
    """How many CSS pixels the selected part reaches past the window's right edge (0: it
    fits)."""
    return int(
        page.evaluate(
            """(selector) => Math.max(0, ...[...document.querySelectorAll(selector + ' *')]
                .map(e => Math.ceil(e.getBoundingClientRect().right - window.innerWidth)))""",
            selector,
        )
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_admin_sets_up_reports_and_alerts(
    app: Flask,
    db: Database,
    browser: Any,
    live_server: LiveServer,
    smtp_server: SmtpServer,
    width: int,
) -> None:
    owner = add_user(db, "owner@example.com", PASSWORD, admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=owner)
    store_events(app, [{"url": f"https://{SITE}/pricing", "timestamp": "2026-03-02T09:00:00Z"}],
                 site=SITE)  # fmt: skip
    context = logged_in_context(
        browser, live_server, "owner@example.com", viewport={"width": width, "height": 900}
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/sites/{SITE}/settings#email-reports")
    assert "Nobody receives reports yet." in page.inner_text("#email-reports")
    page.fill("#add-recipient input[name=email]", "team@example.com")
    page.check("#add-recipient input[name=monthly]")
    page.check("#add-recipient input[name=alerts]")
    page.click("#add-recipient button")
    page.wait_for_load_state()
    assert "team@example.com" in page.inner_text("#recipients")
    assert "weekly report, monthly report, alerts" in page.inner_text("#recipients")

    page.select_option("#add-alert select[name=kind]", "spike")
    page.fill("#add-alert input[name=threshold]", "40")
    page.click("#add-alert button")
    page.wait_for_load_state()
    assert "Traffic spike: more than 40 current visitors" in page.inner_text("#alerts")
    assert _overflow(page, "#email-reports") == 0
    assert _overflow(page, "#alerts") == 0

    page.click("#email-reports button:has-text('Send me a test now')")
    page.wait_for_load_state()
    assert "on its way to owner@example.com" in page.inner_text("main")
    assert drain(db, app.extensions["tracker.settings"]).sent == 1
    [message] = smtp_server.inbox.to("owner@example.com")
    assert message["Subject"].startswith("[Test] Weekly report for shop.example")

    page.goto(f"{live_server.url}/sites/{SITE}/settings/email/preview?kind=monthly")
    assert "Monthly report" in page.inner_text("body")
    assert "Open the stats page for this period" in page.inner_text("body")
    assert _overflow(page) == 0
    context.close()
