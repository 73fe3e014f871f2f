"""Source and channel: where a visit came from, from its landing URL and referrer.

Source follows DESIGN.md: `utm_source` (or `source`/`ref`) when present, else the referrer's
host mapped to a known name (tracker/data/sources.toml), else that host; same-site referrers
are not sources; nothing -> "Direct / None". Channel is Google Analytics 4's default channel
group, evaluated in Google's published order, plus "AI Assistants" for chat assistants.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from urllib.parse import parse_qsl, urlsplit

DIRECT = "Direct / None"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CATEGORIES = frozenset({"search", "social", "video", "shopping", "email", "ai"})

# Click ids ad platforms append to landing URLs: param -> (source, implied medium).
# fbclid is added to every outbound Facebook link, paid or not, so it implies no medium.
CLICK_IDS: dict[str, tuple[str, str]] = {
    "gclid": ("Google", "cpc"),
    "gbraid": ("Google", "cpc"),
    "wbraid": ("Google", "cpc"),
    "dclid": ("Google", "display"),
    "msclkid": ("Bing", "cpc"),
    "yclid": ("Yandex", "cpc"),
    "ttclid": ("TikTok", "cpc"),
    "li_fat_id": ("LinkedIn", "cpc"),
    "twclid": ("X (Twitter)", "cpc"),
    "epik": ("Pinterest", "cpc"),
    "sccid": ("Snapchat", "cpc"),
    "fbclid": ("Facebook", ""),
    "mc_cid": ("Newsletter", "email"),
}

# GA4's default channel group conditions (support.google.com/analytics/answer/9756891).
_PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_SHOP_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
_DISPLAY_MEDIUMS = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_SOCIAL_MEDIUMS = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
_EMAIL = frozenset({"email", "e-mail", "e_mail", "e mail"})
# Landing URLs and referrers repeat (campaign links, search engines): parse each once.
CACHE_SIZE = 16384
_IMPLIED_MEDIUM = {"search": "organic", "email": "email"}
_TLD_LIKE = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class KnownSource:
    name: str
    category: str


class SourceTable:
    """Host and alias lookups over the data file; most specific host first."""

    def __init__(self, entries: list[dict[str, object]]) -> None:
        self.hosts: dict[str, KnownSource] = {}
        self.wildcards: dict[str, KnownSource] = {}  # "google" for "google.*"
        self.aliases: dict[str, KnownSource] = {}
        for entry in entries:
            source = KnownSource(str(entry["name"]), str(entry["category"]))
            if source.category not in CATEGORIES:
                raise ValueError(f"source {source.name!r}: unknown category {source.category!r}")
            for host in entry.get("hosts", []):  # type: ignore[attr-defined]
                if host.endswith(".*"):
                    self.wildcards[host[:-2]] = source
                else:
                    self.hosts[host] = source
            for alias in entry.get("aliases", []):  # type: ignore[attr-defined]
                self.aliases[alias] = source
            self.aliases.setdefault(source.name.lower(), source)

    def for_host(self, host: str) -> KnownSource | None:
        labels = host.lower().strip(".").split(".")
        for i in range(len(labels)):
            found = self.hosts.get(".".join(labels[i:]))
            if found:
                return found
            rest = labels[i + 1 :]
            if rest and len(rest) <= 2 and all(_TLD_LIKE.match(label) for label in rest):
                found = self.wildcards.get(labels[i])
                if found:
                    return found
        return None

    def for_value(self, value: str) -> KnownSource | None:
        """A utm_source value: an alias (`fb`), a name (`google`) or a host (`chatgpt.com`)."""
        value = value.strip().lower()
        return self.aliases.get(value) or (self.for_host(value) if "." in value else None)


@lru_cache(maxsize=1)
def source_table() -> SourceTable:
    text = resources.files("tracker").joinpath("data/sources.toml").read_text("utf-8")
    return SourceTable(tomllib.loads(text)["source"])


@dataclass(frozen=True)
class Attribution:
    source: str = DIRECT
    referrer: str = ""  # external referrer, without query string or fragment
    channel: str = "Direct"
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    click_id: str = ""  # "gclid:<value>"


def landing_params(query: str) -> dict[str, str]:
    """The query parameters that attribution reads (first value wins, lower-case names)."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=False):
        params.setdefault(key.lower(), value.strip()[:255])
    return params


