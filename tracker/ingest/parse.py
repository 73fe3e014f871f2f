"""Parse and validate one event of the ingestion protocol (README, "Ingestion") into an
`IncomingEvent`.

Malformed input raises `EventError` naming the field; over-long text is truncated to the
limits below rather than refused, because beacons cannot fix what the page gives them. For
the same reason text is made storable (`storable_text`) rather than refused. Whatever
passes here must store on both databases: a 202 is a promise (docs/ARCHITECTURE.md,
"Ingestion").

The fields an event carries unchanged from the request to its stored row are declared
once, in `Payload`: the accepted hit (tracker.storage.visits.Hit) holds the same object, the spool
line and the events row are built from its fields. Adding such a field: declare it last in
`Payload` with a default (spool lines written before it lack it and take the default),
validate it in `parse_event`, and add its column to the `Event` model with a migration.
The CSV export's columns (tracker/export.py) are not derived from it: their names and order
are a stable interface that does not follow this one (`type` for `kind`, `page` for `path`,
revenue as decimal text, no `pageview_id`, visit columns in between), so a field that should
be exported gets its column there, after the others.
"""

from __future__ import annotations

import ipaddress
import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from tracker.db.models import EARLIEST_DAY
from tracker.money import MoneyError, check_amount, currency_code, parse_amount, to_minor

KINDS = frozenset({"pageview", "click", "event", "engagement"})
MAX_URL = 2000
MAX_TITLE = 500
MAX_NAME = 200
MAX_PAGEVIEW_ID = 64
MAX_PROPS = 30
MAX_PROP_KEY = 100
MAX_PROP_VALUE = 500
MAX_USER_AGENT = 1000
# DNS names have at most 253 characters; events.hostname and visits.hostname hold 255.
MAX_HOSTNAME = 253
MAX_ENGAGED_MS = 24 * 3600 * 1000  # a page open in the foreground for a day is not a person
FUTURE_SKEW_MS = 60_000  # clocks disagree a little; more than this is a mistake
# Trusted timestamps before this are misread dates, not traffic (and day arithmetic near
# year 1 overflows).
EARLIEST = datetime(EARLIEST_DAY.year, EARLIEST_DAY.month, EARLIEST_DAY.day, tzinfo=UTC)
HASH_ROUTE_PREFIXES = ("/", "!/")


class EventError(ValueError):
    """Malformed input; the message names the field and says what is wrong."""


# Read-only by convention, as the two below: frozen costs ~10x more to build per event.
@dataclass(slots=True)
class Payload:
    """What the sender said happened, kept as sent (once validated): the stored row's own
    fields. Engagement (`engaged_ms`, `scroll`) is folded into its pageview's row instead."""

    kind: str
    hostname: str
    path: str
    query: str
    title: str = ""
    name: str = ""
    target: str = ""
    props: dict[str, str] | None = None
    engaged_ms: int | None = None
    scroll: int | None = None
    pageview_id: str = ""
    # Custom events only: the amount in the currency's minor units (4250 for EUR 42.50).
    revenue_minor: int | None = None
    revenue_currency: str = ""  # ISO 4217, "" without revenue


@dataclass(slots=True)
class IncomingEvent:
    """A validated event: its payload, and what enrichment reads and does not keep."""

    site: str
    url: str
    payload: Payload
    referrer: str = ""
    screen: int | None = None
    # Only from trusted (API key) requests; None means "take it from the request".
    timestamp_ms: int | None = None
    ip: str | None = None
    user_agent: str | None = None


class ExponentDecimal(Decimal):
    """A JSON number written with an exponent (1e3): refused as an amount of money."""

    __slots__ = ()


def _json_number(text: str) -> Decimal:
    # Every JSON number with a point or an exponent comes here (integers stay int): as its
    # exact decimal, never a float, so money is not rounded on the way in.
    return ExponentDecimal(text) if "e" in text or "E" in text else Decimal(text)


_DECODER = json.JSONDecoder(parse_float=_json_number)


def decode_json(body: bytes) -> Any:
    """A request body's JSON, numbers with a point as `Decimal` (json.loads otherwise)."""
    try:
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except ValueError as exc:  # bad UTF-8, bad JSON, an integer of over 4,300 digits
        if "digits" in str(exc):
            raise EventError("body: a number has more than 4,300 digits") from None
        raise EventError("body is not valid JSON") from None
    except InvalidOperation:  # 1e99999999999999999999: no Decimal holds that exponent
        raise EventError("body: a number's exponent is out of range") from None
    except RecursionError:
        raise EventError("body: JSON nested too deeply") from None


