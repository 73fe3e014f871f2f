"""The Query: one frozen description of a report, parsed once from URL parameters.

The stats page, the JSON API and the CSV export all build a Query with `parse_query` and
hand it to `run`, so the three always agree. `Query.params()` writes it back as URL
parameters (for links that add or remove a filter, or change the period).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tracker.stats.dimensions import BY_SHORT, DIMENSIONS, dimension
from tracker.stats.filters import Filter, decode_values
from tracker.stats.metrics import PUBLIC_METRICS
from tracker.stats.periods import (
    COMPARISONS,
    PERIODS,
    Period,
    comparison_period,
    make_period,
    period_dates,
)

DEFAULT_METRICS = ("visitors",)
MAX_LIMIT = 10_000
# A century: "All time" from EARLIEST_DAY (2000) fits, and a period's day-by-day work (DST
# segments, a daily chart) stays a fraction of a second.
MAX_DAYS = 366 * 100
# Dates a URL may name: far wider than any data, and far enough from datetime's limits
# (years 1 and 9999) that a period, its comparison and its UTC bounds never overflow.
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2999, 12, 31)
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")  # with fullmatch


class QueryError(ValueError):
    """A bad report parameter; the message is a sentence for the user naming it."""


class SiteLike(Protocol):
    """A site model or a SiteRef (read-only members accept both)."""

    @property
    def id(self) -> int: ...

    @property
    def domain(self) -> str: ...

    @property
    def timezone(self) -> str: ...


@dataclass(frozen=True)
class SiteRef:
    id: int
    domain: str
    timezone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class GoalSpec:
    """A goal as the stats layer counts it (stored in the `goals` table)."""

    id: int
    name: str
    kind: str  # "page", "event" or "click"
    pattern: str = ""
    event_name: str = ""
    prop_key: str = ""
    prop_value: str = ""
    currency: str = ""
    # Visits started before this moment (UTC ms) have their matches in `goal_hits`; later
    # ones are matched on raw events. None: match raw events only.
    hits_until_ms: int | None = None
    # The bit of the columnar store's visit goals (`goals`, `visit_goals`) saying a visit
    # converts on it, the same in every part a query reads; None: matched on the events.
    stored_bit: int | None = None


@dataclass(frozen=True)
class Query:
    site: SiteRef
    period: Period
    metrics: tuple[str, ...] = DEFAULT_METRICS
    dimensions: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    compare: str | None = None
    # The period the comparison reads (set whenever `compare` is).
    compare_period: Period | None = None
    # (metric or dimension name, "asc" | "desc"); empty: first metric descending, or time.
    order_by: tuple[tuple[str, str], ...] = ()
    limit: int | None = None
    # Rows to skip (paging through a "more" list). The URL's `page=` is the page filter.
    offset: int = 0
    # The `date` the period was anchored on, when the URL gave one (else: today).
    anchor: date | None = None
    # The site's goals, loaded by `run` when the query needs them (goal filter, breakdown
    # or conversion metrics); `parse_query` never reads the database.
    goals: tuple[GoalSpec, ...] = ()

    @property
    def time_dimension(self) -> str | None:
        return next((d for d in self.dimensions if DIMENSIONS[d].is_time), None)

    def filter_for(self, dimension_name: str) -> Filter | None:
        return next((f for f in self.filters if f.dimension == dimension_name), None)

    def with_filter(self, flt: Filter) -> Query:
        """This query with `flt` replacing any filter on the same dimension."""
        kept = tuple(f for f in self.filters if f.dimension != flt.dimension)
        return dataclasses.replace(self, filters=(*kept, flt), offset=0)

    def without_filter(self, dimension_name: str) -> Query:
        kept = tuple(f for f in self.filters if f.dimension != dimension_name)
        return dataclasses.replace(self, filters=kept, offset=0)

    def params(self) -> dict[str, str]:
        """URL parameters for this view (period, date, filters, comparison), in a stable order.

        Metrics, dimensions, order, limit and offset belong to each report: left out.
        """
        out: dict[str, str] = {"period": self.period.kind}
        if self.period.kind == "custom":
            out["from"] = self.period.start.isoformat()
            out["to"] = self.period.end.isoformat()
        elif self.anchor is not None:
            out["date"] = self.anchor.isoformat()
        for flt in self.filters:
            name, value = flt.param()
            out[name] = value
        if self.compare:
            out["compare"] = self.compare
        return out


def site_ref(site: SiteLike) -> SiteRef:
    if isinstance(site, SiteRef):
        return site
    return SiteRef(id=site.id, domain=site.domain, timezone=site.timezone)


def _parse_date(name: str, raw: str) -> date:
    try:
        if not DATE_RE.fullmatch(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise QueryError(f"{name}: {raw!r} is not a date; use YYYY-MM-DD.") from None
    if not FIRST_DATE <= day <= LAST_DATE:
        raise QueryError(
            f"{name}: {raw!r} is out of range; use a date from {FIRST_DATE} to {LAST_DATE}."
        )
    return day


def _parse_period(
    args: Mapping[str, str], tz: ZoneInfo, today: date, first_day: date | None
) -> Period:
    kind = args.get("period") or "30d"
    if kind not in PERIODS:
        raise QueryError(
            f"period: {kind!r} is not a known period; use one of {', '.join(PERIODS)}."
        )
    if kind == "custom":
        if not args.get("from") or not args.get("to"):
            raise QueryError("period=custom needs both from and to (YYYY-MM-DD).")
        start, end = _parse_date("from", args["from"]), _parse_date("to", args["to"])
        if start > end:
            raise QueryError(f"from ({start}) is after to ({end}).")
    else:
        anchor = _parse_date("date", args["date"]) if args.get("date") else today
        start, end = period_dates(kind, anchor, first_day)
    if (end - start).days >= MAX_DAYS:
        raise QueryError(f"The period is too long: at most {MAX_DAYS} days.")
    return make_period(kind, start, end, tz)


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _parse_metrics(raw: str) -> tuple[str, ...]:
    metrics = tuple(_split(raw))
    if not metrics:
        raise QueryError("metrics: name at least one metric.")
    for name in metrics:
        if name not in PUBLIC_METRICS:
            known = ", ".join(PUBLIC_METRICS)
            raise QueryError(f"metrics: {name!r} is not a known metric; use one of {known}.")
    return tuple(dict.fromkeys(metrics))


def _parse_dimensions(raw: str) -> tuple[str, ...]:
    names = []
    for name in _split(raw):
        try:
            names.append(dimension(name).name)
        except KeyError:
            raise QueryError(
                f"dimension: {name!r} is not a known dimension; use one of {', '.join(DIMENSIONS)}."
            ) from None
    if sum(DIMENSIONS[n].is_time for n in names) > 1:
        raise QueryError("dimension: use at most one time dimension (time:hour, day, week, month).")
    return tuple(dict.fromkeys(names))


def _parse_filters(args: Mapping[str, str]) -> tuple[Filter, ...]:
    filters = []
    for key, raw in args.items():
        dim = BY_SHORT.get(key) or (
            DIMENSIONS.get(key) if key in DIMENSIONS and not DIMENSIONS[key].is_time else None
        )
        if dim is None or raw == "":
            continue
        if "\x00" in raw:  # no stored value holds one, and PostgreSQL refuses it in a query
            raise QueryError(f"{key}: a filter value cannot contain a NUL character (%00).")
        try:
            op, values = decode_values(raw)
        except ValueError:
            raise QueryError(f"{key}: give a value to filter on.") from None
        filters.append(Filter(dim.name, op, values))
    return tuple(filters)


def _parse_int(name: str, raw: str, low: int, high: int) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise QueryError(f"{name}: {raw!r} is not a whole number from {low} to {high}.")
    return int(raw)


def _parse_order(
    raw: str, metrics: tuple[str, ...], dims: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    order = []
    for item in _split(raw):
        name, _, direction = item.partition(":")
        direction = direction or ("asc" if name in dims else "desc")
        if name not in metrics and name not in dims:
            raise QueryError(f"order: {name!r} is not one of this report's metrics or dimensions.")
        if direction not in ("asc", "desc"):
            raise QueryError(f"order: {direction!r} must be asc or desc.")
        order.append((name, direction))
    return tuple(order)


def parse_query(
    site: SiteLike,
    args: Mapping[str, str],
    *,
    now: datetime | None = None,
    first_day: date | None = None,
    **defaults: Any,
) -> Query:
    """Build a Query from URL parameters; `defaults` give parameters the URL may override.

    `now` pins the clock (tests); `first_day` is where period=all starts (the site's first
    visit, see `stats.first_day`). Raises QueryError naming the bad parameter.
    """
    merged = {
        k: ",".join(v) if isinstance(v, tuple | list) else str(v) for k, v in defaults.items()
    }
    merged.update({k: v for k, v in args.items() if isinstance(v, str)})
    ref = site_ref(site)
    try:
        tz = ref.tz
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"The site's time zone {ref.timezone!r} is not known.") from None
    now = now or datetime.now(UTC)
    today = now.astimezone(tz).date()
    period = _parse_period(merged, tz, today, first_day)
    metrics = _parse_metrics(merged.get("metrics") or ",".join(DEFAULT_METRICS))
    dims = _parse_dimensions(merged.get("dimension") or merged.get("property") or "")
    compare = merged.get("compare") or None
    if compare in ("off", "none"):
        compare = None
    if compare is not None and compare not in COMPARISONS:
        raise QueryError(f"compare: {compare!r} must be one of {', '.join(COMPARISONS)}.")
    limit = _parse_int("limit", merged["limit"], 1, MAX_LIMIT) if merged.get("limit") else None
    offset = _parse_int("offset", merged["offset"], 0, 10**9) if merged.get("offset") else 0
    return Query(
        site=ref,
        period=period,
        metrics=metrics,
        dimensions=dims,
        filters=_parse_filters(merged),
        compare=compare,
        compare_period=comparison_period(period, compare, now, tz) if compare else None,
        order_by=_parse_order(merged.get("order", ""), metrics, dims),
        limit=limit,
        offset=offset,
        anchor=_parse_date("date", merged["date"]) if merged.get("date") else None,
    )
