"""A stats dataset of N events over 30 days, written straight into the tables, cached.

Visits and events follow the collector's semantics (tracker/db/models.py and the metric
definitions of docs/ARCHITECTURE.md), so stats queries do realistic work: visitors return
within a day (ids rotate daily), a visit is a run of events with no 30-minute gap, its
first pageview carries the source (referrer, UTM, click id), engagement beacons repeat
their pageview's pageview_id and set the pageview's engaged time and scroll, clicks and
custom events are interactions, bounce = fewer than two pageviews and no interaction, time
on page = engaged time, else the time to the next pageview, else unknown; visit duration =
the sum of known times on page.

The SQLite file is built once per (size, generator version) under bench/cache/ and reused;
each use first migrates it to the current schema (as an upgrade would a real database).
`python -m bench.datagen 10M` builds one ahead of a run.

The wide variant (issue 16, `python -m bench.datagen --wide 1M`) is the same traffic with
high-cardinality values: half the pageviews land on one of WIDE_PAGES pages picked
uniformly (about 100,000 distinct pages at 1M events) and WIDE_CAMPAIGN_SHARE of the visits
come from one of WIDE_CAMPAIGNS tagged campaigns, so rare values exist (a page or campaign
with a handful of visits) and every day has thousands of values per dimension. Its cache
file is named by WIDE_VERSION too; the default dataset and its files are unchanged.

Some "Add to cart" events are followed by a "Purchase" carrying revenue (minor units, mostly
EUR, some USD). The bench site has goals of each kind and a 4-step funnel (GOALS, FUNNEL),
added through tracker.goals to a dataset that lacks them, as the settings page would.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from bisect import bisect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from math import exp, log, sqrt
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import BENCH_DIR, BENCH_SITE, CACHE_DIR, parse_count
from tracker.accounts import create_api_key, create_user
from tracker.costs import MAX_API_ROWS, parse_cost_json, store_costs
from tracker.db import Database
from tracker.db.migrate import upgrade
from tracker.db.models import Base, Event, Site, Visit
from tracker.enrich.device import DeviceInfo
from tracker.enrich.geo import Place
from tracker.enrich.source import Attribution, attribute, clean_referrer
from tracker.enrich.useragent import parse_user_agent, screen_class
from tracker.goals import add_funnel, add_goal, find_funnel, list_goals
from tracker.sites import add_site
from tracker.stats.rollups import refresh as refresh_rollups
from tracker.storage.visits import landing_columns

GENERATOR_VERSION = 4
# Bumped when the wide variant's generation changes (its cache files are named by it).
WIDE_VERSION = 1
WIDE = f"wide{WIDE_VERSION}"
DAYS = 30
DAY_MS = 86_400_000
VISIT_GAP_MS = 30 * 60_000
SEED = 20251122
# `python -m bench.datagen --prepare URL`: that database's rollups (`rollups_meanwhile`).
PREPARE_FLAG = "--prepare"
# SQLite's page cache while a dataset is written (KiB): its indexes are sorted in it.
BUILD_CACHE_KB = 512 * 1024
HOST = BENCH_SITE
ORIGIN = f"https://{HOST}"

# Shared with bench/events.lua (the live load): user agents and landings (referrer, query).
USER_AGENTS = (BENCH_DIR / "user_agents.txt").read_text().splitlines()
LANDINGS = [
    tuple(line.split("\t", 1))
    for line in (BENCH_DIR / "landings.tsv").read_text().splitlines()
    if not line.startswith("#")
]
SCREEN_WIDTHS = [360, 375, 390, 412, 768, 820, 1280, 1366, 1440, 1536, 1920, 2560]
# (weight, country, region, city)
PLACES = [
    (25, "US", "California", "San Francisco"),
    (10, "US", "New York", "New York"),
    (12, "FR", "Île-de-France", "Paris"),
    (10, "DE", "Berlin", "Berlin"),
    (8, "GB", "England", "London"),
    (5, "ES", "Madrid", "Madrid"),
    (5, "IN", "Karnataka", "Bengaluru"),
    (4, "BR", "São Paulo", "São Paulo"),
    (4, "CA", "Ontario", "Toronto"),
    (3, "JP", "Tokyo", "Tokyo"),
    (6, "", "", ""),
]
TOPICS = ["analytics", "privacy", "campaigns", "seo", "ads", "cookies", "dashboards", "gdpr"]
PATHS = (
    ["/", "/pricing", "/features", "/about", "/contact", "/signup", "/login"]
    + [f"/blog/{t}-{i}" for t in TOPICS for i in range(1, 31)]
    + [f"/docs/{t}/{i}" for t in TOPICS for i in range(1, 11)]
)
# Zipf-like popularity (cumulative weights): the home page and a few posts take most views.
PATH_WEIGHTS = list(accumulate(1 / (rank + 1) ** 0.9 for rank in range(len(PATHS))))
# The wide variant: a catalogue that brings the site's pages to 100,000, and the share of
# pageviews spread uniformly over all of them (the rest follow PATH_WEIGHTS as above).
# Uniform, not Zipf: the long tail is what makes a day's values many and some values rare.
WIDE_PAGES = 100_000
WIDE_UNIFORM_SHARE = 0.5
CATEGORIES = ["shoes", "bags", "hats", "shirts", "lamps", "chairs", "mugs", "books"]
WIDE_PATHS = PATHS + [
    f"/shop/{CATEGORIES[i % len(CATEGORIES)]}/item-{i}" for i in range(WIDE_PAGES - len(PATHS))
]
# 10,000 campaigns, each tagged on one of these (utm_source, utm_medium, referrer), taking
# this share of the visits between them, uniformly.
WIDE_CAMPAIGNS = 10_000
WIDE_CAMPAIGN_SHARE = 0.3
CAMPAIGN_CHANNELS = [
    ("google", "cpc", "https://www.google.com/"),
    ("facebook", "paid_social", "https://www.facebook.com/"),
    ("newsletter", "email", ""),
    ("partner", "affiliate", "https://partner.example/"),
    ("linkedin", "paid_social", "https://www.linkedin.com/"),
]
CAMPAIGN_KINDS = ["promo", "webinar", "retarget", "launch", "digest"]
TARGETS = [
    "https://github.com/acme/tool",
    "https://twitter.com/acme",
    f"{ORIGIN}/files/report-2025.pdf",
    f"{ORIGIN}/files/pricing.xlsx",
]
EVENT_NAMES = ["Signup", "Add to cart", "Newsletter", "Play video"]
PLANS = ["free", "pro", "team", "enterprise"]
# An "Add to cart" leads to a purchase this often, of one of these prices (minor units).
PURCHASE_RATE = 0.35
PRICES = [900, 1900, 4900, 9900, 19900]
# Goals of the bench site, in display order: add_goal's keyword arguments.
GOALS: list[dict[str, str]] = [
    {"name": "Read the blog", "kind": "page", "pattern": "/blog/*"},
    {"name": "Visit pricing", "kind": "page", "pattern": "/pricing"},
    {
        "name": "Pro signup",
        "kind": "event",
        "event_name": "Signup",
        "prop_key": "plan",
        "prop_value": "pro",
    },
    {"name": "Add to cart", "kind": "event", "event_name": "Add to cart"},
    {"name": "Purchase", "kind": "event", "event_name": "Purchase", "currency": "EUR"},
    {"name": "Report download", "kind": "click", "pattern": "*/files/*.pdf"},
]
# A 4-step funnel over those goals (by name).
FUNNEL = ("Blog to purchase", ("Read the blog", "Visit pricing", "Add to cart", "Purchase"))
# Cumulative share of a day's visits starting in each UTC hour: quiet nights, busy afternoons.
HOURLY = list(accumulate([1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 9, 9, 9, 9, 9, 8, 8, 7, 6, 5, 4, 3, 2]))

# Draws of `random.Random` that Generator inlines (see `Generator.day`).
NV_MAGICCONST = 4 * exp(-0.5) / sqrt(2.0)
PATHS_TOTAL = PATH_WEIGHTS[-1] + 0.0
LAST_PATH = len(PATHS) - 1
PLAN_PROPS = [json.dumps({"plan": plan}) for plan in PLANS]
SCREENS = [screen_class(width) for width in SCREEN_WIDTHS]
TIMESTAMP = itemgetter(3)

VISIT_COLUMNS = [c.name for c in Visit.__table__.columns]
LAST_MS = VISIT_COLUMNS.index("last_ms")
# Generator._visit builds rows positionally (speed): the visit's own columns, then those
# `landing_columns` returns, in this order.
LANDING_COLUMNS = VISIT_COLUMNS[VISIT_COLUMNS.index("duration_ms") + 1 :]
assert VISIT_COLUMNS[: -len(LANDING_COLUMNS)] == [
    "id",
    "site_id",
    "visitor_id",
    "started_ms",
    "last_ms",
    "hostname",
    "entry_page",
    "exit_page",
    "pageviews",
    "events",
    "interactions",
    "is_bounce",
    "duration_ms",
], f"models.Visit changed: update bench/datagen.py ({VISIT_COLUMNS})"
LANDING_ROW = itemgetter(*LANDING_COLUMNS)
EVENT_COLUMNS = [c.name for c in Event.__table__.columns if c.name != "id"]
# Generator._visit builds rows positionally (speed): this is the order it assumes.
assert EVENT_COLUMNS == [
    "site_id",
    "visit_id",
    "visitor_id",
    "timestamp_ms",
    "kind",
    "name",
    "hostname",
    "path",
    "query",
    "title",
    "referrer",
    "target",
    "props",
    "engaged_ms",
    "scroll",
    "time_on_page_ms",
    "pageview_id",
    "revenue_minor",
    "revenue_currency",
], f"models.Event changed: update bench/datagen.py ({EVENT_COLUMNS})"


@dataclass(frozen=True)
class Dataset:
    """A generated database and what a benchmark needs to query it."""

    path: Path
    site: str
    first_day: str
    last_day: str
    events: int
    visits: int
    api_key: str
    # "" for the default dataset, WIDE for the high-cardinality one (older files: "").
    variant: str = ""

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


@dataclass(frozen=True)
class Landing:
    attribution: Attribution
    referrer: str  # as the collector stores it on the landing pageview
    query: str


class Generator:
    """Visits and events, one UTC day at a time, deterministic for a seed.

    Sources, channels and devices come from the collector's own enrichment functions
    applied to the same user agents and landings the live load (events.lua) sends.
    """

    def __init__(
        self,
        site_id: int,
        first_day: date,
        total_events: int,
        seed: int = SEED,
        *,
        wide: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.site_id = site_id
        self.first_day = first_day
        self.total_events = total_events
        self.wide = wide
        self.landings = [_landing(referrer, query) for referrer, query in LANDINGS]
        # Attributed once here, not per visit: 10,000 parses would dominate generation.
        self.campaign_landings = [
            _landing(
                referrer,
                f"utm_source={source}&utm_medium={medium}"
                f"&utm_campaign={CAMPAIGN_KINDS[i % len(CAMPAIGN_KINDS)]}_{i:05d}",
            )
            for i in range(WIDE_CAMPAIGNS if wide else 0)
            for source, medium, referrer in [CAMPAIGN_CHANNELS[i % len(CAMPAIGN_CHANNELS)]]
        ]
        devices = [parse_user_agent(ua) for ua in USER_AGENTS]
        self.devices = [d for d in devices if not d.is_bot]
        self.places = [p[1:] for p in PLACES]
        self.place_w = list(accumulate(p[0] for p in PLACES))
        self.next_visit_id = 1
        # A visit's columns fixed by its landing, place, device and screen (see `_visit`).
        self.landing_rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def days(self) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        """(visit rows, event rows) per day; weekdays busier than weekends."""
        factors = [
            0.7 if (self.first_day + timedelta(d)).weekday() >= 5 else 1.1 for d in range(DAYS)
        ]
        scale = self.total_events / sum(factors)
        made = 0
        planned = 0.0
        for offset, factor in enumerate(factors):
            # Each day aims at the running total, so one visit's overshoot is not repeated.
            planned += scale * factor
            quota = round(planned) - made
            day = self.first_day + timedelta(offset)
            start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
            visits, events = self.day(start, quota)
            made += len(events)
            yield visits, events

    def day(self, day_ms: int, quota: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        # TRICKY: `random.Random`'s methods are inlined here and in `_visit` (its bisect over
        # cumulative weights, `_randbelow`, the normal variate's loop): each draw consumes
        # the generator exactly as the method would, so a seed gives the same rows as
        # before (GENERATOR_VERSION unchanged), at half the CPU.
        rng = self.rng
        random, below, bits = rng.random, rng._randbelow, rng.getrandbits  # type: ignore[attr-defined]
        devices, places, place_w = self.devices, self.places, self.place_w
        hourly_total, place_total = HOURLY[-1] + 0.0, place_w[-1] + 0.0
        visits: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        # (last_ms, visitor_id, device, screen, place) of the day's visits: returning visitors
        # keep their device and place, and come back after the visit timeout.
        seen: list[tuple[int, int, DeviceInfo, str, tuple[str, ...]]] = []
        while len(events) < quota:
            hour = bisect(HOURLY, random() * hourly_total, 0, 23)
            started = day_ms + hour * 3_600_000 + below(3_600_000)
            returning = seen[below(len(seen))] if seen and random() < 0.25 else None
            if returning and returning[0] + VISIT_GAP_MS < started:
                _last, visitor, device, screen, place = returning
            else:
                visitor = bits(62)
                device = devices[below(len(devices))]
                screen = SCREENS[below(len(SCREEN_WIDTHS))]
                place = places[bisect(place_w, random() * place_total, 0, len(places) - 1)]
            visit = self._visit(visitor, started, device, screen, place, events)
            seen.append((visit[LAST_MS], visitor, device, screen, place))
            visits.append(visit)
        events.sort(key=TIMESTAMP)
        return visits, events

    def _visit(
        self,
        visitor: int,
        started: int,
        device: DeviceInfo,
        screen: str,
        place: tuple[str, ...],
        events: list[tuple[Any, ...]],
    ) -> tuple[Any, ...]:
        """A visit's row; its events appended to `events`."""
        rng = self.rng
        random, below, bits = rng.random, rng._randbelow, rng.getrandbits  # type: ignore[attr-defined]
        site_id = self.site_id
        visit_id = self.next_visit_id
        self.next_visit_id += 1
        # The default dataset draws exactly as before (the wide variant's extra draws only
        # when wide), so its cached files stay what GENERATOR_VERSION says they are.
        if self.wide and random() < WIDE_CAMPAIGN_SHARE:
            landing = self.campaign_landings[below(len(self.campaign_landings))]
        else:
            landing = self.landings[below(len(self.landings))]
        # expovariate(0.6)
        pageviews = 1 if random() < 0.45 else 2 + min(int(-log(1.0 - random()) / 0.6), 12)
        paths = [
            PATHS[bisect(PATH_WEIGHTS, random() * PATHS_TOTAL, 0, LAST_PATH)]
            for _ in range(pageviews)
        ]
        if self.wide:
            paths = [
                WIDE_PATHS[below(len(WIDE_PATHS))] if random() < WIDE_UNIFORM_SHARE else path
                for path in paths
            ]
        first_event = len(events)
        interactions = duration = 0
        now = last_ms = started
        last = pageviews - 1
        for index, path in enumerate(paths):
            pageview_id = f"{bits(64):016x}"
            # lognormvariate(10.3, 1.0): median ~30 s to the next page
            while True:
                u1 = random()
                u2 = 1.0 - random()
                z = NV_MAGICCONST * (u1 - 0.5) / u2
                if z * z / 4.0 <= -log(u2):
                    break
            gap = 1000 + int(exp(10.3 + z * 1.0))
            engaged = scroll = None
            if random() < 0.75:
                # The page reported foreground time (tab hidden, left): its engagement beacons
                # are folded into this row, the last one arriving before the next pageview.
                engaged = int((gap - 500) * (0.3 + (1.0 - 0.3) * random()))  # uniform(0.3, 1.0)
                scroll = 10 + below(91)  # randint(10, 100)
                last_ms = max(last_ms, now + engaged)
            if random() < 0.08:  # a click
                interactions += 1
                at = now + 500 + below(gap - 500)
                last_ms = max(last_ms, at)
                target = TARGETS[below(len(TARGETS))]
                events.append(
                    (site_id, visit_id, visitor, at, "click", "", HOST, path, "", "", "",
                     target, None, None, None, None, pageview_id, None, "")
                )  # fmt: skip
            if random() < 0.04:  # a custom event
                interactions += 1
                at = now + 500 + below(gap - 500)
                last_ms = max(last_ms, at)
                name = EVENT_NAMES[below(len(EVENT_NAMES))]
                props = PLAN_PROPS[below(len(PLANS))]
                events.append(
                    (site_id, visit_id, visitor, at, "event", name, HOST, path, "", "", "",
                     "", props, None, None, None, pageview_id, None, "")
                )  # fmt: skip
                if name == "Add to cart" and random() < PURCHASE_RATE:
                    interactions += 1
                    at += 1000 + below(119_000)
                    last_ms = max(last_ms, at)
                    revenue = PRICES[below(len(PRICES))]
                    currency = "EUR" if random() < 0.9 else "USD"
                    events.append(
                        (site_id, visit_id, visitor, at, "event", "Purchase", HOST, path, "",
                         "", "", "", props, None, None, None, pageview_id, revenue, currency)
                    )  # fmt: skip
            is_last = index == last
            # Time on page: engaged time, else the gap to the next pageview, else unknown.
            on_page = engaged if engaged is not None else (None if is_last else gap)
            duration += on_page or 0
            if index == 0:  # the landing: same-site referrers are dropped
                query, referrer = landing.query, landing.referrer
            else:
                query = referrer = ""
            events.append(
                (site_id, visit_id, visitor, now, "pageview", "", HOST, path, query,
                 f"Page {path}", referrer, "", None, engaged, scroll,
                 on_page, pageview_id, None, "")
            )  # fmt: skip
            if not is_last:
                now += gap
                last_ms = max(last_ms, now)
        key = (id(landing), id(device), screen, place)
        fixed = self.landing_rows.get(key)
        if fixed is None:
            columns = landing_columns(landing.attribution, Place(*place), device, screen)
            fixed = self.landing_rows[key] = LANDING_ROW(columns)
        # Order: VISIT_COLUMNS.
        return (
            visit_id,
            site_id,
            visitor,
            started,
            last_ms,
            HOST,
            paths[0],
            paths[-1],
            pageviews,
            len(events) - first_event,
            interactions,
            pageviews < 2 and interactions == 0,
            duration,
            *fixed,
        )