def storable_text(value: str) -> str:
    """`value` as both databases can store it: NUL characters dropped (PostgreSQL refuses
    them in text and JSON), lone surrogates ("\\ud800" in JSON, a title cut mid-emoji by the
    page) replaced by U+FFFD (no database encodes them). Cheap for clean text, which is
    nearly all: two scans in C."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # UTF-16 pairs up surrogates that make a character; only lone ones are replaced.
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _text(data: dict[str, Any], field: str, limit: int) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EventError(f"{field}: must be a string")
    return storable_text(value).strip()[:limit]


def _int(data: dict[str, Any], field: str, low: int, high: int) -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise EventError(f"{field}: must be a number")
    if not low <= value <= high:
        raise EventError(f"{field}: must be between {low} and {high}")
    return int(value)


def _http_url(value: str, field: str) -> tuple[str, str, str]:
    """(hostname, path, query) of an http(s) URL, or EventError.

    A hash route ("#/pricing", "#!/pricing") belongs to the path: the beacon sends fragments
    only for sites whose tag has data-hash. Other fragments ("#top") are anchors, not pages.
    """
    try:
        parts = urlsplit(value)
        hostname = (parts.hostname or "").lower()
    except ValueError:
        raise EventError(f"{field}: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise EventError(f"{field}: must be an http(s) URL")
    if len(hostname) > MAX_HOSTNAME:
        raise EventError(f"{field}: host name longer than {MAX_HOSTNAME} characters")
    path = parts.path or "/"
    if parts.fragment.startswith(HASH_ROUTE_PREFIXES):
        path += "#" + parts.fragment
    return hostname, path, parts.query


def _props(value: Any) -> dict[str, str] | None:
    """Flat string map: scalars stringified, nested values dropped, at most MAX_PROPS keys."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EventError("props: must be an object of string values")
    props: dict[str, str] = {}
    for key, item in value.items():
        if len(props) >= MAX_PROPS:
            break
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        elif isinstance(item, Decimal):
            item = _decimal_text(item)
        elif not isinstance(item, str):
            continue  # objects, lists and nulls are not flat properties
        props[storable_text(str(key))[:MAX_PROP_KEY]] = storable_text(item)[:MAX_PROP_VALUE]
    return props or None


def _decimal_text(number: Decimal) -> str:
    """A property's number as before numbers came as Decimal (1.50 -> "1.5"); one too large
    for a float keeps its own digits rather than becoming "inf"."""
    as_float = float(number)
    return str(as_float) if math.isfinite(as_float) else str(number)


def _amount(value: Any) -> Decimal:
    """revenue.amount: a JSON number or a decimal string, exact, 0 to MAX_AMOUNT."""
    field = "revenue.amount"
    if value is None:
        raise EventError(f"{field}: is required")
    try:
        if isinstance(value, str):
            return parse_amount(value)
        if isinstance(value, ExponentDecimal):
            raise EventError(f"{field}: exponent notation is not allowed; write 1000, not 1e3")
        if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
            return check_amount(Decimal(value))
    except MoneyError as exc:
        raise EventError(f"{field}: {exc}") from None
    if isinstance(value, float):  # only NaN, Infinity and -Infinity are floats here
        raise EventError(f"{field}: must be a finite number")
    raise EventError(f'{field}: must be a number or a decimal string, e.g. "42.50"')


def _currency(value: Any) -> str:
    field = "revenue.currency"
    if value is None:
        raise EventError(f"{field}: is required, an ISO 4217 code such as EUR")
    if not isinstance(value, str):
        raise EventError(f"{field}: must be a string, an ISO 4217 code such as EUR")
    code = currency_code(value)
    if code is None:
        raise EventError(f"{field}: {value[:10]!r} is not an ISO 4217 currency code")
    return code


def to_minor_units(amount: Decimal, currency: str) -> int:
    """42.5 EUR -> 4250, exactly; EventError when the amount has more decimals than the
    currency's minor unit (42.505 EUR): money is not rounded."""
    try:
        return to_minor(amount, currency)
    except MoneyError as exc:
        raise EventError(f"revenue.amount: {exc}") from None


