"""Which logged requests are pageviews: a successful GET or HEAD (200, or 304 from a browser's
cache) of an HTML page, not an asset, not a health check, not the tracker's own endpoints.

Everything else is skipped with a typed reason (`Skip`), counted in the import's summary.
Who sent a page request (bots, referrer spam) is judged later, by the collector's own
`Pipeline.drop_reason`, so the import drops what the collector would.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

from tracker.accesslog.formats import Request
from tracker.ingest.drops import DropReason

PAGE_METHODS = frozenset({"GET", "HEAD"})
PAGE_STATUSES = frozenset({200, 304})
HTML_TYPES = ("text/html", "application/xhtml+xml")
# Files a page loads or links to for download: never a page of their own.
ASSET_EXTENSIONS = frozenset(
    """css js mjs map json xml txt ico png jpg jpeg gif svg webp avif bmp tif tiff heic
    woff woff2 ttf otf eot mp4 webm mov avi mp3 ogg oga wav m4a flac wasm swf
    pdf zip gz tgz bz2 xz 7z rar tar exe dmg msi pkg deb rpm apk iso csv xls xlsx doc
    docx ppt pptx odt ods epub rss atom""".split()
)
# Load balancers' and monitors' probes, server status pages, and the tracker's own
# endpoints when it is served from the site's host.
ENDPOINTS = frozenset(
    """/healthz /health /healthcheck /health-check /livez /readyz /ping /status
    /server-status /server-info /nginx_status /tracker.js /api/event /api/events
    /api/pixel.gif""".split()
)
ENDPOINT_PREFIXES = ("/.well-known/",)
TARGETS_REMEMBERED = 16_384
LONGEST_REMEMBERED = 256


class Skip(StrEnum):
    """Why a logged line is not stored as a pageview (the summary's words)."""

    MALFORMED = "malformed"  # not a line of the log's format
    METHOD = "method"  # not GET or HEAD (POST, OPTIONS, a TLS handshake on port 80)
    STATUS = "status"  # not 200 or 304: errors, redirects, partial content
    ASSET = "asset"  # a file by its extension or a response that is not HTML
    ENDPOINT = "endpoint"  # health checks, server status, the tracker's own endpoints
    HOST = "host"  # another virtual host than the site's
    BOT = DropReason.BOT.value  # the collector's verdicts, by the collector's rules
    SPAM = DropReason.SPAM.value
    DNT = DropReason.DNT.value
    DUPLICATE = DropReason.DUPLICATE.value
    NO_PAGEVIEW = DropReason.NO_PAGEVIEW.value


def page_path(target: str) -> str | None:
    """The path of a request target: origin form (`/a?b`) or absolute form
    (`http://host/a?b`, sent to proxies); None for anything else (`*`, junk)."""
    if target.startswith("/"):
        return target.partition("?")[0]
    if target.startswith(("http://", "https://")):
        try:
            return urlsplit(target).path or "/"
        except ValueError:
            return None
    return None


def skip_reason(request: Request) -> Skip | None:
    """Why this request is not a page a browser showed; None for a pageview."""
    if request.method not in PAGE_METHODS:
        return Skip.METHOD
    if request.status not in PAGE_STATUSES:
        return Skip.STATUS
    target = request.target
    reason = (
        _remembered_reason(target) if len(target) <= LONGEST_REMEMBERED else target_reason(target)
    )
    if reason is None and request.content_type and not _is_html(request.content_type):
        return Skip.ASSET
    return reason


def target_reason(target: str) -> Skip | None:
    """What the request target alone says: not a path, an endpoint, an asset by its
    extension, or None."""
    path = page_path(target)
    if path is None:
        return Skip.MALFORMED
    if path in ENDPOINTS or path.startswith(ENDPOINT_PREFIXES):
        return Skip.ENDPOINT
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    if dot > 0 and name[dot + 1 :].lower() in ASSET_EXTENSIONS:
        return Skip.ASSET
    return None


# A log repeats its targets (assets most): each is read once, up to TARGETS_REMEMBERED of
# them no longer than LONGEST_REMEMBERED characters (a few MB at most).
_remembered_reason = lru_cache(maxsize=TARGETS_REMEMBERED)(target_reason)


def _is_html(content_type: str) -> bool:
    return content_type.lower().startswith(HTML_TYPES)
