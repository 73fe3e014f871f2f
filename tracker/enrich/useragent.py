"""User agent -> browser, OS, device type; cached, because real traffic repeats user agents."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import user_agents

# Enough for the distinct user agents of a busy day; each entry is a few hundred bytes.
CACHE_SIZE = 8192


@dataclass(frozen=True)
class DeviceInfo:
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str  # "Desktop", "Mobile", "Tablet" or "" when the user agent does not say
    is_bot: bool  # user-agents' own verdict; ingest.bots combines it with other checks


def _version(parts: tuple[object, ...], keep: int) -> str:
    return ".".join(str(p) for p in parts[:keep] if p not in (None, ""))


@lru_cache(maxsize=CACHE_SIZE)
def parse_user_agent(user_agent: str) -> DeviceInfo:
    """Parse once per distinct user agent; later calls are a dictionary lookup."""
    ua = user_agents.parse(user_agent)
    if ua.is_tablet:
        device = "Tablet"
    elif ua.is_mobile:
        device = "Mobile"
    elif ua.is_pc:
        device = "Desktop"
    else:
        device = ""
    browser = ua.browser.family if ua.browser.family != "Other" else ""
    os_name = ua.os.family if ua.os.family != "Other" else ""
    return DeviceInfo(
        browser=browser[:64],
        # Major browser versions are what people compare; OS versions need the minor (iOS 17.4).
        browser_version=_version(ua.browser.version, 1)[:32] if browser else "",
        os=os_name[:64],
        os_version=_version(ua.os.version, 2)[:32] if os_name else "",
        device=device,
        is_bot=bool(ua.is_bot),
    )


def screen_class(width: int | None) -> str:
    """Viewport width in CSS px -> the size class reports group by (Plausible's buckets)."""
    if width is None or width <= 0:
        return ""
    if width < 576:
        return "Mobile"
    if width < 992:
        return "Tablet"
    if width < 1440:
        return "Laptop"
    return "Desktop"
