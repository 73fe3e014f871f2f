"""Bot filter: is this user agent a person's browser? Plus prefetch/preview requests.

The verdict, in order:

1. Empty or shorter than 12 characters: a bot (no browser sends that).
2. A known-bot token anywhere: a bot. Known-bot tokens are the npm `isbot` package's pattern
   list (public domain, vendored in tracker/data/isbot_patterns.json), our own additions
   below (automation, speed testers, monitors, scanners, AI fetchers, HTTP libraries, and
   shapes no browser sends: a product inside the engine's "(KHTML, like Gecko; ...)" comment,
   a tool named for its job with a version such as TagInspector/2.1) and the
   `crawler-user-agents` package's list, minus the entries in _NOT_BOT_NAMES: generic
   words, names of people's apps that those lists also carry and a cut-off start.
3. A real browser engine token (AppleWebKit/, Gecko/, Trident/, Presto/, Chrome/, Safari/...)
   and no known-bot token: a person. Electron and QtWebEngine desktop apps (Slack, VS Code,
   Viber), Android WebViews (`; wv)`), in-app browsers (Facebook, Instagram, TikTok...,
   named or not) and kiosk browsers land here. A list's generic hit never overrules an engine.
4. No engine token: a bot when any list matches (the generic entries too), user-agents
   calls it a spider, or it names no browser family at all (curl, libraries, apps' HTTP).

In-app browsers are people and are kept; their link-preview fetchers (facebookexternalhit,
LinkedInBot...) are bots.

Updating the vendored isbot list (https://github.com/omrilotan/isbot, Unlicense):

    cd "$(mktemp -d)" && npm pack isbot            # isbot-X.Y.Z.tgz
    python -m tracker.ingest.bots --update-from isbot-X.Y.Z.tgz

The command reads the pattern list out of the package, converts what Python's `re` does not
take from JavaScript, checks that the combined expression compiles, and rewrites the JSON file
with the version; then run tests/test_bots.py and update the version in
tracker/data/LICENSES/isbot.txt.
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import crawleruseragents

from tracker.enrich.useragent import CACHE_SIZE, parse_user_agent

ISBOT_FILE = Path(__file__).resolve().parents[1] / "data" / "isbot_patterns.json"

# Our own known-bot tokens: what the lists miss, by kind (checked against tests/data/bots.tsv).
_OWN = (
    # automation and headless tools
    *("headless", "phantomjs", "slimerjs", "casperjs", "selenium", "webdriver", "puppeteer"),
    *("playwright", "wkhtmlto", "webkit2png", "jsdom/", "zombie.js", "prerender"),
    *("ghost inspector", "devtools"),  # devtools: IDEs' in-app simulators (WeChat DevTools)
    r"^mozilla/5\.0 \(unknown;",  # QtWebKit's platform when headless (PhantomJS-era monitors)
    # speed and SEO testers, synthetic monitors
    *("lighthouse", "pagespeed", "page speed", r"\bptst\b", "gtmetrix", "speedcurve", "sitebulb"),
    *("wappalyzer", "thousandeyes", "catchpoint", "ruxit", "datadog", "newrelic", "appinsights"),
    r"\bylt\b",  # Yellow Lab Tools
    # a tool that names itself by its job, with a version (TagInspector/2.1, FooClassifier/1.0)
    r"(?:classifier|inspector|measurement|analyzer|auditor|validator|checker)/v?\d",
    # a product inside the engine's comment: browsers close "(KHTML, like Gecko)" right there,
    # fetchers write "(KHTML, like Gecko; Google Search Console)" or "...; compatible; XBot/1.0)"
    "like gecko;",
    # security scanners
    *("acunetix", "nuclei", "wfuzz", "whatweb", "sqlmap", "nikto", r"\bnmap\b", "zgrab"),
    *("masscan", "ips-agent"),
    # Google's fetchers and transcoder (Web Light); AI assistants' fetchers (ChatGPT-User...)
    *("googleweblight", "google favicon", "google web preview", "google[-_][a-z]", "googleother"),
    # "-agent": ChatGPT-Agent and the like, not a pasted "User-Agent: Mozilla/5.0 ..." header
    *("googleagent", r"-google\b", "-user/", r"(?<!user)-agent\b", "tumblr/"),
    # HTTP libraries and tools
    *("^curl/", "^wget/", "python-", "^python/", "aiohttp", "httpx", "urllib", "go-http-client"),
    *("^java/", "okhttp", "axios", "node-fetch", "undici", "^got ", "libwww-perl", "scrapy"),
    *("httrack", "postman", "insomnia", "dart:io", r"^mozilla/\d\.\d$"),
    r"^mozilla/5\.0 \(compatible\)$",
)
# List entries that name no bot: generic words, and people's apps that those lists carry
# because the app's link-preview fetcher shares its name. They count only without an engine.
_NOT_BOT_NAMES = frozenset(
    {
        # isbot
        r"(?:^|[^g])news(?!sapphire)",  # news apps' in-app browsers (SmartNews, Toutiao)
        r"(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))",  # Google's own WebViews
        "cursor/",  # the Cursor editor (Electron)
        r"\(\)",
        r"^[<\(;]",  # a cut-off start, as in "; Android 14) AppleWebKit/... DuckDuckGo/5"
        r";\s\w+;$",
        r"\|",
        "tools",
        "server",
        "proxy",
        "download",
        "library",
        "capture",
        "detect",
        "insight",
        "inspect",
        "measure",
        "optimize",
        "radar",
        "catch",
        "grab",
        "analyzer",
        "archive",
        "audit",
        r"check\b",
        "classifier",
        "discovery",
        "retriever",
        "parser",
        "torrent",
        "advisor",
        "abuse",
        r"agent\b",
        "url",
        r"node\b",
        "java(?!;)",
        "feed",
        r"rss\b",
        "browsex",
        "dmbrowser",
        "ibisbrowser",
        "chromeframe",  # Google Chrome Frame, an Internet Explorer plug-in
        # crawler-user-agents
        "Sonic",  # Slack's desktop app
        "WhatsApp",
        "Viber",
        r"Code\/1\.",  # VS Code
        r"Notion\/",
        r"Trae\/",  # an Electron editor
        "Fluid",  # a site-specific browser
        "MetaIAB Facebook",  # Facebook's in-app browser
        r"AP3A\.240617\.008",  # an Android build, shared by every phone running it
    }
)
# A real browser engine's token: a person unless a known-bot token says otherwise.
_ENGINE = re.compile(
    r"applewebkit/\d|gecko/\d|like gecko|trident/\d|presto/\d|\bchrome/\d|firefox/\d|safari/\d",
    re.IGNORECASE,
)
# A browser user agent names a rendering engine or a browser family.
_BROWSER = re.compile(r"mozilla/|opera/|applewebkit|gecko|dalvik|cfnetwork", re.IGNORECASE)
# WSGI environ keys of speculative-load headers: the page was fetched, nobody looked at it.
_PREFETCH = (
    ("HTTP_PURPOSE", "prefetch"),
    ("HTTP_SEC_PURPOSE", "prefetch"),
    ("HTTP_X_MOZ", "prefetch"),
    ("HTTP_X_PURPOSE", "preview"),
)


def python_pattern(js: str) -> str:
    """An isbot (JavaScript) pattern as Python `re` takes it.

    Python's look-behinds need one width per branch, and a hyphen after a class escape
    (`[\\w\\d-.]`) is a literal hyphen in JavaScript but an error in Python.
    """
    behind = re.fullmatch(r"\(\?<!([^()]*)\)(.*)", js)
    if behind and "|" in behind.group(1):
        branches = behind.group(1).split("|")
        js = "".join(f"(?<!{b})" for b in branches) + behind.group(2)
    return re.sub(r"(\\[wdsWDS])-", r"\1\\-", js)


def _isbot_patterns() -> list[str]:
    return list(json.loads(ISBOT_FILE.read_text())["patterns"])


def _compile(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns) or "(?!)")


class _Regex:
    """One alternation of patterns; those anchored at the start are tried at the start only."""

    def __init__(self, patterns: list[str]) -> None:
        start = [p for p in patterns if p.startswith("^") and "|" not in p]
        self.start = _compile(start)
        self.anywhere = _compile([p for p in patterns if p not in start])

    def search(self, s: str) -> bool:
        return bool(self.start.match(s) or self.anywhere.search(s))


def _lower(pattern: str) -> str:
    """A case-insensitive pattern for lowercased text (escapes such as \\W are kept)."""
    return re.sub(r"(?<!\\)[A-Z]", lambda m: m.group().lower(), pattern)


class _Texts:
    """Which of many plain texts occur in a string: an index by first three characters.

    Most list entries are plain text. Python's `re` tries an alternation's branches one by one
    at every position, so one expression of 1,500 names costs ~1 ms a user agent; this, ~20 us.
    """

    _PLAIN = re.compile(r"(?:[^\\\[\](){}.*+?^$|]|\\\W)+")

    def __init__(self, patterns: list[str]) -> None:
        texts = [re.sub(r"\\(\W)", r"\1", p) for p in patterns if self._PLAIN.fullmatch(p)]
        self.rest = [p for p in patterns if not self._PLAIN.fullmatch(p)]
        self.short = tuple(t for t in texts if len(t) < 3)
        self.index: dict[str, tuple[str, ...]] = {}
        for text in texts:
            if len(text) >= 3:
                self.index[text[:3]] = (*self.index.get(text[:3], ()), text)

    def search(self, s: str) -> bool:
        if any(text in s for text in self.short):
            return True
        index = self.index
        for i in range(len(s) - 2):
            candidates = index.get(s[i : i + 3])
            if candidates and any(s.startswith(text, i) for text in candidates):
                return True
        return False


_ISBOT = _isbot_patterns()
_CRAWLERS = [item["pattern"] for item in crawleruseragents.CRAWLER_USER_AGENTS_DATA]
# isbot's patterns and ours ignore case (matched against the lowercased user agent);
# crawler-user-agents' are case-sensitive.
_KNOWN_TEXTS_I = _Texts(
    [_lower(python_pattern(p)) for p in _ISBOT if p not in _NOT_BOT_NAMES] + list(_OWN)
)
_KNOWN_I = _Regex(_KNOWN_TEXTS_I.rest)
_KNOWN_TEXTS_CS = _Texts([p for p in _CRAWLERS if p not in _NOT_BOT_NAMES])
_KNOWN_CS = _Regex(_KNOWN_TEXTS_CS.rest)
_GENERIC_I = _Regex([_lower(python_pattern(p)) for p in _ISBOT if p in _NOT_BOT_NAMES])
_GENERIC_CS = _Regex([p for p in _CRAWLERS if p in _NOT_BOT_NAMES])


def _known_bot(ua: str, lower: str) -> bool:
    return bool(
        _KNOWN_TEXTS_I.search(lower)
        or _KNOWN_I.search(lower)
        or _KNOWN_TEXTS_CS.search(ua)
        or _KNOWN_CS.search(ua)
    )


@lru_cache(maxsize=CACHE_SIZE)
def is_bot_user_agent(user_agent: str) -> bool:
    """True for crawlers, fetchers, monitors, headless browsers, HTTP tools and non-browsers."""
    ua = user_agent.strip()
    lower = ua.lower()
    if len(ua) < 12 or _known_bot(ua, lower):
        return True
    if _ENGINE.search(ua):
        return False
    return bool(
        not _BROWSER.search(ua)
        or _GENERIC_I.search(lower)
        or _GENERIC_CS.search(ua)
        or parse_user_agent(ua).is_bot
    )


def is_prefetch(environ: Mapping[str, Any]) -> bool:
    """A prefetch or preview request, from its WSGI environ."""
    return any(value in str(environ.get(key, "")).lower() for key, value in _PREFETCH)


def read_isbot_package(path: Path) -> tuple[str, list[str]]:
    """(version, patterns) from `npm pack isbot`'s tarball, its unpacked directory or a JSON."""
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return (data.get("version", "") if isinstance(data, dict) else ""), (
            data["patterns"] if isinstance(data, dict) else data
        )
    if path.is_dir():
        package = json.loads((path / "package.json").read_text())
        script = (path / "index.js").read_text()
    else:
        with tarfile.open(path) as tar:
            package = json.load(_member(tar, "package/package.json"))
            script = _member(tar, "package/index.js").read().decode()
    found = re.search(r"var patterns_default = (\[.*?\n\]);", script, re.DOTALL)
    if not found:
        raise ValueError(f"no pattern list in {path}'s index.js")
    return str(package["version"]), list(json.loads(found.group(1)))


def _member(tar: tarfile.TarFile, name: str) -> Any:
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{name} missing from the isbot tarball")
    return member


def update_isbot(source: Path, target: Path = ISBOT_FILE) -> int:
    """Rewrite the vendored list from an isbot package; the number of patterns."""
    version, patterns = read_isbot_package(source)
    _compile([python_pattern(p) for p in patterns])  # raises re.error if one is not Python
    document = {
        "source": "https://www.npmjs.com/package/isbot",
        "version": version,
        "licence": "Unlicense (public domain); see tracker/data/LICENSES/isbot.txt",
        "patterns": patterns,
    }
    target.write_text(json.dumps(document, indent=1) + "\n")
    return len(patterns)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tracker.ingest.bots", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--update-from", type=Path, required=True, metavar="PATH")
    args = parser.parse_args(argv)
    count = update_isbot(args.update_from)
    print(f"{ISBOT_FILE}: {count} patterns")


if __name__ == "__main__":
    main()