def _landing(referrer: str, query: str) -> Landing:
    return Landing(attribute(query, referrer, False), clean_referrer(referrer), query)


def cache_path(events: int, *, wide: bool = False) -> Path:
    """The dataset's SQLite file: named by size and generator version (and variant)."""
    variant = f"-{WIDE}" if wide else ""
    return CACHE_DIR / f"events-{events}-gen{GENERATOR_VERSION}{variant}.db"


def dataset(events: int, *, log: bool = True, wide: bool = False, rollups: bool = True) -> Dataset:
    """The cached dataset of `events` events (wide: the high-cardinality variant), built
    first when missing; its rollups brought up to date unless `rollups` is False (the
    caller then has them built, `rollups_meanwhile`)."""
    path = cache_path(events, wide=wide)
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        build(path, events, log=log, wide=wide)
    data = Dataset(path=path, **json.loads(meta.read_text()))
    # Goals before the rollups: their first build writes the goals' hits day by day, where
    # goals added later are backfilled over every day at once.
    upgrade(data.url)
    add_goals(data.url)
    add_costs(data.url, data.first_day, data.last_day)
    if rollups:
        prepare(data.url, log=log)
    return data


def add_goals(url: str) -> None:
    """The bench site's goals and funnel (GOALS, FUNNEL), those missing added."""
    db = Database(url)
    try:
        with db.session() as session:
            site = session.scalars(select(Site).where(Site.domain == BENCH_SITE)).one()
            have = {g.name: g.id for g in list_goals(session, site)}
            for spec in GOALS:
                if spec["name"] not in have:
                    have[spec["name"]] = add_goal(session, site, **spec).id
            name, steps = FUNNEL
            if find_funnel(session, site, name) is None:
                add_funnel(session, site, name=name, steps=[have[s] for s in steps])
    finally:
        db.dispose()


