"""The UTM link builder: a page address plus campaign tags -> the tagged link; warnings
about tags that would split reports; saved links per site.

Values are trimmed and, unless the caller keeps their case, lower-cased: reports group
visits by the exact text of a tag, so one habit ("facebook", never "Facebook") keeps a
campaign on one row. The base URL keeps its query string and #fragment; the utm_*
parameters it already had are dropped, since the first value of a parameter wins when the
collector reads a landing (tracker/enrich/source.py, `landing_params`).

`build_link` raises LinkError naming every field at fault at once; `link_warnings` never
blocks: a link to another host or a tag spelled like an existing one may be intended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import SplitResult, quote, unquote_plus, urlencode, urlsplit, urlunsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tracker.db import Database
from tracker.db.models import Site, UtmLink
from tracker.ingest.gate import SiteInfo
from tracker.stats.tags import RECENT_DAYS, TagSpelling, tag_spellings
from tracker.text import has_control
from tracker.utm import UTM_FIELDS, utm_key

MAX_TAG = 255  # the visits' utm_* columns (and what the collector keeps of a value)
MAX_BASE_URL = 2000  # utm_links.base_url
REQUIRED = ("source", "medium", "campaign")
LABELS = {
    "base_url": "The page address",
    "source": "Source",
    "medium": "Medium",
    "campaign": "Campaign",
    "term": "Term",
    "content": "Content",
}
# What stays as it is when the parts of the base URL are re-quoted: RFC 3986's reserved
# and unreserved characters, and "%" so existing escapes are not escaped twice. Spaces,
# quotes, angle brackets and non-ASCII text get percent-encoded (as UTF-8).
URL_SAFE = "!$%&'()*+,/:;=?@~"


class LinkError(ValueError):
    """User-facing problems with a link: `errors` maps each field at fault to a sentence."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class Link:
    """A checked link: the base URL as given (trimmed), each tag as it goes into the URL
    ("" for an empty term or content), and the tagged URL."""

    base_url: str
    tags: dict[str, str]
    url: str


@dataclass(frozen=True)
class LinkWarning:
    """Something to look at before using a link; `use` is the existing spelling offered
    in place of the value of `field` (None when there is nothing to offer)."""

    field: str
    message: str
    use: str | None = None


def _check_tag(field: str, raw: str | None, keep_case: bool) -> tuple[str, str | None]:
    """(the cleaned value, the problem or None)."""
    value = (raw or "").strip()
    if not keep_case:
        value = value.lower()
    label = LABELS[field]
    if not value:
        return value, f"{label} is required." if field in REQUIRED else None
    if len(value) > MAX_TAG:
        return value, f"{label} must be at most {MAX_TAG} characters (got {len(value)})."
    if has_control(value):
        return value, f"{label} must not contain control characters (tabs, line breaks)."
    return value, None


def _check_base_url(raw: str | None) -> tuple[str, SplitResult | None, str | None]:
    """(the trimmed URL, its parts when usable, the problem or None)."""
    url = (raw or "").strip()
    label = LABELS["base_url"]
    if not url:
        return url, None, f"{label} is required (e.g. https://example.com/pricing)."
    if len(url) > MAX_BASE_URL:
        return url, None, f"{label} must be at most {MAX_BASE_URL} characters (got {len(url)})."
    if has_control(url):
        return url, None, f"{label} must not contain control characters (tabs, line breaks)."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return url, None, f"{label} is not a valid URL."
    if parts.scheme.lower() not in ("http", "https"):
        example = f"https://{url}" if "://" not in url else "https://example.com/pricing"
        return url, None, f"{label} must start with http:// or https:// (e.g. {example})."
    if not parts.hostname or any(c.isspace() for c in parts.netloc):
        return url, None, f"{label} must name a host, as in https://example.com/pricing."
    return url, parts, None


def _kept_query(query: str) -> list[str]:
    """The base URL's own query parameters, as written, without any utm_* one."""
    kept = []
    for item in query.split("&"):
        name = unquote_plus(item.split("=", 1)[0]).strip().lower()
        if item and not name.startswith("utm_"):
            kept.append(quote(item, safe=URL_SAFE))
    return kept


def tagged_url(parts: SplitResult, tags: Mapping[str, str]) -> str:
    """The base URL with the tags appended to its query string, before its #fragment."""
    params = [(f"utm_{field}", tags[field]) for field in UTM_FIELDS if tags.get(field)]
    query = "&".join([*_kept_query(parts.query), urlencode(params, quote_via=quote)])
    return urlunsplit(
        (
            parts.scheme.lower(),
            parts.netloc,
            quote(parts.path or "/", safe=URL_SAFE),
            query,
            quote(parts.fragment, safe=URL_SAFE + "#"),
        )
    )


