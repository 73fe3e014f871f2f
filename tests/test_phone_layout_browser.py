"""The stats page laid out on purpose, in a real browser at 390x844 (and 1440x900): nothing
overlaps or spills sideways: chart axis labels, legend, period picker, headline numbers and
every report column, bounce rate included."""

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

SITE = "phone.example"
PASSWORD = "correct horse"
PAGES = ["/", "/pricing", "/blog/a-rather-long-article-title-for-a-phone", "/docs/install"]
SOURCES = ["https://www.google.com/", "https://news.ycombinator.com/", ""]

# The boxes of `selector` (visible ones only), as [left, top, right, bottom].
BOXES = """selector => [...document.querySelectorAll(selector)]
  .filter(e => e.offsetParent !== null)
  .map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"""


def _traffic(app) -> None:
    now = datetime.now(UTC)
    events = []
    for day in range(1, 30):
        for n in range(day % 4 + 1):
            moment = (now - timedelta(days=day, minutes=n)).isoformat()
            ip = f"198.51.{day}.{n}"
            landing = f"https://{SITE}{PAGES[n % 4]}?utm_campaign=spring-sale-{n}"
            events.append({"timestamp": moment, "ip": ip, "url": landing,
                           "referrer": SOURCES[(day + n) % 3]})  # fmt: skip
            if n % 2:
                later = (now - timedelta(days=day, minutes=n) + timedelta(seconds=40)).isoformat()
                events.append({"timestamp": later, "ip": ip, "url": f"https://{SITE}{PAGES[1]}"})
    store_events(app, events, site=SITE)


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5


def _any_overlap(boxes: list[list[float]]) -> bool:
    return any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def _inside(box: list[float], outer: list[float]) -> bool:
    return box[0] >= outer[0] - 0.5 and box[2] <= outer[2] + 0.5


@pytest.mark.parametrize(
    "size", [{"width": 390, "height": 844}, {"width": 1440, "height": 900}], ids=["390", "1440"]
)
def test_nothing_overlaps(app, db, browser, live_server, size):
    _traffic(app)
    add_user(db, "owner@example.com", PASSWORD)
    context = logged_in_context(browser, live_server, "owner@example.com", viewport=size)
    page = context.new_page()
    page.goto(f"{live_server.url}/sites/{SITE}?period=30d")
    assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]

    periods = page.evaluate(BOXES, ".periods a")
    assert len({round(box[1]) for box in periods}) == 1  # one row, before any number
    kpis = page.evaluate(BOXES, ".kpis > a")
    assert len(kpis) == 6 and not _any_overlap(kpis)

    labels = page.evaluate(BOXES, ".xaxis span")
    assert len(labels) >= 3 and not _any_overlap(labels)
    assert all(_inside(label, [0, 0, size["width"], 0]) for label in labels)
    legend = page.locator(".legend span").all()
    assert legend and all(
        item.evaluate("e => e.getClientRects().length") == 1 for item in legend
    )  # each legend entry on one line: wrapped between entries, never inside one

    for card in page.locator("section.report").all():
        if not card.locator("table.rows").count():
            continue
        box = card.bounding_box()
        assert box is not None
        outer = [box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]]
        headings = card.evaluate(
            "c => [...c.querySelectorAll('table.rows th')].filter(e => e.offsetParent)"
            ".map(e => {"
            " const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"
        )
        assert not _any_overlap(headings), card.get_attribute("id")
        assert all(_inside(h, outer) for h in headings), card.get_attribute("id")
        assert card.evaluate("c => c.scrollWidth <= c.clientWidth"), card.get_attribute("id")
    sources = page.locator("#sources table.rows th")
    assert sources.last.inner_text().lower() == "bounce rate"
    assert sources.last.is_visible()
    # The pages report keeps scroll depth and bounce rate; pageviews only on a wide screen.
    shown = [h.inner_text().lower() for h in page.locator("#pages table.rows th").all()
             if h.is_visible()]  # fmt: skip
    assert "scroll depth" in shown and "bounce rate" in shown
    assert ("pageviews" in shown) == (size["width"] > 640)
    context.close()
