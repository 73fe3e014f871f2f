"""The beacon in a real browser: a test site on one origin, the collector on another.

Each test loads pages that carry the script tag, acts like a visitor, then asserts on what the
collector stored. The beacon itself is the subject, so one database backend is enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from tests.browser import CHROMIUM, LAUNCH_ARGS, USER_AGENT, LiveServer, TestSite, wait_for
from tracker.db import Database
from tracker.db.models import Event, Site, Visit
from tracker.web.beacon import BEACON_PATH

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "shop.test"
QUEUE_SNIPPET = (
    "<script>window.tracker=window.tracker||function(){(tracker.q=tracker.q||[]).push(arguments)}"
    "</script>"
)


@dataclass
class Visitor:
    """One browser context and page, with what the page logged and requested."""

    context: Any
    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)


@pytest.fixture
def collector(live_server: LiveServer, db: Database) -> LiveServer:
    with db.session() as session:
        # The test site is served from 127.0.0.1, which the site allows besides its domain.
        session.add(Site(domain=SITE, timezone="UTC", allowed_hostnames=["127.0.0.1"]))
    return live_server


@pytest.fixture
def partner_site() -> Iterator[TestSite]:
    """Another site (another host: port) that pages link out to."""
    site = TestSite()
    yield site
    site.server.stop()


@pytest.fixture
def visit(browser: Any) -> Iterator[Callable[..., Visitor]]:
    """Open a visitor's page; any console error or uncaught exception fails the test."""
    visitors: list[Visitor] = []

    def open_page(**context_options: Any) -> Visitor:
        context = browser.new_context(**context_options)
        page = context.new_page()
        visitor = Visitor(context, page)
        page.on("console", lambda m: m.type == "error" and visitor.errors.append(m.text))
        page.on("pageerror", lambda exc: visitor.errors.append(str(exc)))
        page.on("request", lambda request: visitor.requests.append(request))
        visitors.append(visitor)
        return visitor

    yield open_page
    for visitor in visitors:
        visitor.context.close()
    assert [e for v in visitors for e in v.errors] == [], "the host page logged errors"


def tag(collector: LiveServer, **attrs: str | bool) -> str:
    """The script tag, as the README gives it, plus data- attributes (True: present, empty)."""
    extra = "".join(
        f" data-{name.replace('_', '-')}" + ("" if value is True else f'="{value}"')
        for name, value in {"allow_local": True, **attrs}.items()
        if value is not False
    )
    return f'<script defer data-site="{SITE}"{extra} src="{collector.url}/tracker.js"></script>'


def html(title: str, head: str, body: str = "") -> str:
    # The empty icon keeps the browser from requesting /favicon.ico (a 404 is a console error).
    return (
        f'<!doctype html><html><head><title>{title}</title><link rel="icon" href="data:,">'
        f"{head}</head><body>{body}</body></html>"
    )


def events(db: Database, kind: str | None = None) -> list[Event]:
    query = select(Event).order_by(Event.id)
    if kind:
        query = query.where(Event.kind == kind)
    with db.session() as session:
        return list(session.scalars(query))


def wait_events(db: Database, count: int, kind: str | None = None) -> list[Event]:
    """The stored events once at least `count` (of `kind`) arrived; beacons are asynchronous."""
    found = wait_for(lambda: len(rows := events(db, kind)) >= count and rows)
    assert found, f"expected {count} {kind or 'events'}, stored: {describe(events(db))}"
    return found


def describe(rows: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.kind, e.path, e.name) for e in rows]


def pageview_row(db: Database, pageview_id: str) -> Event:
    """A pageview as stored now: engagement beacons update its engaged_ms and scroll (maxima)."""
    with db.session() as session:
        return session.scalars(
            select(Event).where(Event.kind == "pageview", Event.pageview_id == pageview_id)
        ).one()


