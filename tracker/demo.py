"""Demo traffic: realistic visits for a site, as the beacon and backends would send them.

`demo_days` yields, one day at a time, the events of that day in timestamp order, in the
collector's trusted-batch format (with `timestamp`, `ip` and `user_agent`). The `tracker
demo` command feeds them through the real ingest pipeline, so the stats page shows what
real traffic would produce: sources and campaigns, devices, countries, bounces, engaged
time, outbound clicks, downloads and custom events. Deterministic for a given seed.

Some visits convert: they go on to /pricing and /signup, send a "Signup" event (plan free
or pro), land on /thank-you, and pro sign-ups mostly buy ("Purchase" with revenue, in EUR
and now and then USD). How often depends on the source and campaign (`Source.convert`), so
conversion mode tells a story: the newsletter converts best, paid Google search beats
organic social. `add_demo_goals` defines the goals and the funnel that count them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy.orm import Session

from tracker.annotations import add_annotation
from tracker.budgets import set_budget
from tracker.clock import now_ms
from tracker.costs import MAX_API_ROWS, parse_cost_json, store_costs
from tracker.db.models import Site
from tracker.enrich.geo import Place
from tracker.goals import GoalError, add_funnel, add_goal, find_funnel, find_goal
from tracker.ingest.parse import parse_event
from tracker.ingest.pipeline import Client

Event = dict[str, Any]
BATCH = 1000  # events per pipeline call, as the batch endpoint takes them

PAGES: dict[str, str] = {
    "/": "Acme Analytics: know your traffic",
    "/pricing": "Pricing · Acme Analytics",
    "/features": "Features · Acme Analytics",
    "/blog": "Blog · Acme Analytics",
    "/blog/privacy-first-analytics": "Privacy-first analytics, explained",
    "/blog/utm-guide": "The UTM guide for busy marketers",
    "/blog/ga4-alternatives": "7 GA4 alternatives compared",
    "/docs": "Documentation · Acme Analytics",
    "/docs/install": "Install in 2 minutes · Docs",
    "/signup": "Start your free trial",
    "/thank-you": "Welcome aboard · Acme Analytics",
    "/contact": "Contact sales",
    "/about": "About us",
}

# Where each page tends to lead next (weights), so paths look like real browsing.
NEXT_PAGES: dict[str, dict[str, int]] = {
    "/": {"/pricing": 5, "/features": 4, "/blog": 2, "/signup": 2, "/about": 1},
    "/pricing": {"/signup": 5, "/features": 2, "/contact": 2, "/": 1},
    "/features": {"/pricing": 5, "/signup": 2, "/docs": 2},
    "/blog": {
        "/blog/privacy-first-analytics": 3,
        "/blog/utm-guide": 3,
        "/blog/ga4-alternatives": 3,
    },
    "/blog/privacy-first-analytics": {"/": 3, "/pricing": 2, "/blog": 2},
    "/blog/utm-guide": {"/blog": 2, "/pricing": 2, "/": 1},
    "/blog/ga4-alternatives": {"/pricing": 3, "/features": 2, "/": 2},
    "/docs": {"/docs/install": 5, "/pricing": 1},
    "/docs/install": {"/signup": 2, "/docs": 1},
    "/signup": {"/pricing": 1, "/": 1},
    # Reached only by signing up (see _VisitBuilder._paths), never by browsing.
    "/thank-you": {"/docs/install": 4, "/docs": 1, "/": 1},
    "/contact": {"/": 1, "/pricing": 1},
    "/about": {"/": 1, "/contact": 1},
}


@dataclass(frozen=True)
class Source:
    """How a visit arrives: referrer and landing-page query, with its weight and habits."""

    weight: float
    referrer: str = ""
    params: dict[str, str] = field(default_factory=dict)
    landings: tuple[str, ...] = ("/",)
    bounce: float = 0.45
    # Share of visits that sign up (the "Signup" goal's conversion rate), and of sign-ups
    # that take the pro plan (most of which then buy).
    convert: float = 0.03
    pro: float = 0.3
    # Active only between these many days ago (a campaign's flight), None = always.
    days_ago: tuple[int, int] | None = None


# Conversion rates tell a story: the newsletter (readers who already know the product)
# converts best, then paid brand search, AI assistants and developers from GitHub; search
# and direct traffic sit around 3 to 4 %, and organic social (Facebook, X, Reddit, Hacker
# News) hardly converts. Paid campaigns differ by flight and by creative (video_b wins).
SOURCES: list[Source] = [
    Source(30, landings=("/", "/", "/pricing", "/docs"), convert=0.045),
    Source(
        24,
        "https://www.google.com/",
        landings=("/blog/ga4-alternatives", "/blog/utm-guide", "/", "/docs/install"),
        bounce=0.5,
    ),
    Source(4, "https://www.bing.com/", landings=("/blog/ga4-alternatives", "/")),
    Source(
        3, "https://duckduckgo.com/", landings=("/blog/privacy-first-analytics", "/"), convert=0.035
    ),
    Source(
        3,
        "https://news.ycombinator.com/",
        landings=("/blog/privacy-first-analytics",),
        bounce=0.6,
        convert=0.012,
        pro=0.15,
    ),
    Source(3, "https://www.linkedin.com/", landings=("/blog/utm-guide", "/"), convert=0.02),
    Source(3, "https://m.facebook.com/", landings=("/",), bounce=0.6, convert=0.008, pro=0.15),
    Source(
        2,
        "https://t.co/",
        landings=("/blog/privacy-first-analytics",),
        bounce=0.65,
        convert=0.006,
        pro=0.15,
    ),
    Source(
        2,
        "https://www.reddit.com/r/analytics/",
        landings=("/blog/ga4-alternatives",),
        convert=0.012,
        pro=0.15,
    ),
    Source(2, "https://chatgpt.com/", landings=("/features", "/pricing"), bounce=0.3, convert=0.06),
    Source(1, "https://www.perplexity.ai/", landings=("/features",), bounce=0.3, convert=0.05),
    Source(
        2, "https://github.com/acme/analytics", landings=("/docs", "/docs/install"), convert=0.05
    ),
    Source(2, "https://blog.example.org/best-tools-2026", landings=("/", "/pricing")),
    Source(
        5,
        params={"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "weekly-digest"},
        landings=("/blog/utm-guide", "/blog"),
        bounce=0.35,
        convert=0.11,
        pro=0.45,
    ),
    Source(
        6,
        params={
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": "brand_search",
            "utm_term": "acme analytics",
        },
        landings=("/", "/pricing"),
        bounce=0.35,
        convert=0.08,
        pro=0.4,
    ),
    Source(
        9,
        params={
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": "spring_sale",
            "utm_term": "web analytics",
        },
        landings=("/pricing",),
        bounce=0.55,
        convert=0.045,
        days_ago=(20, 40),
    ),
    Source(
        4,
        params={
            "utm_source": "facebook",
            "utm_medium": "paid_social",
            "utm_campaign": "retargeting",
            "utm_content": "video_a",
        },
        landings=("/pricing", "/"),
        bounce=0.6,
        convert=0.015,
        pro=0.2,
    ),
    Source(
        3,
        params={
            "utm_source": "facebook",
            "utm_medium": "paid_social",
            "utm_campaign": "retargeting",
            "utm_content": "video_b",
        },
        landings=("/pricing",),
        bounce=0.5,
        convert=0.035,
    ),
    # Launch week: one newsletter blast and its shares, a burst that lifts the chart.
    Source(
        60,
        params={"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "launch_week"},
        landings=("/features", "/pricing"),
        bounce=0.3,
        convert=0.12,
        pro=0.4,
        days_ago=(8, 11),
    ),
    Source(
        2,
        params={
            "utm_source": "linkedin",
            "utm_medium": "paid_social",
            "utm_campaign": "b2b_launch",
            "utm_content": "carousel",
        },
        landings=("/features",),
        bounce=0.4,
        convert=0.04,
        pro=0.5,
    ),
]

# A day without a flight (spring sale, launch week): what each source's weight is a share of.
ALWAYS_ON_WEIGHT = sum(s.weight for s in SOURCES if s.days_ago is None)

# (user agent, screen width, weight): desktop, phone and tablet browsers people really use.
DEVICES: list[tuple[str, int, float]] = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        1920,
        26,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.1 Safari/605.1.15",
        1440,
        12,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        1536,
        6,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        1920,
        6,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        1920,
        3,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        390,
        20,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        412,
        12,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        384,
        6,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        820,
        5,
    ),
]

# (first octets of a network allocated to the country, country, region, city, weight).
# With a GeoIP database configured, visits resolve through it; without one, DemoGeo places
# them by this table so the demo's location report is not empty.
NETWORKS: list[tuple[str, str, str, str, float]] = [
    ("8.8", "US", "California", "San Francisco", 14),
    ("8.9", "US", "New York", "New York", 10),
    ("8.10", "US", "Texas", "Austin", 6),
    ("81.2", "GB", "England", "London", 9),
    ("91.64", "DE", "Berlin", "Berlin", 5),
    ("91.65", "DE", "Bavaria", "Munich", 4),
    ("90.84", "FR", "Île-de-France", "Paris", 7),
    ("90.85", "FR", "Auvergne-Rhône-Alpes", "Lyon", 3),
    ("142.112", "CA", "Ontario", "Toronto", 5),
    ("1.120", "AU", "New South Wales", "Sydney", 4),
    ("145.53", "NL", "North Holland", "Amsterdam", 4),
    ("79.30", "ES", "Madrid", "Madrid", 4),
    ("151.20", "IT", "Lombardy", "Milan", 3),
    ("177.36", "BR", "São Paulo", "São Paulo", 5),
    ("117.192", "IN", "Karnataka", "Bengaluru", 6),
    ("126.0", "JP", "Tokyo", "Tokyo", 4),
]

# Click names as the beacon sends them.
OUTBOUND_LINK, FILE_DOWNLOAD = "Outbound Link", "File Download"
OUTBOUND = [
    "https://github.com/acme/analytics",
    "https://twitter.com/acme",
    "https://www.youtube.com/watch?v=acme-tour",
]
RETURN_SAME_DAY = 0.12
GROWTH = 0.991  # a day's visits against the next day's: +31 % a month
DOWNLOADS = ["/files/acme-whitepaper.pdf", "/files/acme-pricing.pdf"]
THANK_YOU = "/thank-you"
REACH_THANK_YOU = 0.93  # some close the tab before the confirmation page
PRO_BUYS = 0.8  # pro sign-ups that pay at once ("Purchase" with revenue)
# What a purchase costs: (amount, weight) per currency; USD now and then, shown apart.
PRICES = {
    "EUR": [("19.00", 5), ("49.00", 3), ("129.50", 2)],
    "USD": [("21.00", 5), ("54.00", 3), ("139.00", 2)],
}
USD_SHARE = 0.12

# The goals and the funnel `tracker demo` defines (tracker.goals validates them).
DEMO_GOALS: list[dict[str, str]] = [
    {"name": "Signup", "kind": "event", "event_name": "Signup"},
    {
        "name": "Pro signup",
        "kind": "event",
        "event_name": "Signup",
        "prop_key": "plan",
        "prop_value": "pro",
    },  # fmt: skip
    {"name": "Purchase", "kind": "event", "event_name": "Purchase", "currency": "EUR"},
    {"name": "Thank you", "kind": "page", "pattern": THANK_YOU},
    {"name": "Brochure download", "kind": "click", "pattern": "*.pdf"},
    {"name": "Pricing", "kind": "page", "pattern": "/pricing"},
]
DEMO_FUNNEL = ("Signup funnel", ("Pricing", "Signup", "Thank you"))


def _weighted(rng: random.Random, items: list[Any], weights: list[float]) -> Any:
    return rng.choices(items, weights=weights, k=1)[0]


def _visits_on(days_ago: int, day: date, per_day: int, rng: random.Random) -> int:
    """Weekdays busier than weekends, growth, and daily noise: `per_day` is today's
    weekday level, and each month before had about a quarter fewer visits, so the default
    view (30 days against the 30 before) has a change to show."""
    weekend = 0.65 if day.weekday() >= 5 else 1.0
    trend = GROWTH**days_ago
    return max(0, round(per_day * weekend * trend * rng.uniform(0.85, 1.15)))


def _start_second(rng: random.Random) -> int:
    """Seconds into the local day, mostly office hours with an evening tail."""
    hour = min(23.99, max(0.0, rng.gauss(14, 4.5)))
    return int(hour * 3600)


def _url(domain: str, path: str, params: dict[str, str]) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return f"https://{domain}{path}{query}"


class _VisitBuilder:
    """The events of one visit, from landing to its last engagement beacon."""

    def __init__(self, domain: str, rng: random.Random, ip: str, ua: str, screen: int) -> None:
        self.domain, self.rng, self.ip, self.ua, self.screen = domain, rng, ip, ua, screen
        self.events: list[Event] = []

    def _event(self, at: datetime, kind: str, **fields: Any) -> Event:
        event = {
            "site": self.domain,
            "type": kind,
            # UTC, so the strings sort in time order.
            "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "ip": self.ip,
            "user_agent": self.ua,
            "screen": self.screen,
            **fields,
        }
        self.events.append(event)
        return event

    def _paths(self, source: Source, bounce: bool, converts: bool) -> tuple[list[str], int]:
        """The pages of the visit, and the index of the one it signs up on (-1: none).

        A converting visit browses a little, goes to /pricing (mostly) and /signup, signs
        up, and usually reaches /thank-you; others wander by NEXT_PAGES."""
        rng = self.rng
        paths = [rng.choice(source.landings)]
        if bounce:
            return paths, -1
        count = 2 + min(6, int(rng.expovariate(0.6)))
        signup = -1
        if converts:
            for _ in range(rng.randint(0, 2)):
                if paths[-1] in ("/pricing", "/signup"):
                    break
                paths.append(self._next(paths[-1]))
            if paths[-1] != "/signup":
                if paths[-1] != "/pricing" and rng.random() < 0.8:
                    paths.append("/pricing")
                paths.append("/signup")
            signup = len(paths) - 1
            if rng.random() < REACH_THANK_YOU:
                paths.append(THANK_YOU)
            count = len(paths) + min(3, int(rng.expovariate(1.0)))
        while len(paths) < count:
            paths.append(self._next(paths[-1]))
        return paths, signup

    def _next(self, path: str) -> str:
        choices = NEXT_PAGES[path]
        return str(_weighted(self.rng, list(choices), list(choices.values())))

    def build(self, source: Source, start: datetime) -> list[Event]:
        rng = self.rng
        converts = rng.random() < source.convert
        bounce = not converts and rng.random() < source.bounce
        paths, signup = self._paths(source, bounce, converts)
        plan = ""
        at = start
        referrer = source.referrer
        params: dict[str, str] = dict(source.params)
        if source.params.get("utm_medium") == "cpc":
            params["gclid"] = f"{rng.getrandbits(64):016x}"
        for index, path in enumerate(paths):
            pageview_id = f"{rng.getrandbits(64):016x}"
            url = _url(self.domain, path, params)
            self._event(
                at,
                "pageview",
                url=url,
                referrer=referrer,
                title=PAGES[path],
                pageview_id=pageview_id,
            )
            engaged = int(min(600_000, rng.lognormvariate(10.2, 0.9)))  # median ~27 s
            if not bounce or rng.random() < 0.6:
                self._event(
                    at + timedelta(milliseconds=engaged),
                    "engagement",
                    url=url,
                    engaged_ms=engaged,
                    scroll=rng.choice((25, 50, 75, 100)),
                    pageview_id=pageview_id,
                )
            if not bounce:
                self._interactions(at, url, path, pageview_id, source, last=index == len(paths) - 1)
            # Within the page's time, so before the next page: funnels count steps in order.
            done = at + timedelta(milliseconds=int(engaged * rng.uniform(0.3, 0.9)))
            if index == signup:
                plan = "pro" if rng.random() < source.pro else "free"
                self._event(
                    done, "event", url=url, name="Signup", props={"plan": plan},
                    pageview_id=pageview_id,
                )  # fmt: skip
            elif path == THANK_YOU and plan == "pro" and rng.random() < PRO_BUYS:
                self._purchase(done, url, pageview_id)
            at += timedelta(milliseconds=engaged + rng.randint(1_000, 20_000))
            referrer = url
            params = {}
        return self.events

    def _purchase(self, at: datetime, url: str, pageview_id: str) -> None:
        rng = self.rng
        currency = "USD" if rng.random() < USD_SHARE else "EUR"
        prices = PRICES[currency]
        amount = _weighted(rng, [p[0] for p in prices], [p[1] for p in prices])
        self._event(
            at,
            "event",
            url=url,
            name="Purchase",
            props={"plan": "pro"},
            revenue={"amount": amount, "currency": currency},
            pageview_id=pageview_id,
        )

    def _interactions(
        self, at: datetime, url: str, path: str, pageview_id: str, source: Source, last: bool
    ) -> None:
        rng = self.rng
        soon = at + timedelta(seconds=rng.randint(3, 25))
        if last and rng.random() < 0.15:
            target = rng.choice(OUTBOUND)
            self._event(
                soon, "click", url=url, target=target, name=OUTBOUND_LINK, pageview_id=pageview_id
            )
        # Visitors with intent read the brochure more: the rate follows the source's.
        if path.startswith(("/blog/", "/pricing")) and rng.random() < 0.02 + source.convert:
            self._event(
                soon,
                "click",
                url=url,
                target=f"https://{self.domain}{rng.choice(DOWNLOADS)}",
                name=FILE_DOWNLOAD,
                pageview_id=pageview_id,
            )
        if path.startswith("/blog/") and rng.random() < 0.05:
            where = rng.choice(("footer", "popup"))
            self._event(soon, "event", url=url, name="Newsletter subscribe", props={"form": where})
        if path == "/features" and rng.random() < 0.1:
            self._event(soon, "event", url=url, name="Play video", props={"video": "tour"})


def _random_ip(rng: random.Random) -> str:
    prefix = _weighted(rng, [n[0] for n in NETWORKS], [n[4] for n in NETWORKS])
    tail = ".".join(str(rng.randint(1, 254)) for _ in range(4 - prefix.count(".") - 1))
    return f"{prefix}.{tail}"


def demo_days(
    domain: str,
    *,
    days: int,
    visits_per_day: int,
    timezone: str = "UTC",
    now: datetime | None = None,
    seed: int = 1,
) -> Iterator[list[Event]]:
    """For each day, oldest first (today last, up to `now`): its events in time order.

    Events of a visit that runs past midnight move to the next day's list, so the whole
    stream is in time order, as the batch endpoint wants it.
    """
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    carried: list[Event] = []
    for ago in range(days - 1, -1, -1):
        day = today - timedelta(days=ago)
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=zone)
        events = carried + _day_events(domain, rng, day, ago, midnight, visits_per_day)
        cutoff = now if day == today else midnight + timedelta(days=1)
        events.sort(key=lambda e: str(e["timestamp"]))
        ready = [e for e in events if datetime.fromisoformat(e["timestamp"]) < cutoff]
        carried = events[len(ready) :]
        yield ready


def _day_events(
    domain: str,
    rng: random.Random,
    day: date,
    days_ago: int,
    midnight: datetime,
    visits_per_day: int,
) -> list[Event]:
    sources = [s for s in SOURCES if not s.days_ago or s.days_ago[0] <= days_ago <= s.days_ago[1]]
    weights = [s.weight for s in sources]
    events: list[Event] = []
    # A campaign's flight brings visits on top of the usual ones.
    lift = sum(weights) / ALWAYS_ON_WEIGHT
    for _ in range(round(lift * _visits_on(days_ago, day, visits_per_day, rng))):
        start = midnight + timedelta(seconds=_start_second(rng))
        ua, screen, _w = _weighted(rng, DEVICES, [d[2] for d in DEVICES])
        ip = _random_ip(rng)
        events += _VisitBuilder(domain, rng, ip, ua, screen).build(
            _weighted(rng, sources, weights), start
        )
        if rng.random() < RETURN_SAME_DAY:
            # The same person comes back later that day, typing the address.
            later = start + timedelta(minutes=rng.randint(45, 300))
            events += _VisitBuilder(domain, rng, ip, ua, screen).build(SOURCES[0], later)
    return events


class DemoGeo:
    """Places demo addresses by NETWORKS (the pipeline's GeoIP step, when no database is set)."""

    def __init__(self) -> None:
        # Longest prefixes first, so "8.10." is not taken for "8.1".
        self.places = sorted(
            (
                (f"{prefix}.", Place(country, region, city))
                for prefix, country, region, city, _w in NETWORKS
            ),
            key=lambda item: -len(item[0]),
        )

    def lookup(self, ip: str) -> Place:
        return next((place for prefix, place in self.places if ip.startswith(prefix)), Place())


def demo_ingest(app: Flask) -> Callable[[list[Event]], int]:
    """A function that stores demo events through the app's ingest pipeline (trusted path).

    The events are parsed and gated, bots and spam dropped, enriched, assigned to visits
    and stored exactly as the batch endpoint does; it returns how many were stored.
    """
    pipeline = app.extensions["tracker.ingest"]
    if not app.extensions["tracker.settings"].geoip_path:
        pipeline.geo = DemoGeo()
    server = Client(ip="", user_agent="")

    def ingest(events: list[Event]) -> int:
        received = now_ms()
        parsed = [parse_event(event, trusted=True, now_ms=received) for event in events]
        return int(pipeline.accept(parsed, server, wait=True).accepted)

    return ingest


def add_demo_goals(session: Session, site: Site) -> list[str]:
    """Define DEMO_GOALS and DEMO_FUNNEL on the site, through tracker.goals (validated);
    the names of those added. A goal or funnel of the same name is left as it is, so
    running the demo again never fails."""
    added: list[str] = []
    for definition in DEMO_GOALS:
        if find_goal(session, site, definition["name"]) is None:
            add_goal(session, site, **definition)
            added.append(definition["name"])
    name, step_names = DEMO_FUNNEL
    if find_funnel(session, site, name) is None:
        steps = [find_goal(session, site, step) for step in step_names]
        try:
            add_funnel(session, site, name=name, steps=[g.id for g in steps if g is not None])
        except GoalError:
            pass  # the site's own goals of these names make no funnel (e.g. the same twice)
        else:
            added.append(name)
    return added


# Ad spend the demo's paid campaigns ran on: (source, medium, campaign, content, cost per
# visit in EUR). Cost rows are per day and ad, as an ad platform's report lists them.
PAID = [
    ("google", "cpc", "Brand_Search", "", Decimal("0.90")),  # the Ads spelling: matched anyway
    ("google", "cpc", "spring_sale", "", Decimal("1.60")),
    ("facebook", "paid_social", "retargeting", "video_a", Decimal("0.55")),
    ("facebook", "paid_social", "retargeting", "video_b", Decimal("0.60")),
    ("linkedin", "paid_social", "b2b_launch", "carousel", Decimal("3.40")),
]
# Ads that brought no tagged visit (a link without UTM tags): shown as unmatched cost.
UNMATCHED = [("bing", "cpc", "competitor_terms", "", Decimal("18.00"))]
SPEND_DAYS = 60
CLICK_THROUGH = 0.035  # ad clicks per impression
# A monthly budget per campaign: retargeting's is too small for its pace (over-pacing).
DEMO_BUDGETS = {"brand_search": 1.05, "retargeting": 0.7, "b2b_launch": 1.0}
DEMO_NOTES = [
    (40, "Spring sale starts"),
    (20, "Spring sale ends"),
    (12, "Retargeting: video B creative added"),
    (11, "Launch week newsletter sent"),
    (3, "Newsletter moved to Tuesdays"),
]


def _daily_visits(source: Source, visits_per_day: int) -> float:
    return visits_per_day * source.weight / ALWAYS_ON_WEIGHT


def _paid_source(campaign: str, content: str) -> Source | None:
    return next(
        (
            s
            for s in SOURCES
            if s.params.get("utm_campaign") == campaign.casefold()
            and s.params.get("utm_content", "") == content
        ),
        None,
    )


def demo_cost_rows(today: date, visits_per_day: int, seed: int = 1) -> list[dict[str, str | int]]:
    """SPEND_DAYS of cost rows up to today for PAID and UNMATCHED, shaped as the cost
    API takes them; a day's cost follows the campaign's visits (none outside its flight)."""
    rng = random.Random(seed)
    rows: list[dict[str, str | int]] = []
    for ago in range(SPEND_DAYS - 1, -1, -1):
        day = today - timedelta(days=ago)
        for source, medium, campaign, content, per_visit in [*PAID, *UNMATCHED]:
            found = _paid_source(campaign, content)
            if (
                found is not None
                and found.days_ago
                and not (found.days_ago[0] <= ago <= found.days_ago[1])
            ):
                continue
            visits = _daily_visits(found, visits_per_day) if found else 1
            clicks = max(1, round(visits * rng.uniform(1.05, 1.25)))  # some never load the page
            cost = (per_visit * Decimal(visits) * Decimal(rng.uniform(0.85, 1.15))).quantize(
                Decimal("0.01")
            )
            rows.append({
                "date": day.isoformat(), "utm_source": source, "utm_medium": medium,
                "utm_campaign": campaign, "utm_content": content, "cost": str(cost),
                "currency": "EUR", "clicks": clicks,
                "impressions": round(clicks / CLICK_THROUGH * rng.uniform(0.8, 1.2)),
            })  # fmt: skip
    return rows


def add_demo_spend(session: Session, site: Site, visits_per_day: int) -> int:
    """Cost rows (through the import's checks and storage: replaced when run again),
    budgets and chart annotations; the number of cost rows stored."""
    today = datetime.now(ZoneInfo(site.timezone)).date()
    rows = demo_cost_rows(today, visits_per_day)
    replaced = 0
    for start in range(0, len(rows), MAX_API_ROWS):
        batch = parse_cost_json(rows[start : start + MAX_API_ROWS])
        if batch.problems:
            raise ValueError(f"demo cost rows: {batch.problems[0]}")
        replaced += store_costs(session, site, batch.rows).replaced
    monthly = Decimal(30 * visits_per_day) / Decimal(ALWAYS_ON_WEIGHT)
    for campaign, share in DEMO_BUDGETS.items():
        source = _paid_source(campaign, "") or next(
            s for s in SOURCES if s.params.get("utm_campaign") == campaign
        )
        per_visit = next(p for _, _, c, _, p in PAID if c.casefold() == campaign)
        amount = monthly * Decimal(source.weight) * per_visit * Decimal(share)
        if campaign == "retargeting":
            amount *= 2  # two ads (video_a, video_b) share it
        set_budget(session, site, scope="campaign", name=campaign, amount=f"{amount:.2f}",
                   currency="EUR")  # fmt: skip
    if not replaced:  # a first run: notes are not replaced, so never added twice
        for ago, text in DEMO_NOTES:
            add_annotation(session, site, today - timedelta(days=ago), text)
    return len(rows)
