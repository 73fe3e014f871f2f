"""Stats API parameters (Plausible's v1 names) -> the stats layer's Query.

The API speaks Plausible's dialect so existing tools fit: `period=day` and `date=` (a day,
or `from,to` for `period=custom`), `filters=` expressions, `property=` and `interval=`.
Everything is then parsed by `parse_query`, the same as the stats page and the export.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from tracker.stats import DIMENSIONS, Query, QueryError, parse_expression, parse_query
from tracker.stats.query import SiteLike

# Plausible's period names that differ from ours.
PERIOD_ALIASES = {"day": "today"}
INTERVALS = {"hour": "time:hour", "date": "time:day", "week": "time:week", "month": "time:month"}
BREAKDOWN_LIMIT = 100
MAX_BREAKDOWN_LIMIT = 1000


def _period_args(args: Mapping[str, str]) -> dict[str, str]:
    period = args.get("period") or "30d"
    period = PERIOD_ALIASES.get(period, period)
    out = {"period": period}
    raw_date = args.get("date", "")
    if period == "custom":
        start, _, end = raw_date.partition(",")
        if not start or not end:
            raise QueryError("date: period=custom needs date=YYYY-MM-DD,YYYY-MM-DD (from,to).")
        out["from"], out["to"] = start.strip(), end.strip()
    elif raw_date:
        out["date"] = raw_date
    return out


def _filter_args(args: Mapping[str, str]) -> dict[str, str]:
    return dict(flt.param() for flt in parse_expression(args.get("filters", "")))


def property_key(name: str) -> str:
    """The key a breakdown row names its value by: `visit:source` -> `source`."""
    return name.split(":", 1)[1]


def stats_query(
    site: SiteLike,
    args: Mapping[str, str],
    *,
    first_day: date | None = None,
    **extra: Any,
) -> Query:
    """A Query from API parameters; `extra` are stats parameters the endpoint sets."""
    params: dict[str, Any] = {**_period_args(args), **_filter_args(args), **extra}
    if args.get("metrics"):
        params["metrics"] = args["metrics"]
    return parse_query(site, params, first_day=first_day)


def interval_dimension(args: Mapping[str, str]) -> str:
    """The time dimension of a timeseries: `interval=`, else hours for a day, months for 12mo."""
    interval = args.get("interval")
    if interval is None:
        period = PERIOD_ALIASES.get(args.get("period", ""), args.get("period", ""))
        if period in ("today", "yesterday"):
            return INTERVALS["hour"]
        return INTERVALS["month"] if period in ("12mo", "year") else INTERVALS["date"]
    if interval not in INTERVALS:
        raise QueryError(f"interval: {interval!r} is not one of {', '.join(INTERVALS)}.")
    return INTERVALS[interval]


def breakdown_property(args: Mapping[str, str]) -> str:
    name = args.get("property", "")
    dimension = DIMENSIONS.get(name)
    if dimension is None or dimension.is_time:
        known = ", ".join(n for n, d in DIMENSIONS.items() if not d.is_time)
        raise QueryError(f"property: {name!r} is not a property to break down by; use {known}.")
    return name


def _whole(args: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = args.get(name) or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise QueryError(f"{name}: {raw!r} is not a whole number from 1 to {high}.")
    return int(raw)


def breakdown_paging(args: Mapping[str, str]) -> dict[str, str]:
    """`limit` and 1-based `page` as the stats layer's limit and offset."""
    limit = _whole(args, "limit", BREAKDOWN_LIMIT, MAX_BREAKDOWN_LIMIT)
    page = _whole(args, "page", 1, 1_000_000)
    return {"limit": str(limit), "offset": str((page - 1) * limit)}
