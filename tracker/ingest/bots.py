"""Bot filter: user-agents' `is_bot`, the crawler-user-agents pattern list, headless browsers
and HTTP tools, empty user agents, and prefetch/preview requests.

In-app browsers (Facebook, Instagram, LinkedIn, TikTok...) are people and are kept; their
link-preview fetchers (facebookexternalhit, LinkedInBot...) are bots.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import crawleruseragents

from tracker.enrich.useragent import CACHE_SIZE, parse_user_agent

# Automation and HTTP libraries the crawler list does not all carry; a person never sends these.
_TOOLS = re.compile(
    r"headless|phantomjs|slimerjs|selenium|webdriver|puppeteer|playwright|lighthouse|"
    r"\bptst\b|pagespeed|^curl/|^wget/|python-|^python/|aiohttp|httpx|urllib|go-http-client|"
    r"^java/|okhttp|axios|node-fetch|undici|^got |libwww-perl|scrapy|httrack|postman|insomnia|"
    r"^mozilla/\d\.\d$|^mozilla/5\.0 \(compatible\)$",
    re.IGNORECASE,
)
# A browser user agent names a rendering engine or a browser family.
_BROWSER = re.compile(r"mozilla/|opera/|applewebkit|gecko|dalvik|cfnetwork", re.IGNORECASE)
# Headers of speculative loads: the page was fetched, nobody looked at it (yet).
# WSGI environ keys of speculative-load headers: the page was fetched, nobody looked at it.
_PREFETCH = (
    ("HTTP_PURPOSE", "prefetch"),
    ("HTTP_SEC_PURPOSE", "prefetch"),
    ("HTTP_X_MOZ", "prefetch"),
    ("HTTP_X_PURPOSE", "preview"),
)


@lru_cache(maxsize=CACHE_SIZE)
def is_bot_user_agent(user_agent: str) -> bool:
    """True for crawlers, headless browsers, HTTP tools and anything not a browser."""
    ua = user_agent.strip()
    if len(ua) < 12 or not _BROWSER.search(ua):
        return True
    if _TOOLS.search(ua) or parse_user_agent(ua).is_bot:
        return True
    return crawleruseragents.is_crawler(ua)


def is_prefetch(environ: Mapping[str, Any]) -> bool:
    """A prefetch or preview request, from its WSGI environ."""
    return any(value in str(environ.get(key, "")).lower() for key, value in _PREFETCH)
