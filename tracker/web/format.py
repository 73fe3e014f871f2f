"""How numbers read on the page: 12.3k visitors, 41% bounce rate, 2m 05s, +12% change.

Registered as Jinja filters by `init_format`, and used by the chart for its axis labels.
"""

from __future__ import annotations

from flask import Flask


def compact(value: float | None) -> str:
    """1234 -> 1.2k, 1234567 -> 1.2M; small numbers as they are (ratios to one decimal)."""
    if value is None:
        return "—"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    if value == int(value):
        return str(int(value))
    return f"{value:.1f}"


def percent(value: float | None) -> str:
    """A 0-1 ratio as a whole percentage."""
    return "—" if value is None else f"{value * 100:.0f}%"


def duration(ms: float | None) -> str:
    """Milliseconds as 45s, 2m 05s or 1h 02m."""
    if ms is None:
        return "—"
    seconds = round(ms / 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def change(value: float | None) -> str:
    """A relative change (0.12 -> +12%); None when the comparison period had nothing."""
    if value is None:
        return ""
    return f"{value * 100:+.0f}%".replace("+0%", "0%").replace("-0%", "0%")


FILTERS = {"compact": compact, "percent": percent, "duration": duration, "change": change}


def init_format(app: Flask) -> None:
    app.jinja_env.filters.update(FILTERS)
