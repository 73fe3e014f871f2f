"""User agent -> browser, OS, device type; cached, because real traffic repeats user agents.

Device type: "Console" and "TV" when the user agent names one (PlayStation, Xbox, Nintendo;
Tizen/webOS smart TVs, Android TV, Fire TV, Chromecast, HbbTV, Roku, Apple TV...), else
user-agents' desktop / mobile / tablet verdict, corrected where it is wrong: Android without
"Mobile" is a tablet (Chrome's convention), with "Mobile" a phone; "(Android N; Tablet;" is
Firefox on a tablet; KaiOS and Opera Mini are phones; any X11, Windows or Mac platform is a
desktop. An iPad in desktop mode (Safari's default since iPadOS 13) sends exactly a Mac's
user agent and counts as Desktop: the user agent cannot tell them apart.
"""

from __future__ import annotations

import re
from functools import lru_cache

import user_agents

from tracker.enrich.device import DeviceInfo

# Enough for the distinct user agents of a busy day; each entry is a few hundred bytes.
CACHE_SIZE = 8192


_CONSOLE = re.compile(r"playstation|xbox|nintendo", re.IGNORECASE)
_TV = re.compile(
    r"smart-?tv|web0s|webostv|netcast|hbbtv|\bcrkey/|android ?tv|googletv|\bbravia\b|"
    r"\baft[a-z0-9]{1,6}(?: build|\))|\broku|apple ?tv|\btvos\b|\bviera\b|tv safari|"
    r"\bomi/|sonycebrowser|\bvidaa\b|\bnettv/",
    re.IGNORECASE,
)
_ANDROID = re.compile(r"android", re.IGNORECASE)
_MOBILE_WORD = re.compile(r"\bmobile\b", re.IGNORECASE)
_KINDLE = re.compile(r"\bkindle\b|\bsilk\b|\bkf[a-z]{2,4}\b", re.IGNORECASE)
_TABLET = re.compile(r"\(android [\d.]+; tablet;", re.IGNORECASE)
_PHONE = re.compile(r"kaios|opera mini|^mozilla/5\.0 \(mobile;", re.IGNORECASE)
_DESKTOP = re.compile(r"\((?:x11|windows nt|macintosh)[;)]", re.IGNORECASE)


def _device(user_agent: str, ua: user_agents.parsers.UserAgent) -> str:
    if _CONSOLE.search(user_agent):
        return "Console"
    if _TV.search(user_agent):
        return "TV"
    if _TABLET.search(user_agent):
        return "Tablet"
    if _PHONE.search(user_agent):
        return "Mobile"
    if ua.is_tablet:
        android_phone = _ANDROID.search(user_agent) and _MOBILE_WORD.search(user_agent)
        return "Mobile" if android_phone and not _KINDLE.search(user_agent) else "Tablet"
    if ua.is_mobile:
        return "Mobile"
    if ua.is_pc or _DESKTOP.search(user_agent):
        return "Desktop"
    return "Mobile" if _MOBILE_WORD.search(user_agent) else ""


def _version(parts: tuple[object, ...], keep: int) -> str:
    return ".".join(str(p) for p in parts[:keep] if p not in (None, ""))


@lru_cache(maxsize=CACHE_SIZE)
def parse_user_agent(user_agent: str) -> DeviceInfo:
    """Parse once per distinct user agent; later calls are a dictionary lookup."""
    ua = user_agents.parse(user_agent)
    browser = ua.browser.family if ua.browser.family != "Other" else ""
    os_name = ua.os.family if ua.os.family != "Other" else ""
    return DeviceInfo(
        browser=browser[:64],
        # Major browser versions are what people compare; OS versions need the minor (iOS 17.4).
        browser_version=_version(ua.browser.version, 1)[:32] if browser else "",
        os=os_name[:64],
        os_version=_version(ua.os.version, 2)[:32] if os_name else "",
        device=_device(user_agent, ua),
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
