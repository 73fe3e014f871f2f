"""The Content-Security-Policy in a real browser (Debian's chromium): every page works under
it with no violation in the console, and it does block an inline script."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import LiveServer
from tests.helpers import add_user
from tests.stats_fixture import DAY, SITE, store_fixture
from tracker.db import Database
from tracker.goals import add_goal
from tracker.members import OWNER, add_member
from tracker.sites import create_share_link, find_site

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]
PASSWORD = "correct horse"
# Reported by the page itself, before its own scripts run (Playwright's init scripts are
# not subject to the page's policy).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def _watch(page: Any) -> list[str]:
    """Console messages about the policy, console errors and uncaught exceptions."""
    problems: list[str] = []

    def on_console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            problems.append(text)
        elif message.type == "error" and "favicon.ico" not in (message.location or {}).get(
            "url", ""
        ):
            problems.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.add_init_script(RECORD_VIOLATIONS)
    return problems


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__violations") == [], url


def test_pages_work_under_the_policy_without_violations(
    app: Any, db: Database, browser: Any, live_server: LiveServer
) -> None:
    owner = add_user(db, "owner@example.com", PASSWORD)
    store_fixture(app)
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
        add_member(session, site, owner, OWNER)
        add_goal(session, site, name="Signup", kind="event", event_name="Signup")
        token = create_share_link(session, site, "Agency").token
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = _watch(page)

    _open(page, f"{base}/login")
    page.fill("input[name=email]", "owner@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base}/sites")
    # sites.js, no longer an inline onclick: a click selects the whole script tag.
    snippet = page.locator("textarea.snippet").first
    snippet.click()
    selected = page.evaluate("(t) => t.value.slice(t.selectionStart, t.selectionEnd)",
                             snippet.element_handle())  # fmt: skip
    assert selected.startswith("<script defer") and selected.endswith("</script>")

    _open(page, f"{base}/sites/{SITE}?{DAY}")
    # stats.js: the goals card is fetched and put in place, the chart answers a hover.
    page.wait_for_selector("#goals tbody tr")
    page.locator(".chart .hit").nth(10).hover()
    assert page.locator(".chart .tip").is_visible()
    for path in ("/realtime", "/settings", "/links"):
        _open(page, f"{base}/sites/{SITE}{path}")

    # The policy is really enforced: an inline script put into the page does not run.
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__ran = true"; document.body.appendChild(s); }"""
    )
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.__ran") is None
    assert page.evaluate("window.__violations")[0].startswith("script-src")
    problems.clear()  # that violation was the point

    shared = browser.new_context().new_page()
    shared_problems = _watch(shared)
    _open(shared, f"{base}/share/{token}?{DAY}")
    shared.wait_for_selector("#goals tbody tr")
    assert problems == [] and shared_problems == []
    context.close()
