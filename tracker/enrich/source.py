"""Source and channel: where a visit came from, from its landing URL and referrer.

Source (docs/ARCHITECTURE.md, "Attribution"): the canonical name of a tagged `utm_source`
(or `source`/`ref`) when it names a known source, an alias (`fb`, `ig`, `adwords`) or one
with a paid marker (`fb-ads`, `google_ads`); else that tag case-folded, so one source never
appears twice because of letter case (the stats layer shows it in its most frequent
spelling); else the referrer's host mapped to a known name; else that host without `www.`;
same-site referrers are not sources; nothing -> "Direct / None".

Channel is Google Analytics 4's default channel group, evaluated in Google's published
order (support.google.com/analytics/answer/9756891), plus "AI Assistants" for chat
assistants. A click id counts as paid only for the platform that issues it. Known sources
come from tracker/data/sources.toml (ours, first) and the vendored lists described in
tracker/enrich/source_lists.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DIRECT = "Direct / None"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# "referral": a known name with no channel of its own (Wikipedia, Linktree).
CATEGORIES = frozenset({"search", "social", "video", "shopping", "email", "ai", "referral"})
VENDORED_LISTS = "data/source_lists.json"
# visits.source, utm_* and click_id hold 255 characters.
MAX_SOURCE = 255
MAX_TAG = 255


@dataclass(frozen=True)
class ClickId:
    """A click id an ad platform appends to landing URLs."""

    issuers: tuple[str, ...]  # source names of the platform; the first names an untagged visit
    medium: str  # the medium it implies when it comes from its issuer ("" = none: fbclid)


# fbclid is added to every outbound Facebook link, paid or not, so it implies no medium.
CLICK_IDS: dict[str, ClickId] = {
    "gclid": ClickId(("Google", "YouTube"), "cpc"),
    "gbraid": ClickId(("Google", "YouTube"), "cpc"),
    "wbraid": ClickId(("Google", "YouTube"), "cpc"),
    "dclid": ClickId(("Google", "YouTube"), "display"),
    "msclkid": ClickId(("Bing",), "cpc"),
    "yclid": ClickId(("Yandex",), "cpc"),
    "ttclid": ClickId(("TikTok",), "cpc"),
    "li_fat_id": ClickId(("LinkedIn",), "cpc"),
    "twclid": ClickId(("X (Twitter)",), "cpc"),
    "epik": ClickId(("Pinterest",), "cpc"),
    "sccid": ClickId(("Snapchat",), "cpc"),
    "fbclid": ClickId(("Facebook", "Instagram"), ""),
    "mc_cid": ClickId(("Newsletter",), "email"),
}

# GA4's default channel group conditions.
_PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_SHOP_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
_DISPLAY_MEDIUMS = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_SOCIAL_MEDIUMS = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
# GA4 lists the first four exactly; newsletters are email too, whatever they are called.
_EMAIL_WORDS = ("email", "e-mail", "e_mail", "e mail", "newsletter")
# A paid marker on a tagged source: `fb-ads`, `google_ads`, `fbad`, `bing ppc`. Without a
# separator only the ads/ad suffix counts, and only when the rest names a known source
# (`ipad` is not "ip" + ad).
_PAID_TAG = re.compile(r"^(?P<base>.+?)(?P<sep>[-_ .]?)(?P<mark>ads|ad|ppc|cpc|paid)$")
_IMPLIED_MEDIUM = {"search": "organic", "email": "email"}
_TLD_LIKE = re.compile(r"^[a-z]{2,3}$")
# Landing URLs and referrers repeat (campaign links, search engines): parse each once.
CACHE_SIZE = 16384


@dataclass(frozen=True)
class KnownSource:
    name: str
    category: str
    # The medium an untagged visit from this host implies: "cpc" for ad-serving hosts.
    medium: str = ""


@dataclass(frozen=True)
class TagMatch:
    """What a tagged `utm_source` value resolves to."""

    source: KnownSource | None
    paid: bool


class SourceTable:
    """Host and alias lookups over the data files; the first entry for a host wins."""

    def __init__(
        self, entries: Iterable[Mapping[str, Any]], more: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        """`entries` first; `more` (the vendored lists) only for hosts that no entry covers:
        `l.instagram.com` stays Instagram however another list names it."""
        self.hosts: dict[str, KnownSource] = {}
        # Host patterns ending in ".*": the labels before any country suffix, e.g.
        # "google" (google.de, google.co.uk) or "email.ionos" (email.ionos.fr).
        self.wildcards: dict[str, KnownSource] = {}
        self.aliases: dict[str, TagMatch] = {}
        for entry in entries:
            self._add(entry)
        for entry in more:
            self._add(entry, covered=self.for_host)

    def _add(
        self,
        entry: Mapping[str, Any],
        covered: Callable[[str], KnownSource | None] = lambda host: None,
    ) -> None:
        source = KnownSource(
            str(entry["name"]), str(entry["category"]), str(entry.get("medium", ""))
        )
        if source.category not in CATEGORIES:
            raise ValueError(f"source {source.name!r}: unknown category {source.category!r}")
        for host in entry.get("hosts", ()):
            host = host.lower()
            if covered(host.removesuffix(".*")):
                continue
            if host.endswith(".*"):
                self.wildcards.setdefault(host[:-2], source)
            else:
                self.hosts.setdefault(host, source)
        for alias in entry.get("aliases", ()):
            self.aliases.setdefault(alias.lower(), TagMatch(source, paid=False))
        for alias in entry.get("paid_aliases", ()):
            self.aliases.setdefault(alias.lower(), TagMatch(source, paid=True))
        self.aliases.setdefault(source.name.lower(), TagMatch(source, paid=False))

    def for_host(self, host: str) -> KnownSource | None:
        """The most specific entry for a host: itself, then each parent domain."""
        labels = host.lower().strip(".").split(".")
        for i in range(len(labels)):
            found = self.hosts.get(".".join(labels[i:])) or self._wildcard(labels[i:])
            if found:
                return found
        return None

    def _wildcard(self, labels: list[str]) -> KnownSource | None:
        """`name.*` entries: `labels` minus a one- or two-label country suffix."""
        for cut in (1, 2):
            rest = labels[-cut:]
            if len(labels) > cut and all(_TLD_LIKE.match(label) for label in rest):
                found = self.wildcards.get(".".join(labels[:-cut]))
                if found:
                    return found
        return None

    def for_value(self, value: str) -> KnownSource | None:
        """A utm_source value: an alias (`fb`), a name (`google`) or a host (`chatgpt.com`)."""
        return self.resolve_tag(value).source

    def resolve_tag(self, value: str) -> TagMatch:
        """A tagged source value, with or without a paid marker (`fb-ads`, `adwords`)."""
        value = value.strip().lower()
        found = self._plain(value)
        if found:
            return found
        marked = _PAID_TAG.match(value)
        if marked:
            base = self._plain(marked["base"].rstrip("-_ ."))
            if base and base.source:
                return TagMatch(base.source, paid=True)
            if marked["sep"]:
                return TagMatch(None, paid=True)
        return TagMatch(None, paid=False)

    def _plain(self, value: str) -> TagMatch | None:
        found = self.aliases.get(value)
        if found is None and "." in value:
            host = self.for_host(value.removeprefix("www."))
            found = TagMatch(host, paid=False) if host else None
        return found


def _data_text(name: str) -> str:
    return resources.files("tracker").joinpath(name).read_text("utf-8")


@lru_cache(maxsize=1)
def source_table() -> SourceTable:
    """Our own list first (names and categories we chose), then the vendored public lists."""
    ours = tomllib.loads(_data_text("data/sources.toml"))["source"]
    vendored = json.loads(_data_text(VENDORED_LISTS))["sources"]
    return SourceTable(ours, vendored)


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
        # %00 decodes to NUL, which PostgreSQL refuses in text (invalid UTF-8 is already
        # U+FFFD: parse_qsl decodes with errors="replace").
        params.setdefault(key.lower(), value.replace("\x00", "").strip()[:MAX_TAG])
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
def canonical_source(value: str) -> str:
    """The stored source for a tagged value: a known source's name, else the value
    case-folded. Filters on source go through it too, so `?source=Newsletter` finds what
    `utm_source=newsletter` stored."""
    value = value.strip()
    if value == DIRECT:
        return value
    match = source_table().resolve_tag(value)
    # Cut as `classify` cuts what it stores, so a filter finds it.
    return match.source.name if match.source else value.casefold()[:MAX_SOURCE]


@lru_cache(maxsize=CACHE_SIZE)
def attribute(query: str, referrer: str, is_same_site: bool) -> Attribution:
    """Source, channel, UTM and click id of a landing on a page with this query string."""
    params = landing_params(query)
    utm = {name: params.get(name, "") for name in UTM_FIELDS}
    click_param = next((p for p in CLICK_IDS if params.get(p)), "")
    click_id = f"{click_param}:{params[click_param]}"[:MAX_TAG] if click_param else ""
    host = "" if is_same_site else referrer_host(referrer)
    tagged = utm["utm_source"] or params.get("source", "") or params.get("ref", "")
    source, channel = classify(
        tagged=tagged,
        medium=utm["utm_medium"],
        campaign=utm["utm_campaign"],
        host=host,
        click_param=click_param,
    )
    return Attribution(
        source=source,
        referrer="" if is_same_site else clean_referrer(referrer),
        channel=channel,
        click_id=click_id,
        **utm,
    )


def classify(
    *, tagged: str, medium: str, campaign: str, host: str, click_param: str
) -> tuple[str, str]:
    """(source, channel) from a visit's landing facts; `tracker reclassify` calls it with
    the stored ones."""
    table = source_table()
    from_referrer = table.for_host(host) if host else None
    paid_tag = False
    known: KnownSource | None
    if tagged:
        match = table.resolve_tag(tagged)
        known, paid_tag = match.source, match.paid
        source = known.name if known else tagged.strip().casefold()
    elif from_referrer:
        source, known = from_referrer.name, from_referrer
    elif host:
        source, known = host, None
    elif click_param:
        source = CLICK_IDS[click_param].issuers[0]
        known = table.for_value(source)
    else:
        source, known = DIRECT, None

    medium = medium.lower()
    click = CLICK_IDS.get(click_param)
    if not medium and click and source in click.issuers:
        medium = click.medium
    if not medium and host:
        # GA4's implied medium of a referral: organic for search engines.
        implied = from_referrer.medium if from_referrer else ""
        category = from_referrer.category if from_referrer else ""
        medium = implied or _IMPLIED_MEDIUM.get(category, "referral")

    channel = channel_group(
        source=source.lower() if source != DIRECT else "(direct)",
        medium=medium,
        campaign=campaign.lower(),
        category=known.category if known else "",
        paid_source=paid_tag,
    )
    # A referrer's host is as long as the page says, and case-folding lengthens a tag
    # (ß -> ss): cut to what visits.source holds.
    return source[:MAX_SOURCE], channel


def channel_group(
    *, source: str, medium: str, campaign: str, category: str, paid_source: bool = False
) -> str:
    """GA4's default channel group, rule by rule in Google's order; AI Assistants added.

    Where GA4 would say "Unassigned" (a tagged source with a medium no rule knows) the
    visit still came from somewhere: Referral, as Plausible counts it; untagged and
    without a referrer it is Direct.
    """
    if source == "(direct)" and medium in ("", "(none)", "(not set)") and not campaign:
        return "Direct"
    paid = paid_source or bool(_PAID_MEDIUM.match(medium))
    shopping = category == "shopping" or bool(_SHOP_CAMPAIGN.match(campaign))
    if "cross-network" in campaign:
        return "Cross-network"
    if paid:
        paid_channel = _paid_channel(category, shopping)
        if paid_channel:
            return paid_channel
    if medium in _DISPLAY_MEDIUMS:
        return "Display"
    if paid:
        return "Paid Other"
    return _organic_channel(source, medium, category, shopping)


def _paid_channel(category: str, shopping: bool) -> str | None:
    if shopping:
        return "Paid Shopping"
    return {"search": "Paid Search", "social": "Paid Social", "video": "Paid Video"}.get(category)


def _organic_channel(source: str, medium: str, category: str, shopping: bool) -> str:
    if category == "ai":
        return "AI Assistants"
    if shopping:
        return "Organic Shopping"
    if category == "social" or medium in _SOCIAL_MEDIUMS:
        return "Organic Social"
    if category == "video" or "video" in medium:
        return "Organic Video"
    if category == "search" or medium == "organic":
        return "Organic Search"
    if medium in ("referral", "app", "link"):
        return "Referral"
    if category == "email" or _says_email(source) or _says_email(medium):
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
    return "Direct" if source == "(direct)" else "Referral"


def _says_email(value: str) -> bool:
    return any(word in value for word in _EMAIL_WORDS)
