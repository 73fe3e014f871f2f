"""Dark mode follows the system setting, and the keyboard reaches the period picker, the
report tabs and the filters with a visible focus; in a real browser at 1440 and 390 px."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.browser import logged_in_context
from tests.helpers import add_user, store_events

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "dark.example"
PASSWORD = "correct horse"
SIZES = [{"width": 1440, "height": 900}, {"width": 390, "height": 844}]
# Relative luminance (0 black .. 1 white) of an element's computed colour property.
LUMINANCE = """([selector, property]) => {
  const [r, g, b] = getComputedStyle(document.querySelector(selector))[property]
    .match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(v => Number(v) / 255)
    .map(c => c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}"""
FOCUSED = """() => {
  const e = document.activeElement, style = getComputedStyle(e);
  const where = e.closest('.periods') ? 'period' : e.closest('.reports .tabs') ? 'tab'
    : e.closest('.filters') ? 'filter' : 'other';
  return [where, style.outlineStyle, parseFloat(style.outlineWidth)];
}"""


@pytest.mark.parametrize("size", SIZES, ids=["1440", "390"])
def test_dark_mode_and_keyboard_path(app, db, browser, live_server, size):
    moment = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    store_events(app, [{"timestamp": moment, "referrer": "https://www.google.com/"}], site=SITE)
    add_user(db, "owner@example.com", PASSWORD)

    context = logged_in_context(
        browser, live_server, "owner@example.com", viewport=size, color_scheme="light"
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/sites/{SITE}?source=Google")
    assert page.evaluate(LUMINANCE, ["body", "backgroundColor"]) > 0.8
    assert page.evaluate(LUMINANCE, [".card", "color"]) < 0.1
    # The system turns dark: the open page follows, with no reload.
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(LUMINANCE, ["body", "backgroundColor"]) < 0.05
    assert page.evaluate(LUMINANCE, [".card", "backgroundColor"]) < 0.05
    assert page.evaluate(LUMINANCE, [".card", "color"]) > 0.6
    assert page.evaluate(LUMINANCE, ["input, textarea", "backgroundColor"]) < 0.05

    reached = []
    for _ in range(120):
        page.keyboard.press("Tab")
        where, outline, width = page.evaluate(FOCUSED)
        if where != "other":
            reached.append(where)
            assert outline != "none" and width >= 2, where  # the focus can be seen
        if "tab" in reached:
            break
    assert reached.index("period") < reached.index("filter") < reached.index("tab")
    context.close()
