"""The site settings page's audit log on a phone (390 px, real chromium): every element of
the section fits the viewport, long addresses and details wrapped, nothing scrolled."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import LiveServer, logged_in_context
from tests.helpers import add_user
from tracker import audit
from tracker.db import Database
from tracker.db.models import User
from tracker.sites import add_site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "phone.example"
OWNER, PASSWORD = "campaign.manager@a-rather-long-agency-name.example", "correct horse"
PHONE = {"width": 390, "height": 844}
# Left and right edges of every visible element of the section.
EDGES = """() => [...document.querySelectorAll('#audit, #audit *')]
  .filter(e => e.getClientRects().length > 0)
  .map(e => { const r = e.getBoundingClientRect(); return [e.tagName, r.left, r.right]; })"""


def test_the_audit_log_fits_a_phone(db: Database, browser: Any, live_server: LiveServer) -> None:
    owner = add_user(db, OWNER, PASSWORD, admin=False)
    with db.session() as session:
        user = session.get(User, owner.id)
        site = add_site(session, SITE, owner=user)
        audit.record(
            session,
            user,
            site,
            "invite.create",
            "Invited analytics.contractor@another-long-agency.example as viewer",
        )
        audit.record(
            session,
            None,
            site,
            "cost.import",
            "Imported 1,234 cost rows from google-ads-export-2026-11-spring_sale_final.csv",
        )
    context = logged_in_context(browser, live_server, OWNER, viewport=PHONE)
    page = context.new_page()
    page.goto(f"{live_server.url}/sites/{SITE}/settings")
    edges = page.evaluate(EDGES)
    assert len(edges) > 10
    outside = [e for e in edges if e[1] < -0.5 or e[2] > PHONE["width"] + 0.5]
    assert outside == []
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    text = page.inner_text("#audit table")
    assert OWNER in text and "google-ads-export-2026-11-spring_sale_final.csv" in text
    context.close()
