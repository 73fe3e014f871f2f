"""Enrichment steps, each alone: source and channel, user agents, bots, spam, client IP."""

from __future__ import annotations

import pytest

from tracker.enrich.source import DIRECT, attribute, channel_group, source_table
from tracker.enrich.useragent import parse_user_agent, screen_class
from tracker.enrich.visitor import visitor_id
from tracker.ingest.bots import is_bot_user_agent
from tracker.ingest.client import client_ip, parse_networks
from tracker.ingest.spam import is_spam_referrer


@pytest.mark.parametrize(
    ("query", "referrer", "source", "channel"),
    [
        ("", "", DIRECT, "Direct"),
        ("", "https://www.google.com/", "Google", "Organic Search"),
        ("", "https://www.google.co.uk/search?q=x", "Google", "Organic Search"),
        ("", "https://www.google.com.br/", "Google", "Organic Search"),
        ("", "android-app://com.google.android.googlequicksearchbox/", "Google", "Organic Search"),
        ("", "https://mail.google.com/mail/u/0/", "Gmail", "Email"),
        ("", "https://news.google.com/", "Google News", "Organic Search"),
        ("", "https://www.bing.com/search?q=x", "Bing", "Organic Search"),
        ("", "https://duckduckgo.com/", "DuckDuckGo", "Organic Search"),
        ("", "https://l.facebook.com/l.php?u=x", "Facebook", "Organic Social"),
        ("", "https://t.co/abc", "X (Twitter)", "Organic Social"),
        ("", "https://www.linkedin.com/feed/", "LinkedIn", "Organic Social"),
        ("", "https://old.reddit.com/r/x", "Reddit", "Organic Social"),
        ("", "https://www.youtube.com/watch?v=1", "YouTube", "Organic Video"),
        ("", "https://chatgpt.com/", "ChatGPT", "AI Assistants"),
        ("", "https://www.perplexity.ai/search", "Perplexity", "AI Assistants"),
        ("", "https://gemini.google.com/app", "Gemini", "AI Assistants"),
        ("", "https://copilot.microsoft.com/", "Copilot", "AI Assistants"),
        ("", "https://claude.ai/chat/1", "Claude", "AI Assistants"),
        ("", "https://www.amazon.de/dp/1", "Amazon", "Organic Shopping"),
        ("", "https://someblog.net/post", "someblog.net", "Referral"),
        ("", "https://www.someblog.net/post", "someblog.net", "Referral"),
        ("", "https://example.substack.com/p/x", "Newsletter", "Email"),
        ("utm_source=chatgpt.com", "", "ChatGPT", "AI Assistants"),
        ("utm_source=google&utm_medium=cpc", "", "Google", "Paid Search"),
        ("utm_source=bing&utm_medium=ppc", "", "Bing", "Paid Search"),
        ("utm_source=facebook&utm_medium=paid_social", "", "Facebook", "Paid Social"),
        ("utm_source=fb&utm_medium=cpc", "", "Facebook", "Paid Social"),
        ("utm_source=youtube&utm_medium=cpv", "", "YouTube", "Paid Video"),
        ("utm_source=amazon&utm_medium=cpc", "", "Amazon", "Paid Shopping"),
        ("utm_source=x&utm_medium=cpc&utm_campaign=shop-sale", "", "X (Twitter)", "Paid Shopping"),
        ("utm_source=dv360&utm_medium=display", "", "dv360", "Display"),
        ("utm_source=partner&utm_medium=cpm", "", "partner", "Display"),
        ("utm_source=partner&utm_medium=paid", "", "partner", "Paid Other"),
        ("utm_source=a&utm_medium=cpc&utm_campaign=cross-network-q1", "", "a", "Cross-network"),
        ("utm_source=insta&utm_medium=social", "", "insta", "Organic Social"),
        ("utm_source=vid&utm_medium=video", "", "vid", "Organic Video"),
        ("utm_source=foo&utm_medium=organic", "", "foo", "Organic Search"),
        ("utm_source=blog&utm_medium=referral", "", "blog", "Referral"),
        ("utm_source=newsletter&utm_medium=email", "", "Newsletter", "Email"),
        ("utm_source=crm&utm_medium=e-mail", "", "crm", "Email"),
        ("utm_source=partner&utm_medium=affiliate", "", "partner", "Affiliates"),
        ("utm_source=podcast&utm_medium=audio", "", "podcast", "Audio"),
        ("utm_source=sms", "", "sms", "SMS"),
        ("utm_source=app&utm_medium=web-push", "", "app", "Mobile Push Notifications"),
        ("utm_source=firebase", "", "firebase", "Mobile Push Notifications"),
        ("utm_source=partner", "", "partner", "Referral"),
        ("ref=producthunt", "", "Product Hunt", "Organic Social"),
        ("gclid=abc", "", "Google", "Paid Search"),
        ("gclid=abc", "https://www.google.com/", "Google", "Paid Search"),
        ("msclkid=abc", "", "Bing", "Paid Search"),
        ("ttclid=abc", "", "TikTok", "Paid Social"),
        ("li_fat_id=abc", "", "LinkedIn", "Paid Social"),
        ("fbclid=abc", "https://l.facebook.com/", "Facebook", "Organic Social"),
        ("dclid=abc", "", "Google", "Display"),
        ("UTM_SOURCE=Google&UTM_MEDIUM=CPC", "", "Google", "Paid Search"),
        ("utm_source=Partner&utm_medium=affiliate", "", "partner", "Affiliates"),
    ],
)
def test_source_and_channel(query: str, referrer: str, source: str, channel: str) -> None:
    result = attribute(query, referrer, is_same_site=False)
    assert (result.source, result.channel) == (source, channel)