def build_link(
    base_url: str | None, values: Mapping[str, str | None], *, keep_case: bool = False
) -> Link:
    """Check the base URL and the tags and build the tagged link; LinkError lists every
    problem (base URL must be http(s) with a host; source, medium and campaign required;
    at most 255 characters; no control characters)."""
    errors: dict[str, str] = {}
    url, parts, problem = _check_base_url(base_url)
    if problem:
        errors["base_url"] = problem
    tags: dict[str, str] = {}
    for field in UTM_FIELDS:
        tags[field], problem = _check_tag(field, values.get(field), keep_case)
        if problem:
            errors[field] = problem
    if errors or parts is None:
        raise LinkError(errors)
    return Link(base_url=url, tags=tags, url=tagged_url(parts, tags))


# Warnings


def host_warning(site: Site, link: Link) -> LinkWarning | None:
    """A warning when the link's host is not one the site's script counts visits on (the
    collector's own rule: the domain, its subdomains, the allowed hostnames)."""
    host = urlsplit(link.base_url).hostname or ""
    info = SiteInfo(
        id=site.id,
        domain=site.domain,
        allowed_hostnames=tuple(h.lower() for h in site.allowed_hostnames or ()),
    )
    if info.allows_host(host):
        return None
    return LinkWarning(
        "base_url",
        f"{host} is not {site.domain}, one of its subdomains or an allowed hostname: the "
        f"tracking script on that page will not count these visits for {site.domain}. "
        "If your pages are served there, add the host to the site's allowed hostnames.",
    )


def _loose(value: str) -> str:
    """The comparison for "differs only by case or spaces": utm_key without any whitespace."""
    return "".join(utm_key(value).split())


def _where(spelling: TagSpelling) -> str:
    places = []
    if spelling.visits:
        count = f"{spelling.visits:,} visit{'s' if spelling.visits != 1 else ''}"
        places.append(f"{count} of the last {RECENT_DAYS} days")
    if spelling.in_costs:
        places.append("ad cost rows")
    return " and ".join(places)


def tag_warnings(link: Link, spellings: list[TagSpelling]) -> list[LinkWarning]:
    """For each tag, the spellings already in use that differ from it only by letter case
    or spaces (most visits first). None when the tag's exact spelling is in use already:
    the link then adds no new row to any report."""
    warnings = []
    for field in UTM_FIELDS:
        value = link.tags[field]
        same = [s for s in spellings if s.field == field and _loose(s.value) == _loose(value)]
        if not value or not same or any(s.value == value for s in same):
            continue
        for spelling in same:
            warnings.append(
                LinkWarning(
                    field,
                    f"{LABELS[field]} {value!r} differs only by letter case or spaces from "
                    f"{spelling.value!r}, used in {_where(spelling)}: reports would show "
                    "them as two rows.",
                    use=spelling.value,
                )
            )
    return warnings


def link_warnings(
    db: Database, site: Site, link: Link, *, now: datetime | None = None
) -> list[LinkWarning]:
    """Everything to look at before using the link: its host, then its tags."""
    host = host_warning(site, link)
    tags = tag_warnings(link, tag_spellings(db, site, now=now))
    return [host, *tags] if host else tags


# Saved links


def save_link(session: Session, site: Site, link: Link) -> UtmLink:
    """Keep a built link in the site's list; the same link saved twice is kept once."""
    existing = session.scalar(
        select(UtmLink).where(
            UtmLink.site_id == site.id,
            UtmLink.base_url == link.base_url,
            *(getattr(UtmLink, field) == link.tags[field] for field in UTM_FIELDS),
        )
    )
    if existing is not None:
        return existing
    saved = UtmLink(site_id=site.id, base_url=link.base_url, **link.tags)
    session.add(saved)
    session.flush()
    return saved


def list_links(session: Session, site: Site) -> list[UtmLink]:
    """The site's saved links, newest first."""
    query = (
        select(UtmLink)
        .where(UtmLink.site_id == site.id)
        .order_by(UtmLink.created_at.desc(), UtmLink.id.desc())
    )
    return list(session.scalars(query))


def saved_url(saved: UtmLink) -> str:
    """A saved link's tagged URL (its tags are stored as they go into the URL)."""
    tags = {field: getattr(saved, field) for field in UTM_FIELDS}
    return tagged_url(urlsplit(saved.base_url), tags)


def delete_link(session: Session, site: Site, link_id: int) -> bool:
    """Delete one of the site's saved links; False when it is not this site's (or gone)."""
    result = session.execute(
        delete(UtmLink).where(UtmLink.id == link_id, UtmLink.site_id == site.id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
