"""How numbers read on the page: 12.3k visitors, 41% bounce rate, 2m 05s, +12% change.

Values arrive in the stats layer's units (rates in percent, durations in seconds).
`metric_value` and `metric_change` pick the format by metric name; the chart uses the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Number = int | float | None


def compact(value: Number) -> str:
    """1234 -> 1.2k, 1234567 -> 1.2M; small numbers as they are (fractions to one decimal)."""
    if value is None:
        return "—"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}"


def decimal(value: Number) -> str:
    return "—" if value is None else f"{value:.2f}"


def percent(value: Number) -> str:
    """A percentage (0-100) rounded to a whole number."""
    return "—" if value is None else f"{value:.0f}%"


def duration(seconds: Number) -> str:
    """Seconds as 45s, 2m 05s or 1h 02m."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, whole = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {whole:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def one_decimal_percent(value: Number) -> str:
    """Conversion rates: 2.4% (small rates are what campaigns are judged on)."""
    return "—" if value is None else f"{value:.1f}%"


def money(amounts: object) -> str:
    """Revenue per currency ({"EUR": "42.50", "USD": "9.00"}) as `42.50 EUR · 9.00 USD`:
    currencies stay apart, never converted."""
    if not isinstance(amounts, dict) or not amounts:
        return "—"
    return " · ".join(f"{value} {currency}" for currency, value in amounts.items())


FORMATS: dict[str, Callable[[Any], str]] = {
    "visitors": compact,
    "visits": compact,
    "pageviews": compact,
    "events": compact,
    "views_per_visit": decimal,
    "bounce_rate": percent,
    "visit_duration": duration,
    "time_on_page": duration,
    "scroll_depth": percent,
    "conversions": compact,
    "conversion_rate": one_decimal_percent,
    "exit_rate": one_decimal_percent,
    "total_revenue": money,
    "average_revenue": money,
}


def metric_value(metric: str, value: Any) -> str:
    return FORMATS.get(metric, compact)(value)


def metric_change(metric: str, change: Number) -> str:
    """ "+12%" for counts, "+3 pts" for rates (the stats layer's change units); "" if unknown."""
    if change is None:
        return ""
    if metric in ("bounce_rate", "conversion_rate", "exit_rate", "scroll_depth", "ctr"):
        return f"{change:+.0f} pts".replace("+0 pts", "0 pts").replace("-0 pts", "0 pts")
    return f"{change:+.0f}%".replace("+0%", "0%").replace("-0%", "0%")