def test_same_site_referrer_is_not_a_source() -> None:
    result = attribute("", "https://example.com/previous", is_same_site=True)
    assert (result.source, result.channel, result.referrer) == (DIRECT, "Direct", "")


def test_attribution_keeps_all_utm_fields_and_the_click_id() -> None:
    query = (
        "utm_source=nl&utm_medium=email&utm_campaign=may&utm_term=shoes&utm_content=hero&gclid=XYZ"
    )
    result = attribute(query, "https://x.test/a?b=c#d", is_same_site=False)
    assert (
        result.utm_source,
        result.utm_medium,
        result.utm_campaign,
        result.utm_term,
        result.utm_content,
        result.click_id,
        result.referrer,
    ) == ("nl", "email", "may", "shoes", "hero", "gclid:XYZ", "https://x.test/a")


def test_every_source_in_the_data_file_has_a_known_category() -> None:
    table = source_table()
    assert table.for_host("google.fr").name == "Google"  # type: ignore[union-attr]
    assert table.for_host("notgoogle.example") is None
    assert table.for_host("google.example.com") is None
    assert table.for_value("IG").name == "Instagram"  # type: ignore[union-attr]


def test_channel_group_direct_needs_no_source_and_no_medium() -> None:
    assert channel_group(source="(direct)", medium="", campaign="", category="") == "Direct"
    assert channel_group(source="(direct)", medium="cpc", campaign="", category="") == (
        "Paid Other"
    )


CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (CHROME, ("Chrome", "120", "Windows", "10", "Desktop")),
        (IPHONE, ("Mobile Safari", "17", "iOS", "17.1", "Mobile")),
        (IPAD, ("Mobile Safari", "17", "iOS", "17.1", "Tablet")),
        (FIREFOX_LINUX, ("Firefox", "120", "Linux", "", "Desktop")),
        ("", ("", "", "", "", "")),
    ],
)
def test_user_agent_parsing(ua: str, expected: tuple[str, ...]) -> None:
    info = parse_user_agent(ua)
    assert (info.browser, info.browser_version, info.os, info.os_version, info.device) == expected


def test_user_agent_parsing_is_cached() -> None:
    parse_user_agent.cache_clear()
    parse_user_agent(CHROME)
    parse_user_agent(CHROME)
    assert parse_user_agent.cache_info().hits == 1


