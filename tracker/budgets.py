"""Monthly budgets: setting, listing and deleting a site's spending limits.

A budget caps what one campaign or one source (`scope`) may spend in a month, every month
until it is deleted; tracker/stats/pacing.py compares it with the month's ad spend. A
budget matches cost rows by `utm_key` of its name, as cost rows store their campaign and
source, so "Spring Sale" budgets the rows of "spring sale". Setting a budget that exists
(same scope and key) changes it: one budget per campaign or source. Every problem raises
BudgetError with a sentence naming the field; nothing is changed before validation passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.db.models import AdCost, Budget, Site
from tracker.money import MoneyError, currency_code, parse_amount, to_minor
from tracker.text import has_control
from tracker.utm import utm_key

SCOPES = ("campaign", "source")
SCOPE_LABELS = {"campaign": "Campaign", "source": "Source"}
MAX_NAME = 255  # the column's length, and the cost rows' campaign and source columns'
MAX_SUGGESTIONS = 200


class BudgetError(ValueError):
    """A user-facing problem with a budget; `field` names the input at fault
    (scope, name, amount, currency)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Saved:
    """What `set_budget` did: the budget, and whether it is new or an existing one changed."""

    budget: Budget
    created: bool


def _scope(value: str) -> str:
    scope = value.strip().lower()
    if scope not in SCOPES:
        raise BudgetError(
            "scope", f"A budget is for a campaign or a source (got {value.strip()[:20]!r})."
        )
    return scope


def _name(value: str) -> str:
    """The name as typed, trimmed: 1 to MAX_NAME characters, no control characters."""
    name = value.strip()
    if not name:
        raise BudgetError("name", "The campaign or source name is required.")
    if len(name) > MAX_NAME or len(utm_key(name)) > MAX_NAME:
        raise BudgetError("name", f"The name must be at most {MAX_NAME} characters.")
    if has_control(name):
        raise BudgetError(
            "name", "The name must not contain control characters (tabs, line breaks)."
        )
    return name


def _currency(value: str, fallback: str) -> str:
    """An ISO 4217 code, upper-cased; `fallback` (the budget's or the site's) when empty."""
    code = value.strip().upper() or fallback
    if not code:
        raise BudgetError(
            "currency",
            "The currency is required (an ISO 4217 code such as EUR): the site has none set.",
        )
    checked = currency_code(code)
    if checked is None:
        raise BudgetError(
            "currency", f"Currency {code[:20]!r} is not an ISO 4217 code: give one such as EUR."
        )
    return checked


def _amount_minor(value: str, currency: str) -> int:
    """The amount typed ("1500", "1500.50") in `currency`'s minor units, above zero."""
    try:
        minor = to_minor(parse_amount(value), currency)
    except MoneyError as exc:
        raise BudgetError("amount", f"Amount {value.strip()[:50]!r}: {exc}.") from None
    if minor <= 0:
        raise BudgetError("amount", "The amount must be above zero.")
    return minor


def list_budgets(session: Session, site: Site) -> list[Budget]:
    """The site's budgets: campaigns first, then sources, each by key."""
    order = (Budget.scope != "campaign", Budget.key, Budget.id)
    return list(session.scalars(select(Budget).where(Budget.site_id == site.id).order_by(*order)))


def find_budget(session: Session, site: Site, scope: str, name: str) -> Budget | None:
    """The site's budget for that campaign or source, by its key (case and spaces ignored)."""
    query = select(Budget).where(
        Budget.site_id == site.id, Budget.scope == scope, Budget.key == utm_key(name)
    )
    return session.scalar(query)


def get_budget(session: Session, site: Site, budget_id: int) -> Budget | None:
    budget = session.get(Budget, budget_id)
    return budget if budget is not None and budget.site_id == site.id else None


def set_budget(
    session: Session, site: Site, *, scope: str, name: str, amount: str, currency: str = ""
) -> Saved:
    """Create the budget, or change the amount (and currency, label) of the one the site
    already has for that campaign or source. An empty currency keeps the budget's, else
    takes the site's. BudgetError, nothing saved, on bad input."""
    scope = _scope(scope)
    name = _name(name)
    budget = find_budget(session, site, scope, name)
    code = _currency(currency, budget.currency if budget is not None else site.currency)
    minor = _amount_minor(amount, code)
    created = budget is None
    if budget is None:
        budget = Budget(site_id=site.id, scope=scope, key=utm_key(name))
        session.add(budget)
    budget.label, budget.amount_minor, budget.currency = name, minor, code
    session.flush()
    return Saved(budget, created)


def delete_budget(session: Session, budget: Budget) -> None:
    session.delete(budget)
    session.flush()


def campaign_suggestions(session: Session, site: Site) -> list[str]:
    """The campaigns the site's cost rows name, each as its latest import spells it, for
    the budget form to offer; the most recently paid for first."""
    query = (
        select(
            AdCost.campaign,
            AdCost.campaign_label,
            func.max(AdCost.day),
            func.max(AdCost.imported_at),
        )
        .where(AdCost.site_id == site.id, AdCost.campaign != "")
        .group_by(AdCost.campaign, AdCost.campaign_label)
    )
    last_day: dict[str, date] = {}
    spelling: dict[str, tuple[datetime, str]] = {}
    for key, label, day, imported in session.execute(query):
        last_day[key] = max(day, last_day.get(key, day))
        if key not in spelling or imported > spelling[key][0]:
            spelling[key] = (imported, label or key)
    keys = sorted(last_day, key=lambda k: (-last_day[k].toordinal(), spelling[k][1].casefold()))
    return [spelling[k][1] for k in keys[:MAX_SUGGESTIONS]]
