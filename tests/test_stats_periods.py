"""Periods: named ranges, comparison periods, UTC bounds and DST in the site's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from tracker.stats.periods import (
    HOUR_MS,
    comparison_period,
    hour_starts,
    local_label,
    local_midnight_ms,
    make_period,
    offset_segments,
    period_dates,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
ANCHOR = date(2026, 3, 15)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        ("today", date(2026, 3, 15), date(2026, 3, 15)),
        ("yesterday", date(2026, 3, 14), date(2026, 3, 14)),
        ("7d", date(2026, 3, 9), date(2026, 3, 15)),
        ("30d", date(2026, 2, 14), date(2026, 3, 15)),
        ("month", date(2026, 3, 1), date(2026, 3, 31)),
        ("last_month", date(2026, 2, 1), date(2026, 2, 28)),
        ("12mo", date(2025, 4, 1), date(2026, 3, 31)),
        ("year", date(2026, 1, 1), date(2026, 12, 31)),
    ],
)
def test_named_periods(kind: str, start: date, end: date) -> None:
    assert period_dates(kind, ANCHOR) == (start, end)


def test_all_starts_at_first_day_or_anchor() -> None:
    assert period_dates("all", ANCHOR, date(2024, 5, 2)) == (date(2024, 5, 2), ANCHOR)
    assert period_dates("all", ANCHOR) == (ANCHOR, ANCHOR)


def test_utc_bounds_follow_the_zone() -> None:
    period = make_period("today", date(2026, 7, 1), date(2026, 7, 1), PARIS)
    assert period.start_ms == ms(2026, 6, 30, 22)
    assert period.end_ms == ms(2026, 7, 1, 22)


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        (PARIS, date(2026, 3, 29), 23),
        (PARIS, date(2026, 10, 25), 25),
        (NEW_YORK, date(2026, 3, 8), 23),
        (NEW_YORK, date(2026, 11, 1), 25),
        (PARIS, date(2026, 6, 1), 24),
    ],
)
def test_dst_days_have_23_or_25_hours(tz: ZoneInfo, day: date, hours: int) -> None:
    period = make_period("custom", day, day, tz)
    assert (period.end_ms - period.start_ms) // HOUR_MS == hours
    assert len(hour_starts(period.start_ms, period.end_ms, tz)) == hours


def test_fall_back_hour_appears_twice_with_its_offset() -> None:
    period = make_period("custom", date(2026, 10, 25), date(2026, 10, 25), PARIS)
    labels = [local_label(t, PARIS) for t in hour_starts(period.start_ms, period.end_ms, PARIS)]
    assert labels[:5] == [
        "2026-10-25T00:00+02:00",
        "2026-10-25T01:00+02:00",
        "2026-10-25T02:00+02:00",
        "2026-10-25T02:00+01:00",
        "2026-10-25T03:00+01:00",
    ]


def test_offset_segments_find_each_change_exactly() -> None:
    start, end = local_midnight_ms(date(2026, 1, 1), NEW_YORK), ms(2027, 1, 1)
    assert offset_segments(start, end, NEW_YORK) == [
        (start, -5 * HOUR_MS),
        (ms(2026, 3, 8, 7), -4 * HOUR_MS),
        (ms(2026, 11, 1, 6), -5 * HOUR_MS),
    ]


def test_half_hour_zone_hours_start_on_local_hours() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    period = make_period("today", date(2026, 1, 1), date(2026, 1, 1), kolkata)
    starts = hour_starts(period.start_ms, period.end_ms, kolkata)
    assert len(starts) == 24
    assert local_label(starts[1], kolkata) == "2026-01-01T01:00+05:30"


def _compare(kind: str, start: date, end: date, mode: str, today: date) -> tuple[date, date]:
    now = datetime.combine(today, time(12), tzinfo=PARIS)
    previous = comparison_period(make_period(kind, start, end, PARIS), mode, now, PARIS)
    return previous.start, previous.end


def test_today_compares_with_yesterday_until_the_same_time() -> None:
    now = datetime(2026, 3, 15, 9, 40, tzinfo=PARIS)
    today = make_period("today", now.date(), now.date(), PARIS)
    previous = comparison_period(today, "previous_period", now, PARIS)
    assert (previous.start, previous.end, previous.cut) == (date(2026, 3, 14),) * 2 + (True,)
    assert previous.end_ms == int(datetime(2026, 3, 14, 9, 40, tzinfo=PARIS).timestamp() * 1000)


def test_seven_days_cut_their_last_compared_day_at_the_same_time() -> None:
    now = datetime(2026, 3, 15, 9, 40, tzinfo=PARIS)
    week = make_period("7d", date(2026, 3, 9), now.date(), PARIS)
    previous = comparison_period(week, "previous_period", now, PARIS)
    assert (previous.start, previous.end) == (date(2026, 3, 2), date(2026, 3, 8))
    assert previous.end_ms == int(datetime(2026, 3, 8, 9, 40, tzinfo=PARIS).timestamp() * 1000)


def test_a_period_over_is_compared_whole() -> None:
    now = datetime(2026, 3, 15, 9, 40, tzinfo=PARIS)
    yesterday = make_period("yesterday", date(2026, 3, 14), date(2026, 3, 14), PARIS)
    previous = comparison_period(yesterday, "previous_period", now, PARIS)
    assert not previous.cut
    assert previous.end_ms == local_midnight_ms(date(2026, 3, 14), PARIS)


def test_previous_period_same_length_just_before() -> None:
    today = date(2026, 3, 15)
    assert _compare("7d", date(2026, 3, 9), today, "previous_period", today) == (
        date(2026, 3, 2),
        date(2026, 3, 8),
    )


def test_month_in_progress_compares_the_same_days_of_last_month() -> None:
    today = date(2026, 3, 10)
    assert _compare("month", date(2026, 3, 1), date(2026, 3, 31), "previous_period", today) == (
        date(2026, 2, 1),
        date(2026, 2, 10),
    )


def test_whole_month_compares_with_whole_previous_month() -> None:
    march = (date(2026, 3, 1), date(2026, 3, 31))
    assert _compare("last_month", *march, "previous_period", date(2026, 4, 10)) == (
        date(2026, 2, 1),
        date(2026, 2, 28),
    )


def test_year_over_year_clamps_leap_day() -> None:
    today = date(2028, 3, 1)
    assert _compare("custom", date(2028, 2, 29), date(2028, 2, 29), "year_over_year", today) == (
        date(2027, 2, 28),
        date(2027, 2, 28),
    )