@pytest.mark.parametrize(
    ("width", "size"),
    [
        (None, ""),
        (0, ""),
        (375, "Mobile"),
        (575, "Mobile"),
        (576, "Tablet"),
        (991, "Tablet"),
        (992, "Laptop"),
        (1439, "Laptop"),
        (1440, "Desktop"),
        (2560, "Desktop"),
    ],
)
def test_screen_class(width: int | None, size: str) -> None:
    assert screen_class(width) == size


PEOPLE = [
    CHROME,
    IPHONE,
    IPAD,
    FIREFOX_LINUX,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    # In-app browsers are people reading a link someone shared.
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1;FBSS/3]",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 "
    "[FB_IAB/FB4A;FBAV/442.0.0.35.109;]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 Instagram 302.0.0.23.114 (iPhone13,2; iOS 16_6; en_US; en)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [LinkedInApp]/9.29.2",
    "Mozilla/5.0 (Linux; Android 12; SM-A515F Build/SP1A.210812.016; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/110.0.5481.153 Mobile Safari/537.36 trill_2022903040 "
    "BytedanceWebview/d8a21c6",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 Twitter for iPhone/10.18",
]
BOTS = [
    "",
    "-",
    "curl/8.4.0",
    "Wget/1.21.4",
    "python-requests/2.31.0",
    "Python-urllib/3.11",
    "Go-http-client/1.1",
    "axios/1.6.2",
    "okhttp/4.12.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; "
    "+https://openai.com/gptbot)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/109.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/100.0.4896.127 Safari/537.36 Edg/100.0.1185.50 BingPreview/1.0b",
    "Twitterbot/1.0",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
]


@pytest.mark.parametrize("ua", PEOPLE)
def test_people_are_not_bots(ua: str) -> None:
    assert is_bot_user_agent(ua) is False


@pytest.mark.parametrize("ua", BOTS)
def test_bots_are_bots(ua: str) -> None:
    assert is_bot_user_agent(ua) is True


@pytest.mark.parametrize(
    ("referrer", "spam"),
    [
        ("https://semalt.com/", True),
        ("https://www.semalt.com/page", True),
        ("http://best.buttons-for-website.com/", True),
        ("https://notsemalt.com/", False),
        ("https://www.google.com/", False),
        ("", False),
    ],
)
def test_spam_referrers(referrer: str, spam: bool) -> None:
    assert is_spam_referrer(referrer) is spam


PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.1"])


@pytest.mark.parametrize(
    ("remote", "forwarded", "ip"),
    [
        ("198.51.100.1", "", "198.51.100.1"),
        ("198.51.100.1", "81.2.69.160", "198.51.100.1"),  # not a proxy of ours: ignored
        ("10.1.2.3", "81.2.69.160", "81.2.69.160"),
        ("10.1.2.3", "8.8.8.8, 81.2.69.160", "81.2.69.160"),  # rightmost untrusted hop
        ("10.1.2.3", "81.2.69.160, 192.0.2.1", "81.2.69.160"),  # skip our second proxy
        ("10.1.2.3", "192.168.1.4", "10.1.2.3"),  # private: not believed
        ("10.1.2.3", "garbage", "10.1.2.3"),
        ("10.1.2.3", "2001:4860:4860::8888", "2001:4860:4860::8888"),
    ],
)
def test_client_ip(remote: str, forwarded: str, ip: str) -> None:
    assert client_ip(remote, forwarded, PROXIES) == ip


def test_visitor_id_depends_on_every_input() -> None:
    base = visitor_id(b"s" * 32, 1, "203.0.113.5", CHROME)
    assert base == visitor_id(b"s" * 32, 1, "203.0.113.5", CHROME)
    others = {
        visitor_id(b"t" * 32, 1, "203.0.113.5", CHROME),
        visitor_id(b"s" * 32, 2, "203.0.113.5", CHROME),
        visitor_id(b"s" * 32, 1, "203.0.113.6", CHROME),
        visitor_id(b"s" * 32, 1, "203.0.113.5", IPHONE),
    }
    assert base not in others and len(others) == 4
    assert -(2**63) <= base < 2**63
