"""Classification speed: user agents (bot check + parse) and referrers (source and channel).

Cold: caches cleared, every input distinct (what a user agent or landing costs the first time
the collector sees it); cached: the same inputs again (what the rest cost). Inputs are
bench/user_agents.txt and bench/landings.tsv, made distinct by varying a version number
(user agents) or adding a query parameter that attribution ignores (landings).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import crawleruseragents

from bench.common import BENCH_DIR, Figure, Options, median
from tracker.enrich.source import attribute
from tracker.enrich.useragent import parse_user_agent
from tracker.ingest.bots import is_bot_user_agent

# The collector ingests 3,000+ events/s; a cold bot check should stay well under 1 ms.
TARGET_CACHED_PER_S = 3000
TARGET_BOT_CHECK_COLD_PER_S = 1000
_LAST_NUMBER = re.compile(r"\d+")
T = TypeVar("T")


def user_agents(count: int) -> list[str]:
    """`count` distinct browser user agents: the bench's list with its last number varied."""
    base = [ua for ua in (BENCH_DIR / "user_agents.txt").read_text().splitlines() if ua]

    def vary(i: int) -> str:
        ua = base[i % len(base)]
        last = list(_LAST_NUMBER.finditer(ua))[-1]
        return f"{ua[: last.start()]}{int(last.group()) + i // len(base)}{ua[last.end() :]}"

    return [vary(i) for i in range(count)]


def landings(count: int) -> list[tuple[str, str]]:
    """`count` distinct (query, referrer) pairs from the bench's landing mix."""
    base = []
    for line in (BENCH_DIR / "landings.tsv").read_text().splitlines():
        if not line.startswith("#"):
            referrer, _, query = line.partition("\t")
            base.append((query, referrer))
    return [
        ((q + "&" if q else "") + f"bench={i}", r)
        for i, (q, r) in ((i, base[i % len(base)]) for i in range(count))
    ]


def _classify_ua(ua: str) -> None:
    if not is_bot_user_agent(ua):
        parse_user_agent(ua)


def _clear_ua_caches() -> None:
    is_bot_user_agent.cache_clear()
    parse_user_agent.cache_clear()


def _rate(items: Sequence[T], fn: Callable[[T], object]) -> float:
    began = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - began)


def _cold_and_cached(
    items: Sequence[T], fn: Callable[[T], object], clear: Callable[[], None], reps: int
) -> tuple[list[float], list[float]]:
    cold, cached = [], []
    for _ in range(reps):
        clear()
        cold.append(_rate(items, fn))
        cached.append(_rate(items, fn))
    clear()
    return cold, cached


def run(opts: Options) -> list[Figure]:
    count = 400 if opts.events <= 10_000 else 8000  # within the caches' 8,192 entries
    uas = user_agents(count)
    _classify_ua(uas[0])  # load user-agents' regexes outside the timing
    _clear_ua_caches()
    bot_cold, _ = _cold_and_cached(
        uas, is_bot_user_agent.__wrapped__, lambda: None, opts.reps
    )  # the bot check alone, never cached
    ua_cold, ua_cached = _cold_and_cached(uas, _classify_ua, _clear_ua_caches, opts.reps)
    # Same-run baseline: the crawler-user-agents package's own check, the list used before.
    lists_cold, _ = _cold_and_cached(uas, crawleruseragents.is_crawler, lambda: None, opts.reps)

    def attribute_one(landing: tuple[str, str]) -> None:
        attribute(landing[0], landing[1], is_same_site=False)

    cache_clear = getattr(attribute, "cache_clear", lambda: None)
    ref_cold, ref_cached = _cold_and_cached(landings(count), attribute_one, cache_clear, opts.reps)
    note = f"{count:,} distinct inputs, median of {opts.reps}"
    return [
        Figure(
            "classify",
            "bot check, cold",
            median(bot_cold),
            "/s",
            baseline=median(lists_cold),
            baseline_name="crawler-user-agents' is_crawler",
            target=f">= {TARGET_BOT_CHECK_COLD_PER_S:,}/s (< 1 ms)",
            passed=median(bot_cold) >= TARGET_BOT_CHECK_COLD_PER_S,
            note=note + "; browsers' user agents (the slowest path: every list is searched)",
            samples=bot_cold,
        ),
        Figure(
            "classify",
            "user agents (bot check + parse), cold",
            median(ua_cold),
            "/s",
            note=note + "; user-agents' parse is most of it",
            samples=ua_cold,
        ),
        Figure(
            "classify",
            "user agents (bot check + parse), cached",
            median(ua_cached),
            "/s",
            target=f">= {TARGET_CACHED_PER_S:,}/s",
            passed=median(ua_cached) >= TARGET_CACHED_PER_S,
            samples=ua_cached,
        ),
        Figure(
            "classify",
            "referrer attribution, cold",
            median(ref_cold),
            "/s",
            note=note + ("" if hasattr(attribute, "cache_clear") else "; attribute() has no cache"),
            samples=ref_cold,
        ),
        Figure(
            "classify",
            "referrer attribution, cached",
            median(ref_cached),
            "/s",
            target=f">= {TARGET_CACHED_PER_S:,}/s",
            passed=median(ref_cached) >= TARGET_CACHED_PER_S,
            samples=ref_cached,
        ),
    ]