def _revenue(value: Any, kind: str) -> tuple[int, str] | None:
    """(minor units, currency) of an event's `revenue`, or None without one."""
    if value is None:
        return None
    if kind != "event":
        raise EventError("revenue: only custom events (type=event) may carry revenue")
    if not isinstance(value, dict):
        raise EventError('revenue: must be an object, e.g. {"amount": "42.50", "currency": "EUR"}')
    amount = _amount(value.get("amount"))
    currency = _currency(value.get("currency"))
    return to_minor_units(amount, currency), currency


def parse_timestamp(value: Any, now_ms: int) -> int:
    if not isinstance(value, str):
        raise EventError("timestamp: must be an ISO 8601 string, e.g. 2026-01-31T09:30:00Z")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise EventError(
            "timestamp: not ISO 8601, expected e.g. 2026-01-31T09:30:00+01:00"
        ) from None
    if moment.tzinfo is None:
        raise EventError("timestamp: needs a UTC offset, e.g. 2026-01-31T09:30:00Z")
    if moment < EARLIEST:
        raise EventError(f"timestamp: is before {EARLIEST_DAY.isoformat()}")
    ms = int(moment.timestamp() * 1000)
    if ms > now_ms + FUTURE_SKEW_MS:
        raise EventError("timestamp: is in the future")
    return ms


def parse_event(data: Any, *, trusted: bool, now_ms: int) -> IncomingEvent:
    """Validate one decoded JSON event. Trusted-only fields are ignored unless `trusted`."""
    if not isinstance(data, dict):
        raise EventError("event must be a JSON object")
    site = _text(data, "site", 253).lower()
    if not site:
        raise EventError("site: is required")
    kind = data.get("type")
    if kind not in KINDS:
        raise EventError(f"type: must be one of {', '.join(sorted(KINDS))}")
    url = data.get("url")
    if not isinstance(url, str) or not url.strip():
        raise EventError("url: is required")
    url = storable_text(url).strip()
    if len(url) > MAX_URL:
        raise EventError(f"url: longer than {MAX_URL} characters")
    hostname, path, query = _http_url(url, "url")
    name = _text(data, "name", MAX_NAME)
    if kind == "event" and not name:
        raise EventError("name: is required for type=event")
    engaged_ms = _int(data, "engaged_ms", 0, MAX_ENGAGED_MS)
    scroll = _int(data, "scroll", 0, 100)
    pageview_id = _text(data, "pageview_id", MAX_PAGEVIEW_ID)
    if kind == "engagement":
        if engaged_ms is None and scroll is None:
            raise EventError("engaged_ms: an engagement needs engaged_ms or scroll")
        if not pageview_id:
            raise EventError("pageview_id: is required for type=engagement")
    target = _text(data, "target", MAX_URL)
    revenue_minor, revenue_currency = _revenue(data.get("revenue"), kind) or (None, "")
    payload = Payload(
        kind=kind,
        hostname=hostname,
        path=path[:MAX_URL],
        query=query[:MAX_URL],
        title=_text(data, "title", MAX_TITLE),
        name=name,
        target=target,
        props=_props(data.get("props")),
        engaged_ms=engaged_ms,
        scroll=scroll,
        pageview_id=pageview_id,
        revenue_minor=revenue_minor,
        revenue_currency=revenue_currency,
    )
    event = IncomingEvent(
        site=site,
        url=url,
        payload=payload,
        referrer=_text(data, "referrer", MAX_URL),
        screen=_int(data, "screen", 0, 100_000),
    )
    if not trusted:
        return event
    return _with_trusted_fields(event, data, now_ms)


def _with_trusted_fields(event: IncomingEvent, data: dict[str, Any], now_ms: int) -> IncomingEvent:
    timestamp_ms = parse_timestamp(data["timestamp"], now_ms) if "timestamp" in data else None
    ip = trusted_ip(data.get("ip"))
    user_agent = trusted_user_agent(data["user_agent"]) if "user_agent" in data else None
    return replace(event, timestamp_ms=timestamp_ms, ip=ip, user_agent=user_agent)


def trusted_ip(value: Any) -> str | None:
    """A trusted sender's `ip` field, normalised (None when empty), or EventError."""
    ip = _text({"ip": value}, "ip", 45)
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise EventError("ip: not an IPv4 or IPv6 address") from None


def trusted_user_agent(value: Any) -> str:
    """A trusted sender's `user_agent` field as stored, or EventError."""
    return _text({"user_agent": value}, "user_agent", MAX_USER_AGENT)
