"""A small known day of traffic for page tests, and helpers to read numbers off the page.

2026-03-02 (UTC), shop.example: three visits.
  A  news/email/spring campaign: /, 30 s engaged, /pricing, 60 s engaged, outbound click
  B  from Google on a phone: /blog, nothing else (a bounce, duration unknown -> 0)
  C  direct: /, /signup 20 s later, a Signup event with plan=pro
2026-03-01 (the comparison day): one direct bounce on /.
"""

from __future__ import annotations

import html
import re

from tests.helpers import store_events

SITE = "shop.example"
DAY = "period=custom&from=2026-03-02&to=2026-03-02"
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ROOT = f"https://{SITE}/"
CAMPAIGN = ROOT + "?utm_source=news&utm_medium=email&utm_campaign=spring"


def t(hms: str, day: str = "2026-03-02") -> str:
    return f"{day}T{hms}Z"


EVENTS = [
    {"url": ROOT, "timestamp": t("12:00:00", "2026-03-01"), "ip": "198.51.100.9"},
    # A
    {"url": CAMPAIGN, "timestamp": t("09:00:00"), "ip": "203.0.113.1", "pageview_id": "a1"},
    {"type": "engagement", "url": CAMPAIGN, "engaged_ms": 30000, "pageview_id": "a1",
     "timestamp": t("09:00:30"), "ip": "203.0.113.1"},
    {"url": ROOT + "pricing", "referrer": ROOT, "timestamp": t("09:01:00"), "ip": "203.0.113.1",
     "pageview_id": "a2"},
    {"type": "engagement", "url": ROOT + "pricing", "engaged_ms": 60000, "pageview_id": "a2",
     "timestamp": t("09:02:00"), "ip": "203.0.113.1"},
    {"type": "click", "url": ROOT + "pricing", "name": "Outbound Link", "pageview_id": "a2",
     "target": "https://partner.example/deal", "timestamp": t("09:02:10"), "ip": "203.0.113.1"},
    # B
    {"url": ROOT + "blog", "referrer": "https://www.google.com/", "timestamp": t("10:00:00"),
     "ip": "203.0.113.2", "user_agent": PHONE_UA},
    # C
    {"url": ROOT, "timestamp": t("11:00:00"), "ip": "203.0.113.3", "pageview_id": "c1"},
    {"url": ROOT + "signup", "referrer": ROOT, "timestamp": t("11:00:20"), "ip": "203.0.113.3",
     "pageview_id": "c2"},
    {"type": "event", "name": "Signup", "props": {"plan": "pro"}, "url": ROOT + "signup",
     "timestamp": t("11:00:30"), "ip": "203.0.113.3"},
]  # fmt: skip


def store_fixture(app) -> None:
    store_events(app, EVENTS, site=SITE)


KPI_RE = re.compile(
    r'<div class="k">([^<]+)</div><div class="v">([^<]*)</div><div class="c (\w+)">([^<]*)</div>'
)
ROW_RE = re.compile(r"<tr><td title=\"[^\"]*\"><i [^>]*></i>(?:<a href=\"([^\"]*)\">|<span>)"
                    r"([^<]*)</(?:a|span)></td>((?:<td[^>]*>[^<]*</td>)*)</tr>")  # fmt: skip
CELL_RE = re.compile(r"<td[^>]*>([^<]*)</td>")


def kpis(page: str) -> dict[str, tuple[str, str, str]]:
    """{label: (value, change, trend)} of the headline numbers."""
    return {
        html.unescape(k): (html.unescape(v), html.unescape(c).replace("\xa0", ""), trend)
        for k, v, trend, c in KPI_RE.findall(page)
    }


def card(page: str, key: str) -> str:
    start = page.index(f'id="{key}"')
    return page[start : page.index("</section>", start)]


def rows(fragment: str) -> list[tuple[str, ...]]:
    """(label, cell, cell, ...) for each row of the report table in `fragment`."""
    return [
        (html.unescape(label), *(html.unescape(c) for c in CELL_RE.findall(cells)))
        for _url, label, cells in ROW_RE.findall(fragment)
    ]


def row_links(fragment: str) -> dict[str, str]:
    return {html.unescape(label): html.unescape(url) for url, label, _ in ROW_RE.findall(fragment)}
