"""Dark mode follows the system setting, and the keyboard reaches the period picker, the
report tabs and the filters with a visible focus; in a real browser at 1440 and 390 px."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.browser import log_in_page
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


def _open(browser, live_server, size, scheme):
    page = browser.new_context(viewport=size, color_scheme=scheme).new_page()
    log_in_page(page, live_server.url, "owner@example.com", PASSWORD)
    page.goto(f"{live_server.url}/sites/{SITE}?source=Google")
    return page


@pytest.mark.parametrize("size", SIZES, ids=["1440", "390"])
def test_dark_mode_and_keyboard_path(app, db, browser, live_server, size):
    moment = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    store_events(app, [{"timestamp": moment, "referrer": "https://www.google.com/"}], site=SITE)
    add_user(db, "owner@example.com", PASSWORD)

    light = _open(browser, live_server, size, "light")
    assert light.evaluate(LUMINANCE, ["body", "backgroundColor"]) > 0.8
    assert light.evaluate(LUMINANCE, [".card", "color"]) < 0.1
    dark = _open(browser, live_server, size, "dark")
    assert dark.evaluate(LUMINANCE, ["body", "backgroundColor"]) < 0.05
    assert dark.evaluate(LUMINANCE, [".card", "backgroundColor"]) < 0.05
    assert dark.evaluate(LUMINANCE, [".card", "color"]) > 0.6
    assert dark.evaluate(LUMINANCE, ["input, textarea", "backgroundColor"]) < 0.05

    reached = []
    for _ in range(120):
        dark.keyboard.press("Tab")
        where, outline, width = dark.evaluate(FOCUSED)
        if where != "other":
            reached.append(where)
            assert outline != "none" and width >= 2, where  # the focus can be seen
        if "tab" in reached:
            break
    assert reached.index("period") < reached.index("filter") < reached.index("tab")
