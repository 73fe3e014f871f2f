"""Budget pacing: a month's ad spend against each monthly budget, and where it is heading.

For a budget and a month, with `elapsed` the days of the month through today (today
counts; a past month: all its days; a later month: none):

- **spent**: the cost of the budget's cost rows dated the 1st through today, in the
  budget's currency. Rows in other currencies are summed apart (`other_spend`), never
  converted.
- **expected**: amount x elapsed / days in the month, what an even pace has spent by now.
- **projected**: spent / elapsed x days in the month, the month's end at the pace so far;
  none for a past month (its spend is final) or before the month starts.
- **pace**: spent / expected (1 = even pace); none when expected is 0.
- **status**: "over budget" once spent >= amount; else "over" above 110% of the even
  pace, "under" below 90%, "on track" between; "not started" for a later month.

A cost row belongs to a campaign budget when its campaign, to a source budget when its
source, has the budget's key under `utm_key`. Money stays in integer minor units; the
ratios are exact fractions, so a status never flips on rounding.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.budgets import list_budgets
from tracker.db import Database
from tracker.db.models import AdCost, Budget, Site
from tracker.sites import site_today
from tracker.stats.periods import month_end, month_start
from tracker.utm import utm_key

OVER_BUDGET = "over budget"
OVER = "over"
ON_TRACK = "on track"
UNDER = "under"
NOT_STARTED = "not started"
STATUSES = (OVER_BUDGET, OVER, ON_TRACK, UNDER, NOT_STARTED)
# How pages and the command line say each status.
STATUS_TEXT = {
    OVER_BUDGET: "over budget",
    OVER: "over pace",
    ON_TRACK: "on track",
    UNDER: "under pace",
    NOT_STARTED: "not started",
}
# Within 10% of the even pace either way is on track: ad platforms spend unevenly by day.
PACE_LOW, PACE_HIGH = Fraction(9, 10), Fraction(11, 10)


@dataclass(frozen=True)
class Pacing:
    """One budget's month. Amounts are integer minor units of `currency`."""

    budget_id: int
    scope: str  # "campaign" or "source"
    key: str  # what cost rows are matched by (utm_key of the name)
    label: str  # the name as typed
    currency: str
    amount_minor: int
    month: date  # the month's first day
    days: int  # days in the month
    elapsed: int  # days counted: 1..days this month, days for a past month, 0 for a later one
    final: bool  # a past month: spent is final, nothing is projected
    spent_minor: int
    expected_minor: int  # even pace to date, rounded to the minor unit
    projected_minor: int | None  # None for a past month and before the month starts
    pace: Decimal | None  # spent / expected (4 decimals); None when expected is 0
    status: str  # one of STATUSES
    # Spend of the same rows in other currencies: currency -> minor units, never converted.
    other_spend: dict[str, int] = field(default_factory=dict)

    @property
    def used(self) -> Decimal | None:
        """spent / amount (4 decimals); None for a zero amount."""
        return _ratio(self.spent_minor, self.amount_minor)

    @property
    def caption(self) -> str:
        """ "March 2026, day 10 of 31", "February 2026 (final)", "April 2026 (not started)"."""
        month = self.month.strftime("%B %Y")
        if self.final:
            return f"{month} (final)"
        if self.elapsed == 0:
            return f"{month} (not started)"
        return f"{month}, day {self.elapsed} of {self.days}"


def month_pacing(
    db: Database,
    site: Site,
    *,
    month: date | None = None,
    today: date | None = None,
    now: datetime | None = None,
) -> list[Pacing]:
    """Every budget of the site for the month containing `month` (default: today's), in
    the budgets' order (campaigns, then sources, by key). `today` defaults to the site's
    local date at `now`."""
    today = today or site_today(site, now)
    first = month_start(month or today)
    last = month_end(first)
    days = last.day
    if first > today:
        elapsed, through = 0, first - timedelta(days=1)  # nothing spent yet
    else:
        through = min(last, today)
        elapsed = (through - first).days + 1
    with db.session() as session:
        budgets = list_budgets(session, site)
        spend = _spend(session, site.id, first, through) if budgets else {}
    final = last < today
    return [
        _pacing(b, spend.get((b.scope, b.key), {}), first, days, elapsed, final) for b in budgets
    ]


def _spend(
    session: Session, site_id: int, first: date, through: date
) -> dict[tuple[str, str], dict[str, int]]:
    """(scope, key) -> currency -> cost in minor units, of the cost rows dated first..through.
    Stored values are folded with utm_key here too, so a row stored in another spelling
    still finds its budget."""
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for scope, column in (("campaign", AdCost.campaign), ("source", AdCost.source)):
        query = (
            select(column, AdCost.currency, func.sum(AdCost.cost_minor))
            .where(AdCost.site_id == site_id, AdCost.day >= first, AdCost.day <= through)
            .group_by(column, AdCost.currency)
        )
        for value, currency, cost in session.execute(query):
            totals[(scope, utm_key(value or ""))][currency] += int(cost or 0)
    return totals


def _pacing(
    budget: Budget,
    spend: dict[str, int],
    first: date,
    days: int,
    elapsed: int,
    final: bool,
) -> Pacing:
    amount, spent = budget.amount_minor, spend.get(budget.currency, 0)
    expected = Fraction(amount * elapsed, days)
    projected = None if final or elapsed == 0 else _round(Fraction(spent * days, elapsed))
    return Pacing(
        budget_id=budget.id,
        scope=budget.scope,
        key=budget.key,
        label=budget.label,
        currency=budget.currency,
        amount_minor=amount,
        month=first,
        days=days,
        elapsed=elapsed,
        final=final,
        spent_minor=spent,
        expected_minor=_round(expected),
        projected_minor=projected,
        pace=_ratio(spent, expected),
        status=_status(spent, amount, expected, elapsed),
        other_spend={c: v for c, v in sorted(spend.items()) if c != budget.currency},
    )


def _status(spent: int, amount: int, expected: Fraction, elapsed: int) -> str:
    if spent >= amount:
        return OVER_BUDGET
    if elapsed == 0:
        return NOT_STARTED
    if spent > expected * PACE_HIGH:
        return OVER
    if spent < expected * PACE_LOW:
        return UNDER
    return ON_TRACK


def _round(value: Fraction) -> int:
    """To the nearest minor unit, halves up."""
    return math.floor(value + Fraction(1, 2))


def _ratio(part: int | Fraction, whole: int | Fraction) -> Decimal | None:
    if whole == 0:
        return None
    ratio = Fraction(part) / Fraction(whole)
    return (Decimal(ratio.numerator) / Decimal(ratio.denominator)).quantize(Decimal("0.0001"))