# Ad spend per day (EUR cents) of the landings' paid campaigns, and one that ran no visits.
COSTS = {
    ("google", "cpc", "brand"): 4200,
    ("google", "cpc", "black_friday"): 9100,
    ("facebook", "paid_social", "launch"): 6300,
    ("bing", "cpc", "q4"): 1800,
    ("google", "cpc", "no_clicks_yet"): 700,
}


def add_costs(url: str, first_day: str, last_day: str) -> None:
    """Daily cost rows for COSTS over the dataset's days, through the import's own checks
    and storage (replaced when run again)."""
    day, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
    rows = []
    while day <= last:
        for (source, medium, campaign), cents in COSTS.items():
            tags = {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign}
            counts = {"impressions": cents * 3, "clicks": cents // 40}
            cost = {"cost": f"{cents / 100:.2f}", "currency": "EUR"}
            rows.append({"date": day.isoformat(), **tags, **cost, **counts})
        day += timedelta(days=1)
    db = Database(url)
    try:
        with db.session() as session:
            site = session.scalars(select(Site).where(Site.domain == BENCH_SITE)).one()
            for start in range(0, len(rows), MAX_API_ROWS):
                batch = parse_cost_json(rows[start : start + MAX_API_ROWS])
                assert not batch.problems, batch.problems[:3]
                store_costs(session, site, batch.rows)
    finally:
        db.dispose()


def prepare(url: str, *, log: bool = True) -> None:
    """Migrate to the current schema and bring the report rollups up to date, as the
    server's jobs would (quick once done: only days since the last refresh are rebuilt)."""
    began = time.monotonic()
    upgrade(url)
    db = Database(url)
    try:
        refresh_rollups(db)
    finally:
        db.dispose()
    if log:
        print(f"[datagen] rollups ready in {time.monotonic() - began:.0f} s", file=sys.stderr)


@contextmanager
def rollups_meanwhile(url: str) -> Iterator[None]:
    """`prepare` of the database at `url` run in another process while the block runs, on
    the other core: a first build at 10M events takes minutes, and the block's work (the
    columnar store's build) reads none of the tables it writes. Waited for when the block
    ends (RuntimeError if it failed); stopped if the block raises (the next refresh redoes
    the days it had not finished)."""
    command = [sys.executable, "-m", "bench.datagen", PREPARE_FLAG, url]
    with subprocess.Popen(command, cwd=BENCH_DIR.parent) as builder:
        try:
            yield
        except BaseException:
            builder.terminate()
            raise
    if builder.returncode != 0:
        raise RuntimeError(f"the rollup build of {url} failed ({builder.returncode}, see above)")
    if url.startswith("sqlite"):
        # The block's reads held one snapshot for minutes (the store's build): SQLite could not
        # fold the rollups' writes back into the file meanwhile, and the log reached 1.1 GB at
        # 10M events, which every later read would look its pages up in. Folded now.
        db = Database(url)
        try:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.dispose()


def build(path: Path, events: int, *, log: bool = True, wide: bool = False) -> None:
    began = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Named by process: two runs building the same dataset at once (two benchmarks in one
    # checkout) each write their own file, and the last one renamed wins; sharing one file
    # corrupted it. Files of builders no longer running are left-overs.
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    for old in path.parent.glob(f"{path.name}.partial-*"):
        if not _running(int(old.name.split(".partial-", 1)[1].split("-")[0])):
            old.unlink()
    url = f"sqlite:///{partial}"
    upgrade(url)
    site_id, api_key = accounts(url)
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    first_day = last_day - timedelta(days=DAYS - 1)
    generator = Generator(site_id, first_day, events, wide=wide)
    visits = made = 0
    conn = sqlite3.connect(partial)
    # SQLite's bulk path: a half-built file is thrown away anyway, so no journal and no
    # syncing; the tables' indexes are dropped and created again once every row is in
    # (one sort each instead of an index page visited per row: at 10M events the visit
    # index no longer fits SQLite's cache), with a cache big enough for those sorts.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(f"PRAGMA cache_size=-{BUILD_CACHE_KB}")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
        " AND tbl_name IN ('visits', 'events') AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    insert_visit = insert_statement("visits", VISIT_COLUMNS)
    insert_event = insert_statement("events", EVENT_COLUMNS)
    for day, (visit_rows, event_rows) in enumerate(generator.days(), start=1):
        with conn:
            conn.executemany(insert_visit, visit_rows)
            conn.executemany(insert_event, event_rows)
        visits += len(visit_rows)
        made += len(event_rows)
        if log and day % 10 == 0:
            print(
                f"[datagen] day {day}/{DAYS}: {made:,} events, {visits:,} visits", file=sys.stderr
            )
    with conn:
        for _name, sql in indexes:
            conn.execute(sql)
    conn.execute("PRAGMA journal_mode=WAL")  # the server's, set by `upgrade` above
    conn.close()
    info = Dataset(
        partial,
        BENCH_SITE,
        first_day.isoformat(),
        last_day.isoformat(),
        made,
        visits,
        api_key,
        WIDE if wide else "",
    )
    partial.rename(path)
    meta = {k: v for k, v in asdict(info).items() if k != "path"}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    if log:
        print(f"[datagen] {path.name} built in {time.monotonic() - began:.0f} s", file=sys.stderr)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def insert_statement(table: str, columns: list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def accounts(url: str) -> tuple[int, str]:
    """The site (public, so its page needs no login) and an API key for the Stats API."""
    db = Database(url)
    with db.session() as session:
        user = create_user(session, "bench@example.com", "bench-password", is_admin=True)
        site = add_site(session, BENCH_SITE, owner=user)
        site.public = True
        _key, plain = create_api_key(session, user, "bench")
        site_id = site.id
    db.dispose()
    return site_id, plain


if __name__ == "__main__" and sys.argv[1:2] == [PREPARE_FLAG]:
    prepare(sys.argv[2])
elif __name__ == "__main__":
    sizes = [arg for arg in sys.argv[1:] if arg != "--wide"]
    for arg in sizes or ["1M"]:
        print(dataset(parse_count(arg), wide="--wide" in sys.argv[1:]).path)


def postgres_copy(data: Dataset) -> str:
    """The dataset in our own PostgreSQL database (COPY from the SQLite file), cached by name.

    The database's comment records which dataset it holds; another one reloads it.
    """
    import psycopg

    from bench.common import postgres_database

    variant = f"_{data.variant}" if data.variant else ""
    name = f"tracker_bench_{data.events}_gen{GENERATOR_VERSION}{variant}"
    stamp = f"{data.path.name} {data.first_day}"
    url = postgres_database(name, fresh=False)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        comment = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if comment and comment[0] == stamp:
        prepare(url)
        return url
    url = postgres_database(name, fresh=True)
    upgrade(url)
    source = sqlite3.connect(data.path)
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        tables = [t for t in Base.metadata.sorted_tables if t.name != "alembic_version"]
        for table in tables:
            columns = [c.name for c in table.columns]
            cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table.name}")
            with conn.cursor().copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                while batch := cursor.fetchmany(10_000):
                    for row in batch:
                        copy.write_row(row)
            if "id" in columns:
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                    f" coalesce(max(id), 1)) FROM {table.name}"
                )
        conn.execute("ANALYZE")
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{stamp}'")
        conn.commit()
    source.close()
    prepare(url)
    return url