@lru_cache(maxsize=CACHE_SIZE)
def referrer_host(referrer: str) -> str:
    """Host of a referrer URL (or the package of an android-app:// one), without `www.`."""
    try:
        host = (urlsplit(referrer).hostname or "").lower()
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


@lru_cache(maxsize=CACHE_SIZE)
def clean_referrer(referrer: str) -> str:
    """Drop query string and fragment: they can carry personal data and split reports."""
    try:
        parts = urlsplit(referrer)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:2000]


@lru_cache(maxsize=CACHE_SIZE)
def attribute(query: str, referrer: str, is_same_site: bool) -> Attribution:
    """Source, channel, UTM and click id of a landing on a page with this query string."""
    table = source_table()
    params = landing_params(query)
    utm = {name: params.get(name, "") for name in UTM_FIELDS}
    click_param = next((p for p in CLICK_IDS if params.get(p)), "")
    click_id = f"{click_param}:{params[click_param]}"[:255] if click_param else ""
    host = "" if is_same_site else referrer_host(referrer)
    known_ref = table.for_host(host) if host else None

    tagged = utm["utm_source"] or params.get("source", "") or params.get("ref", "")
    if tagged:
        source = tagged
        known = table.for_value(tagged)
    elif known_ref:
        source, known = known_ref.name, known_ref
    elif host:
        source, known = host, None
    elif click_param:
        source = CLICK_IDS[click_param][0]
        known = table.for_value(source)
    else:
        source, known = DIRECT, None

    medium = utm["utm_medium"].lower()
    if not medium and click_param:
        medium = CLICK_IDS[click_param][1]
    elif not medium and host and not tagged:
        # Untagged referrals get GA4's implied medium: organic for search engines.
        medium = _IMPLIED_MEDIUM.get(known.category if known else "", "referral")

    channel = channel_group(
        source=source.lower() if source != DIRECT else "(direct)",
        medium=medium,
        campaign=utm["utm_campaign"].lower(),
        category=known.category if known else "",
    )
    return Attribution(
        source=source,
        referrer="" if is_same_site else clean_referrer(referrer),
        channel=channel,
        click_id=click_id,
        **utm,
    )


def channel_group(*, source: str, medium: str, campaign: str, category: str) -> str:
    """GA4's default channel group, rule by rule in Google's order; AI Assistants added."""
    paid = bool(_PAID_MEDIUM.match(medium))
    shop_campaign = bool(_SHOP_CAMPAIGN.match(campaign))
    if source == "(direct)" and medium in ("", "(none)", "(not set)"):
        return "Direct"
    if "cross-network" in campaign:
        return "Cross-network"
    if paid:
        if category == "shopping" or shop_campaign:
            return "Paid Shopping"
        if category == "search":
            return "Paid Search"
        if category == "social":
            return "Paid Social"
        if category == "video":
            return "Paid Video"
    if medium in _DISPLAY_MEDIUMS:
        return "Display"
    if paid:
        return "Paid Other"
    if category == "ai":
        return "AI Assistants"
    if category == "shopping" or shop_campaign:
        return "Organic Shopping"
    if category == "social" or medium in _SOCIAL_MEDIUMS:
        return "Organic Social"
    if category == "video" or "video" in medium:
        return "Organic Video"
    if category == "search" or medium == "organic":
        return "Organic Search"
    if medium in ("referral", "app", "link"):
        return "Referral"
    if source in _EMAIL or medium in _EMAIL or category == "email":
        return "Email"
    if medium == "affiliate":
        return "Affiliates"
    if medium == "audio":
        return "Audio"
    if source == "sms" or medium == "sms":
        return "SMS"
    if medium.endswith("push") or "mobile" in medium or "notification" in medium:
        return "Mobile Push Notifications"
    if source == "firebase":
        return "Mobile Push Notifications"
    return "Unassigned"
