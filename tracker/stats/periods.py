"""Periods: named date ranges in a site's time zone, their UTC bounds and comparison periods.

Every period is a range of whole local days. Timestamps in the database are UTC
milliseconds, so this module also turns local days into UTC bounds and finds the few
UTC-offset changes (DST) inside a range, which the compiler turns into a CASE expression:
days are 23 or 25 hours long on DST changes and buckets must follow.
"""

from __future__ import annotations

import calendar
import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tracker.db.models import EARLIEST_DAY

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
EPOCH = date(1970, 1, 1)

PERIODS = (
    "today",
    "yesterday",
    "7d",
    "30d",
    "month",
    "last_month",
    "12mo",
    "year",
    "all",
    "custom",
)
COMPARISONS = ("previous_period", "year_over_year")


@dataclass(frozen=True)
class Period:
    """Whole local days `start`..`end` (inclusive) and their UTC bounds [start_ms, end_ms)."""

    kind: str
    start: date
    end: date
    start_ms: int
    end_ms: int
    # The last day stops before its end (end_ms is not its midnight): the comparison of a
    # period still running stops at the same time of day as now.
    cut: bool = False

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def local_midnight_ms(day: date, tz: ZoneInfo) -> int:
    """UTC milliseconds of the first instant of `day` in `tz`.

    Where midnight does not exist (a DST jump at 00:00), fold=0 reads it with the offset
    before the jump, which lands exactly on the jump: the day's real first instant.
    """
    local = datetime.combine(day, time(), tzinfo=tz)
    return int(local.astimezone(UTC).timestamp() * 1000)


def make_period(kind: str, start: date, end: date, tz: ZoneInfo) -> Period:
    return Period(
        kind=kind,
        start=start,
        end=end,
        start_ms=local_midnight_ms(start, tz),
        end_ms=local_midnight_ms(end + timedelta(days=1), tz),
    )


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def shift_months(day: date, months: int) -> date:
    """The same day number `months` later (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def period_dates(kind: str, anchor: date, first_day: date | None = None) -> tuple[date, date]:
    """Local start and end days of a named period ending around `anchor` (not `custom`)."""
    if kind == "today":
        return anchor, anchor
    if kind == "yesterday":
        day = anchor - timedelta(days=1)
        return day, day
    if kind == "7d":
        return anchor - timedelta(days=6), anchor
    if kind == "30d":
        return anchor - timedelta(days=29), anchor
    if kind == "month":
        return month_start(anchor), month_end(anchor)
    if kind == "last_month":
        last = month_start(anchor) - timedelta(days=1)
        return month_start(last), last
    if kind == "12mo":
        return month_start(shift_months(anchor, -11)), month_end(anchor)
    if kind == "year":
        return date(anchor.year, 1, 1), date(anchor.year, 12, 31)
    if kind == "all":
        # Not before EARLIEST_DAY: events dated earlier are refused (ones stored before the
        # collector did are misread dates, and would make "All time" a century long).
        return min(max(first_day or anchor, EARLIEST_DAY), anchor), anchor
    raise ValueError(f"unknown period {kind!r}")


def comparison_period(period: Period, mode: str, now: datetime, tz: ZoneInfo) -> Period:
    """The period a comparison reads: the one just before, or the same dates a year earlier.

    A period still in progress is compared up to the same point, like with like: the first
    10 days of this month against the first 10 days of last month, today until 09:40
    against yesterday until 09:40, the last 7 days against the 7 before, the last one cut
    at the time of day it is now.
    """
    local_now = now.astimezone(tz)
    whole = _whole_comparison(period, mode, local_now.date(), tz)
    if not period.start_ms <= now.timestamp() * 1000 < period.end_ms:
        return whole
    until = datetime.combine(whole.end, local_now.time(), tzinfo=tz)
    return dataclasses.replace(
        whole, end_ms=int(until.astimezone(UTC).timestamp() * 1000), cut=True
    )


def _whole_comparison(period: Period, mode: str, today: date, tz: ZoneInfo) -> Period:
    end = min(period.end, max(today, period.start))
    if mode == "year_over_year":
        return make_period(period.kind, shift_months(period.start, -12), shift_months(end, -12), tz)
    if period.kind in ("month", "last_month") or (
        period.kind == "custom" and period.start.day == 1 and period.end == month_end(period.end)
    ):
        months = (end.year - period.start.year) * 12 + end.month - period.start.month + 1
        return make_period(
            period.kind, shift_months(period.start, -months), shift_months(end, -months), tz
        )
    if period.kind in ("year", "12mo"):
        return make_period(period.kind, shift_months(period.start, -12), shift_months(end, -12), tz)
    length = (end - period.start).days + 1
    start = period.start - timedelta(days=length)
    return make_period(period.kind, start, start + timedelta(days=length - 1), tz)


def offset_ms(ts_ms: int, tz: ZoneInfo) -> int:
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(tz)
    return int((moment.utcoffset() or timedelta()).total_seconds() * 1000)


def offset_segments(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """[(from_ms, offset_ms), ...]: the UTC offset in force from each instant until the next.

    The first segment starts at `start_ms`. Offsets change at most a few times a year, so
    the range is walked day by day and each change is found exactly by bisection.
    """
    segments = [(start_ms, offset_ms(start_ms, tz))]
    t = start_ms
    while t < end_ms:
        nxt = min(t + DAY_MS, end_ms)
        if offset_ms(nxt, tz) != segments[-1][1]:
            low, high = t, nxt  # offset(low) == current, offset(high) != current
            while high - low > 1:
                mid = (low + high) // 2
                if offset_ms(mid, tz) == segments[-1][1]:
                    low = mid
                else:
                    high = mid
            segments.append((high, offset_ms(high, tz)))
        t = nxt
    return segments


def local_date(ts_ms: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(tz).date()


def day_number(day: date) -> int:
    """Days since 1970-01-01: how local days are stored and bucketed in SQL."""
    return (day - EPOCH).days


def day_from_number(number: int) -> date:
    return EPOCH + timedelta(days=number)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def hour_starts(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[int]:
    """UTC ms of every local hour start in [start_ms, end_ms): 23 on a spring day, 25 in fall."""
    starts = []
    t = start_ms
    while t < end_ms:
        starts.append(t)
        probe = t + HOUR_MS
        off = offset_ms(probe, tz)
        nxt = ((probe + off) // HOUR_MS) * HOUR_MS - off
        t = nxt if nxt > t else probe
    return starts


def local_label(ts_ms: int, tz: ZoneInfo) -> str:
    """An hour bucket's name: local time with its offset, distinct for the repeated fall hour."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(tz).isoformat(timespec="minutes")
