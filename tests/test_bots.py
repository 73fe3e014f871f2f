"""Bot filter and device type, measured on our own labelled tables (tests/data/*.tsv).

bots.tsv: real bot user agents by kind; browsers.tsv: real people's browsers by kind, with
the device type each must report. Both were written for these tests from vendors' published
user agents; neither is a copy of another project's fixtures.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections import defaultdict
from pathlib import Path

import pytest

from tracker.enrich.useragent import parse_user_agent
from tracker.ingest import bots
from tracker.ingest.bots import is_bot_user_agent, python_pattern, update_isbot

DATA = Path(__file__).parent / "data"


def _table(name: str) -> list[list[str]]:
    lines = (DATA / name).read_text().splitlines()
    return [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]


BOTS: dict[str, list[str]] = defaultdict(list)
for _kind, _ua in _table("bots.tsv"):
    BOTS[_kind].append(_ua)
BROWSERS = [(kind, device, ua) for kind, device, ua in _table("browsers.tsv")]

# Share of each kind's bots that must be dropped. Every kind is at 100% today; the floor
# leaves room for one odd entry when the vendored lists are updated, not for a kind to slip.
RECALL = {
    "search": 1.0,
    "seo": 0.97,
    "speed": 1.0,
    "monitor": 0.97,
    "preview": 0.97,
    "ads": 1.0,
    "transcoder": 1.0,
    "ai_crawler": 0.97,
    "ai_fetcher": 1.0,
    "scanner": 0.96,
    "headless": 0.95,
    "http_library": 1.0,
    "feed": 0.95,
}
# Browsers we knowingly drop as bots (at most one): none.
KNOWN_FALSE_POSITIVES: set[str] = set()


def test_tables_are_big_enough_and_cover_every_kind() -> None:
    assert set(BOTS) == set(RECALL)
    assert sum(len(uas) for uas in BOTS.values()) >= 300
    assert len(BROWSERS) >= 200
    kinds = {kind for kind, _, _ in BROWSERS}
    assert {"inapp", "webview", "electron", "qt", "kiosk", "tv", "console"} <= kinds
    assert len(KNOWN_FALSE_POSITIVES) <= 1


@pytest.mark.parametrize("kind", sorted(RECALL))
def test_bots_of_each_kind_are_dropped(kind: str) -> None:
    uas = BOTS[kind]
    missed = [ua for ua in uas if not is_bot_user_agent(ua)]
    assert (len(uas) - len(missed)) / len(uas) >= RECALL[kind], missed


@pytest.mark.parametrize(("kind", "ua"), [(k, ua) for k, _, ua in BROWSERS])
def test_people_are_kept(kind: str, ua: str) -> None:
    assert is_bot_user_agent(ua) is (ua in KNOWN_FALSE_POSITIVES)


def test_a_list_hit_does_not_overrule_a_browser_engine() -> None:
    # crawler-user-agents lists "Sonic" (Slack's link fetcher) and isbot "news": generic hits.
    slack = next(ua for _, _, ua in BROWSERS if "Slack_SSB" in ua)
    smartnews = next(ua for _, _, ua in BROWSERS if "SmartNews" in ua)
    assert bots._GENERIC_CS.search(slack) and not is_bot_user_agent(slack)
    assert bots._GENERIC_I.search(smartnews.lower()) and not is_bot_user_agent(smartnews)
    # Without an engine the same hits are bots; a known-bot token overrules an engine.
    assert is_bot_user_agent("Sonic/1.0 (link unfurler)")
    assert is_bot_user_agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 (compatible; ExampleBot/1.0)"
    )


def test_short_and_engine_less_user_agents_are_bots() -> None:
    for ua in ("", "   ", "Mozilla/5.0", "okhttp", "SomeApp/1.2 (iOS 17)", "Java/17.0.2"):
        assert is_bot_user_agent(ua), ua


def test_verdicts_are_cached() -> None:
    is_bot_user_agent.cache_clear()
    is_bot_user_agent(BROWSERS[0][2])
    is_bot_user_agent(BROWSERS[0][2])
    assert is_bot_user_agent.cache_info().hits == 1


def test_isbot_patterns_become_python_patterns() -> None:
    assert python_pattern("(?<! channel/|google/)google(?!(?:wv|app))") == (
        "(?<! channel/)(?<!google/)google(?!(?:wv|app))"
    )
    assert python_pattern(r"^x\((?:\s?[\w\d-.]+)\)$") == r"^x\((?:\s?[\w\d\-.]+)\)$"
    assert python_pattern(r"(?<!cam)scan") == r"(?<!cam)scan"
    vendored = json.loads(bots.ISBOT_FILE.read_text())
    assert vendored["version"] and len(vendored["patterns"]) > 150
    for pattern in vendored["patterns"]:
        re.compile(python_pattern(pattern))
    licence = (bots.ISBOT_FILE.parent / "LICENSES" / "isbot.txt").read_text()
    assert f"version {vendored['version']}" in licence and "Unlicense" in licence


def test_update_reads_the_list_out_of_an_npm_tarball(tmp_path: Path) -> None:
    index = (
        'var x = 1;\n// src/patterns.json\nvar patterns_default = [\n  "bot",\n  "(?<!a|bc)x"\n];\n'
    )
    tarball = tmp_path / "isbot-9.9.9.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, text in (("package.json", '{"version": "9.9.9"}'), ("index.js", index)):
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target = tmp_path / "isbot_patterns.json"
    assert update_isbot(tarball, target) == 2
    document = json.loads(target.read_text())
    assert (document["version"], document["patterns"]) == ("9.9.9", ["bot", "(?<!a|bc)x"])


# Devices whose user agents are not browsers (dropped as bots) but still name the device.
DEVICES_WITHOUT_BROWSER = [
    ("TV", "Roku/DVP-12.5 (12.5.0.4174-AE)"),
    ("TV", "AppleCoreMedia/1.0.0.21K69 (Apple TV; U; CPU OS 17_1 like Mac OS X; en_us)"),
    ("TV", "AppleTV11,1/11.1"),
    (
        "Mobile",
        "Mozilla/5.0 (Linux; Tizen 2.3; SAMSUNG SM-Z130H) AppleWebKit/537.3 (KHTML, like Gecko) "
        "SamsungBrowser/1.0 Mobile Safari/537.3",
    ),
    ("", "curl/8.4.0"),
    ("", ""),
]


@pytest.mark.parametrize(
    ("device", "ua"), [(d, ua) for _, d, ua in BROWSERS] + DEVICES_WITHOUT_BROWSER
)
def test_device_type(device: str, ua: str) -> None:
    assert parse_user_agent(ua).device == device


def test_ipad_in_desktop_mode_is_a_mac() -> None:
    # Safari on iPadOS 13+ asks for desktop sites with a Mac's user agent, byte for byte.
    ipad_desktop_mode = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.2 Safari/605.1.15"
    )
    assert parse_user_agent(ipad_desktop_mode).device == "Desktop"