def test_pageview_with_referrer_utm_and_page_details(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    url = test_site.page("/landing", html("Spring sale", tag(collector)))
    visitor = visit(viewport={"width": 1111, "height": 700})
    visitor.page.goto(
        url + "?utm_source=newsletter&utm_medium=email&utm_campaign=spring#top",
        referer="https://news.example/article?id=3",
    )

    [pageview] = wait_events(db, 1)
    assert pageview.kind == "pageview"
    assert (pageview.hostname, pageview.path) == ("127.0.0.1", "/landing")
    assert pageview.query == "utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    # The collector keeps a referrer's origin and path, not its query string.
    assert pageview.referrer == "https://news.example/article"
    assert pageview.title == "Spring sale"
    assert len(pageview.pageview_id) >= 8
    with db.session() as session:
        [stored_visit] = session.scalars(select(Visit)).all()
    assert (stored_visit.utm_source, stored_visit.utm_medium, stored_visit.utm_campaign) == (
        "newsletter",
        "email",
        "spring",
    )
    assert (stored_visit.entry_page, stored_visit.source) == ("/landing", "Newsletter")
    # The fragment is not the route here, and may hold secrets: it never leaves the page.
    posted = [r.post_data for r in visitor.requests if r.method == "POST"]
    assert posted and not any("#top" in body for body in posted)


def test_spa_push_replace_and_back(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    url = test_site.page("/app/", html("App", tag(collector)))
    page = visit().page
    page.goto(url)
    wait_events(db, 1, "pageview")

    # Each step waits for its pageview: beacons are separate requests, arriving in any order.
    page.evaluate("history.pushState({}, '', '/app/products')")
    wait_events(db, 2, "pageview")
    page.evaluate("history.replaceState({}, '', '/app/products?sort=price')")  # same path
    page.evaluate("history.pushState({}, '', '/app/products?sort=price#reviews')")  # same path
    page.evaluate("history.replaceState({}, '', '/app/cart')")
    wait_events(db, 3, "pageview")
    # History now: /app/, /app/products?sort=price, /app/cart (it replaced #reviews).
    page.go_back()  # popstate to /app/products?sort=price
    wait_events(db, 4, "pageview")
    page.go_back()  # popstate to /app/

    pageviews = wait_events(db, 5, "pageview")
    assert [(e.path, e.query) for e in pageviews] == [
        ("/app/", ""),
        ("/app/products", ""),
        ("/app/cart", ""),
        ("/app/products", "sort=price"),
        ("/app/", ""),
    ]
    assert len({e.pageview_id for e in pageviews}) == 5
    # Each page left by a route change reported its engagement; the open one not yet. The
    # last page left reports in a beacon of its own, which may arrive after the next page's.
    wait_for(lambda: events(db, "pageview")[3].engaged_ms is not None)
    engaged = [e.engaged_ms is not None for e in events(db, "pageview")]
    assert engaged == [True, True, True, True, False]


def test_hash_routing_counts_fragment_routes(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    url = test_site.page("/", html("Hash app", tag(collector, hash=True)))
    page = visit().page
    page.goto(url + "#/home")
    wait_events(db, 1, "pageview")
    page.evaluate("location.hash = '#/pricing'")
    wait_events(db, 2, "pageview")
    page.evaluate("history.pushState({}, '', '/#/signup')")
    wait_events(db, 3, "pageview")  # stored before the next beacon leaves: order is known
    page.go_back()

    pageviews = wait_events(db, 4, "pageview")
    assert [e.path for e in pageviews] == ["/#/home", "/#/pricing", "/#/signup", "/#/pricing"]


def test_outbound_and_download_clicks_let_navigation_happen(
    collector: LiveServer,
    test_site: TestSite,
    partner_site: TestSite,
    db: Database,
    visit: Callable[..., Visitor],
):
    partner = partner_site.page("/offer", html("Partner", "")) + "?ref=shop"
    body = (
        f'<a id="out" href="{partner}">partner</a>'
        f'<a id="blank" href="{partner}" target="_blank">partner in a new tab</a>'
        f'<a id="prevented" href="{partner}" onclick="event.preventDefault()">handled</a>'
        '<a id="pdf" href="/files/price-list.pdf">price list</a>'
        '<a id="same" href="/about">about</a>'
        '<a id="mail" href="mailto:sales@shop.test">mail</a>'
    )
    url = test_site.page("/", html("Shop", tag(collector), body))
    test_site.page("/files/price-list.pdf", b"%PDF-1.4 test", "application/octet-stream")
    test_site.page("/about", html("About", ""))
    visitor = visit()
    page = visitor.page
    page.goto(url)
    wait_events(db, 1, "pageview")

    with page.expect_download() as download:
        page.click("#pdf")
    assert download.value.url == test_site.url + "/files/price-list.pdf"
    # Each new tab went to the partner: its navigation committed (a tab opened in the
    # background may put off its load event, and once did past 30 s in a loaded full run).
    with visitor.context.expect_page() as popup:
        page.click("#blank")
    popup.value.wait_for_url(partner, wait_until="commit")
    with visitor.context.expect_page() as popup:
        page.click("#out", button="middle")
    popup.value.wait_for_url(partner, wait_until="commit")
    with visitor.context.expect_page() as popup:
        page.click("#out", modifiers=["Control"])
    popup.value.wait_for_url(partner, wait_until="commit")
    page.click("#prevented")  # the page's own handler decides: it stays here
    page.click("#mail")
    assert page.url == url
    page.click("#same")  # internal link: a normal navigation, no click event
    page.wait_for_url(test_site.url + "/about")
    page.go_back()
    with page.expect_navigation():
        page.click("#out")
    assert page.url == partner

    clicks = wait_events(db, 6, "click")
    # Each beacon is its own request: they may arrive in any order.
    assert sorted((e.name, e.target) for e in clicks) == [
        ("File Download", test_site.url + "/files/price-list.pdf"),
        ("Outbound Link", partner),
        ("Outbound Link", partner),
        ("Outbound Link", partner),
        ("Outbound Link", partner),
        ("Outbound Link", partner),
    ]
    pageviews = events(db, "pageview")
    assert [e.path for e in pageviews] == ["/", "/"]  # /about has no tag; back reloads /
    assert {e.pageview_id for e in clicks[:5]} == {pageviews[0].pageview_id}
    assert clicks[5].pageview_id == pageviews[1].pageview_id


def test_data_api_and_data_downloads_configure_the_script(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    # Self-hosted copy of the script (first-party path), posting to the collector by data-api.
    test_site.page("/js/t.js", BEACON_PATH.read_bytes(), "application/javascript")
    head = (
        f'<script defer data-site="{SITE}" data-allow-local data-api="{collector.url}/api/event"'
        ' data-downloads="epub,mobi" src="/js/t.js"></script>'
    )
    body = '<a id="pdf" href="/guide.pdf">pdf</a><a id="epub" href="/guide.epub">epub</a>'
    test_site.page("/guide.pdf", b"%PDF", "application/octet-stream")
    test_site.page("/guide.epub", b"epub", "application/octet-stream")
    page = visit().page
    page.goto(test_site.page("/", html("Guide", head, body)))
    wait_events(db, 1, "pageview")
    for link in ("#pdf", "#epub"):
        with page.expect_download():
            page.click(link)

    [click] = wait_events(db, 1, "click")
    assert (click.name, click.target) == ("File Download", test_site.url + "/guide.epub")
    page.wait_for_timeout(300)  # time for a click on the .pdf link to arrive, were it sent
    assert len(events(db, "click")) == 1


def test_tagged_elements_and_js_api_send_named_events_with_props(
    collector: LiveServer,
    test_site: TestSite,
    partner_site: TestSite,
    db: Database,
    visit: Callable[..., Visitor],
):
    partner = partner_site.page("/", html("Partner", ""))
    body = (
        '<button data-track="Signup" data-track-plan="pro" data-track-billing-period="yearly">'
        '<span id="inside">Start trial</span></button>'
        f'<a id="tagged-link" href="{partner}" data-track="Partner">partner</a>'
    )
    url = test_site.page("/pricing", html("Pricing", tag(collector), body))
    visitor = visit()
    page = visitor.page
    page.goto(url)
    [pageview] = wait_events(db, 1, "pageview")

    page.click("#inside")
    page.evaluate("tracker('Purchase', {props: {amount: 42, currency: 'EUR', paid: true}})")
    page.evaluate("tracker('Newsletter')")
    with page.expect_navigation():
        page.click("#tagged-link")  # tagged: its name replaces the automatic outbound click

    named = wait_events(db, 4, "event")
    # Each beacon is its own request: they may arrive in any order (seen once in CI).
    assert sorted(((e.name, e.props) for e in named), key=lambda pair: pair[0]) == [
        ("Newsletter", None),
        ("Partner", None),
        ("Purchase", {"amount": "42", "currency": "EUR", "paid": "true"}),
        ("Signup", {"plan": "pro", "billing-period": "yearly"}),
    ]
    assert {e.pageview_id for e in named} == {pageview.pageview_id}
    assert all(e.path == "/pricing" for e in named)
    assert events(db, "click") == []


def test_js_api_sends_revenue_with_the_event(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    url = test_site.page("/checkout/done", html("Thanks", tag(collector)))
    page = visit().page
    page.goto(url)
    wait_events(db, 1, "pageview")
    page.evaluate(
        "tracker('Purchase', {revenue: {amount: 42.5, currency: 'EUR'}, props: {plan: 'pro'}});"
        "tracker('Purchase', {revenue: {amount: '1000', currency: 'JPY'}})"
    )
    purchases = wait_events(db, 2, "event")
    assert sorted((e.revenue_minor, e.revenue_currency, e.props) for e in purchases) == [
        (1000, "JPY", None),
        (4250, "EUR", {"plan": "pro"}),
    ]


def test_fetch_keepalive_carries_events_when_send_beacon_refuses(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    visitor = visit()
    # sendBeacon answers false when the browser will not queue the data (quota reached).
    visitor.context.add_init_script("navigator.sendBeacon = () => false")
    page = visitor.page
    page.goto(test_site.page("/", html("Fallback", tag(collector))))
    page.evaluate("tracker('Fallback')")

    stored = wait_events(db, 2)
    assert sorted((e.kind, e.name) for e in stored) == [("event", "Fallback"), ("pageview", "")]
    posts = [r for r in visitor.requests if r.method == "POST"]
    assert [r.resource_type for r in posts] == ["fetch", "fetch"]


def test_tagged_form_counts_on_submit_not_on_clicks_inside(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    body = (
        '<form action="/thanks" data-track="Contact" data-track-topic="sales">'
        '<input name="email" required><button id="send">Send</button></form>'
    )
    test_site.page("/thanks", html("Thanks", ""))
    page = visit().page
    page.goto(test_site.page("/contact", html("Contact", tag(collector), body)))
    wait_events(db, 1, "pageview")
    page.click("input")
    page.click("#send")  # the required field is empty: the browser does not submit
    page.fill("input", "a@b.example")
    with page.expect_navigation():
        page.click("#send")

    [event] = wait_events(db, 1, "event")
    assert (event.name, event.props, event.path) == ("Contact", {"topic": "sales"}, "/contact")
    assert page.url == test_site.url + "/thanks?email=a%40b.example"


def test_calls_queued_before_the_script_loads_are_sent(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    head = (
        QUEUE_SNIPPET
        + "<script>tracker('Early', {props: {step: '1'}}); tracker('Earlier still?')</script>"
        + tag(collector)
        + tag(collector)  # pasted twice: still counted once
    )
    page = visit().page
    page.goto(test_site.page("/", html("Queue", head)))

    stored = wait_events(db, 3)
    # Each beacon is its own request: they may arrive in any order.
    assert sorted((e.kind, e.name, str(e.props)) for e in stored) == [
        ("event", "Earlier still?", "None"),
        ("event", "Early", "{'step': '1'}"),
        ("pageview", "", "None"),
    ]
    assert len({e.pageview_id for e in stored}) == 1
    page.wait_for_timeout(300)  # time for a second copy's beacons, were it running
    assert len(events(db)) == 3


# Hides or shows the page as the browser would (headless chromium is always visible and
# focused). Answers the page's clock just before and just after: the beacon's own clock read
# lies between the two.
SET_VISIBILITY = """hidden => {
    const before = performance.now();
    Object.defineProperty(document, 'visibilityState',
        {configurable: true, get: () => hidden ? 'hidden' : 'visible'});
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
    document.dispatchEvent(new Event('visibilitychange'));
    return [before, performance.now()];
}"""
SET_FOCUS = """focused => {
    const before = performance.now();
    document.hasFocus = () => focused;
    window.dispatchEvent(new Event(focused ? 'focus' : 'blur'));
    return [before, performance.now()];
}"""
# The page records, on the test site, each beacon the script sends with the page's clock
# just after the script read its own, and when the page is left (its listener runs before
# the script's, which is added later).
RECORD_BEACONS = """<script>
const beacon = navigator.sendBeacon.bind(navigator);
navigator.sendBeacon = (url, body) => {
  beacon('/record', JSON.stringify({at: performance.now(), beacon: JSON.parse(body)}));
  return beacon(url, body);
};
addEventListener('pagehide', () => beacon('/record', JSON.stringify({left: performance.now()})));
</script>"""


def test_engagement_counts_only_visible_and_focused_time(
    collector: LiveServer, test_site: TestSite, db: Database, visit: Callable[..., Visitor]
):
    url = test_site.page(
        "/article",
        html(
            "Article",
            "<style>body{margin:0}</style>" + RECORD_BEACONS + tag(collector),
            '<div style="height:5000px">text</div>',
        ),
    )
    test_site.page("/next", html("Next", ""))
    visitor = visit(viewport={"width": 1000, "height": 1000})
    page = visitor.page
    page.goto(url)
    pageview_id = wait_events(db, 1, "pageview")[0].pageview_id
    # The script counts from the first paint when the page has painted before it runs, else
    # from its own start, which is after its file arrived and before it sent the pageview.
    page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length")
    painted_at, script_loaded_at = page.evaluate(
        """src => [performance.getEntriesByName('first-contentful-paint')[0].startTime,
                   performance.getEntriesByName(src)[0].responseEnd]""",
        collector.url + "/tracker.js",
    )

    page.wait_for_timeout(500)
    hidden = page.evaluate(SET_VISIBILITY, True)
    first = wait_for(lambda: (row := pageview_row(db, pageview_id)).engaged_ms is not None and row)
    page.wait_for_timeout(400)  # hidden: not counted
    shown = page.evaluate(SET_VISIBILITY, False)
    page.wait_for_timeout(400)
    blurred = page.evaluate(SET_FOCUS, False)
    page.wait_for_timeout(400)  # another window has focus: not counted
    focused = page.evaluate(SET_FOCUS, True)
    page.evaluate("scrollTo(0, 1500)")  # in view down to 2,500 px of 5,000
    page.wait_for_timeout(500)
    page.goto(test_site.url + "/next")  # leaving: pagehide, then hidden, as for real

    records = wait_for(lambda: len(test_site.recorded) >= 4 and list(test_site.recorded))
    assert records, f"expected a pageview, two engagements and the leaving: {test_site.recorded}"
    [left] = [r["left"] for r in records if "left" in r]
    sent = sorted((r for r in records if "beacon" in r), key=lambda r: r["at"])
    assert [r["beacon"]["type"] for r in sent] == ["pageview", "engagement", "engagement"]
    pageview_at, hidden_at, left_at = (r["at"] for r in sent)
    on_hide, on_leave = sent[1]["beacon"], sent[2]["beacon"]

    # What the beacon counted lies between what the page's clocks allow, to the ms it rounds.
    counted_from = (min(painted_at, script_loaded_at), pageview_at)
    first_stretch = (hidden[0] - counted_from[1], hidden_at - counted_from[0])
    assert first_stretch[0] - 1 <= on_hide["engaged_ms"] <= first_stretch[1] + 1
    visible = (
        first_stretch[0] + (blurred[0] - shown[1]) + (left - focused[1]),
        first_stretch[1] + (blurred[1] - shown[0]) + (left_at - focused[0]),
    )
    assert visible[0] - 1 <= on_leave["engaged_ms"] <= visible[1] + 1
    assert (on_hide["scroll"], on_leave["scroll"]) == (20, 50)  # 1,000 then 2,500 of 5,000 px

    # The collector stores what the beacon reported.
    assert first, "no engagement stored when the page was hidden"
    assert (first.engaged_ms, first.scroll) == (on_hide["engaged_ms"], 20)
    final = wait_for(
        lambda: (row := pageview_row(db, pageview_id)).engaged_ms != first.engaged_ms and row
    )
    assert final, "no engagement stored when the page was left"
    assert (final.engaged_ms, final.scroll) == (on_leave["engaged_ms"], 50)
    assert final.time_on_page_ms == final.engaged_ms
    assert events(db, "engagement") == []  # folded into the pageview, not stored apart


def test_back_forward_cache_restore_counts_a_pageview(
    collector: LiveServer, test_site: TestSite, db: Database, browser: Any
):
    restore_flag = (
        "<script>addEventListener('pageshow', e => window.restored = e.persisted)</script>"
    )
    url = test_site.page("/", html("Home", restore_flag + tag(collector)))
    next_url = test_site.page("/next", html("Next", ""))
    # Playwright turns the back/forward cache off by default; visitors' browsers have it on.
    with_cache = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[*LAUNCH_ARGS, f"--user-agent={USER_AGENT}"],
        ignore_default_args=["--disable-back-forward-cache"],
    )
    try:
        page = with_cache.new_page()
        page.goto(url)
        wait_events(db, 1, "pageview")
        page.goto(next_url)
        page.go_back(wait_until="commit")  # a restore fires no load event
        restored = page.wait_for_function("window.restored !== undefined").json_value()
        pageviews = wait_events(db, 2, "pageview")
    finally:
        with_cache.close()
    assert restored is True
    assert [e.path for e in pageviews] == ["/", "/"]
    assert pageviews[0].pageview_id != pageviews[1].pageview_id


@pytest.mark.parametrize(
    ("init_script", "attrs"),
    [
        pytest.param("localStorage.tracker_ignore = 'true'", {}, id="opted-out"),
        pytest.param(
            "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
            {"respect_dnt": True},
            id="do-not-track",
        ),
        pytest.param(
            "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
            {"respect_dnt": True},
            id="global-privacy-control",
        ),
        pytest.param("", {"allow_local": False}, id="automation-without-allow-local"),
    ],
)
def test_no_request_at_all_when_the_visitor_is_not_to_be_tracked(
    collector: LiveServer,
    test_site: TestSite,
    partner_site: TestSite,
    db: Database,
    visit: Callable[..., Visitor],
    init_script: str,
    attrs: dict[str, bool],
):
    partner = partner_site.page("/", html("Partner", ""))
    body = f'<a id="out" href="{partner}">out</a><button data-track="B">b</button>'
    head = QUEUE_SNIPPET + "<script>tracker('Queued')</script>" + tag(collector, **attrs)
    url = test_site.page("/", html("Private", head, body))
    visitor = visit()
    if init_script:
        visitor.context.add_init_script(init_script)
    page = visitor.page
    page.goto(url)
    page.click("button")
    page.evaluate("tracker('Later', {props: {a: 'b'}})")
    page.evaluate("history.pushState({}, '', '/elsewhere')")
    page.evaluate(SET_VISIBILITY, True)
    with page.expect_navigation():
        page.click("#out")

    to_collector = [r.url for r in visitor.requests if r.url.startswith(collector.url)]
    assert to_collector == [collector.url + "/tracker.js"]
    assert events(db) == []
