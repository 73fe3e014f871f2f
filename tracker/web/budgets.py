"""Budgets on the web: the settings page's Budgets section (set, change, delete; this
month's pacing) and `pacing_table`, which turns pacing results into the display rows the
`_pacing.html` partial shows (the campaign report includes it too).

Only the site's admins and owners reach these forms (`site_access(domain, ADMIN)`: a viewer
gets 403, anyone else the same 404 as for an unknown site); share links never do. Each form
carries a CSRF token. A budget that fails validation is not saved: the settings page comes
back (400) with the error under its field and the input kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from flask import Blueprint, abort, flash, g, make_response, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice

from tracker import audit
from tracker.budgets import (
    MAX_NAME,
    SCOPE_LABELS,
    BudgetError,
    campaign_suggestions,
    delete_budget,
    get_budget,
    list_budgets,
    set_budget,
)
from tracker.db.models import Budget, Site
from tracker.members import ADMIN
from tracker.money import format_minor
from tracker.stats.pacing import (
    NOT_STARTED,
    ON_TRACK,
    OVER,
    OVER_BUDGET,
    STATUS_TEXT,
    UNDER,
    Pacing,
    month_pacing,
)
from tracker.web import settings
from tracker.web.access import logged_in_user, site_access
from tracker.web.context import get_db

bp = Blueprint("budgets", __name__)
EXPIRED = "The form expired; reload the page and try again."
UNKNOWN = "—"  # as tracker/web/format.py shows an unknown number

# Status -> (css class, mark): the mark and the words say it without the colour.
STATUS_LOOK = {
    OVER_BUDGET: ("over-budget", "‼"),
    OVER: ("over", "▲"),
    ON_TRACK: ("on-track", "✓"),
    UNDER: ("under", "▼"),
    NOT_STARTED: ("not-started", "·"),
}


class BudgetForm(FlaskForm):
    """A budget to set. Only the CSRF token is checked here: everything else is
    tracker.budgets' validation, so the page and the CLI refuse the same input."""

    scope = SelectField("For", choices=[SelectChoice(k, v) for k, v in SCOPE_LABELS.items()])
    name = StringField("Campaign or source", description="As in utm_campaign or utm_source")
    amount = StringField("Monthly amount", description="e.g. 1500 or 1500.50")
    currency = StringField("Currency", description="ISO 4217 code, e.g. EUR")


class ChangeForm(FlaskForm):
    """A budget's new amount (and currency: empty keeps it)."""

    amount = StringField("Monthly amount")
    currency = StringField("Currency")


class ActionForm(FlaskForm):
    """Only the CSRF token: deleting is a POST to the budget's own URL."""


# The pacing table


@dataclass(frozen=True)
class PacingRow:
    """One budget's month as text, for `_pacing.html`."""

    label: str
    scope: str  # "Campaign" or "Source"
    amount: str  # "1500.00 EUR"
    spent: str
    expected: str  # UNKNOWN when unknown
    projected: str
    pace: str  # "112%" of the even pace
    used: float  # spent / amount in percent, 0 to 100: the bar's fill
    mark: float  # the even pace's place on the bar, in percent
    bar_text: str  # what the bar shows, for screen readers
    status: str  # the css class (over-budget, over, on-track, under, not-started)
    status_mark: str
    status_text: str
    other: str  # spend in other currencies, "" when none


@dataclass(frozen=True)
class PacingTable:
    """What `_pacing.html` renders: a caption ("December 2026, day 5 of 31") and rows."""

    caption: str
    rows: list[PacingRow]


def _money(minor: int | None, currency: str) -> str:
    return UNKNOWN if minor is None else f"{format_minor(minor, currency)} {currency}"


def _bar_percent(share: Decimal | None) -> float:
    """A share (0.62) as a place on a bar (62.0), held to 0..100: spending twice the budget
    fills the bar, no more."""
    return 0.0 if share is None else float(min(max(share, Decimal(0)), Decimal(1)) * 100)


def pacing_row(result: Pacing) -> PacingRow:
    css, mark = STATUS_LOOK[result.status]
    used = _bar_percent(result.used)
    even = _bar_percent(Decimal(result.elapsed) / result.days if result.days else None)
    other = " · ".join(_money(v, c) for c, v in result.other_spend.items())
    return PacingRow(
        label=result.label,
        scope=SCOPE_LABELS.get(result.scope, result.scope),
        amount=_money(result.amount_minor, result.currency),
        spent=_money(result.spent_minor, result.currency),
        expected=_money(result.expected_minor, result.currency),
        projected=_money(result.projected_minor, result.currency),
        pace=UNKNOWN if result.pace is None else f"{result.pace * 100:.0f}%",
        used=round(used, 1),
        mark=round(even, 1),
        bar_text=f"{used:.0f}% of the budget spent; an even pace is at {even:.0f}%",
        status=css,
        status_mark=mark,
        status_text=STATUS_TEXT[result.status].capitalize(),
        other=f"Also {other} (other currencies, not converted)" if other else "",
    )


def pacing_table(results: Sequence[Pacing]) -> PacingTable:
    """The display rows of `tracker.stats.pacing.month_pacing`'s results, for `_pacing.html`
    (include it with a variable `pacing` holding this)."""
    caption = results[0].caption if results else ""
    return PacingTable(caption=caption, rows=[pacing_row(r) for r in results])


# The settings page section


@dataclass(frozen=True)
class BudgetItem:
    """A budget as the settings page lists it."""

    id: int
    label: str
    scope: str  # "Campaign" or "Source"
    amount: str  # "1500.00" (the change form's value)
    currency: str


@dataclass(frozen=True)
class BudgetSection:
    budgets: list[BudgetItem]
    pacing: PacingTable
    suggestions: list[str]
    form: BudgetForm
    errors: dict[int, str]  # budget id -> why its change was refused
    max_name: int = MAX_NAME


@bp.app_template_global()
def budget_section(site: Site) -> BudgetSection:
    """What the settings page's Budgets section shows; a refused form comes back as typed."""
    with get_db().session() as session:
        budgets = [
            BudgetItem(
                b.id,
                b.label,
                SCOPE_LABELS[b.scope],
                format_minor(b.amount_minor, b.currency),
                b.currency,
            )
            for b in list_budgets(session, site)
        ]
        suggestions = campaign_suggestions(session, site)
    form = g.get("budget_form") or BudgetForm(formdata=None, data={"currency": site.currency})
    return BudgetSection(
        budgets=budgets,
        pacing=pacing_table(month_pacing(get_db(), site)),
        suggestions=suggestions,
        form=form,
        errors=g.get("budget_errors", {}),
    )


def _back(domain: str) -> Response:
    return redirect(url_for("site_settings.show", domain=domain) + "#budgets")


def _refused(domain: str) -> ResponseReturnValue:
    """The settings page again, with the refused form (in `g`) in the Budgets section."""
    response = make_response(settings.show(domain))
    response.status_code = 400
    return response


def _saved_message(budget: Budget, created: bool) -> str:
    what = f"{SCOPE_LABELS[budget.scope]} {budget.label!r}"
    amount = _money(budget.amount_minor, budget.currency)
    return f"Budget for {what} {'set' if created else 'changed'}: {amount} a month."


@bp.post("/sites/<domain>/settings/budgets")
def set_view(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = BudgetForm()
    if not form.validate_on_submit():
        g.budget_form = form
        return _refused(domain)
    try:
        with get_db().session() as session:
            saved = set_budget(
                session,
                access.site,
                scope=form.scope.data or "",
                name=form.name.data or "",
                amount=form.amount.data or "",
                currency=form.currency.data or "",
            )
            message = _saved_message(saved.budget, saved.created)
            audit.record(session, logged_in_user(), access.site, "budget.set", message)
    except BudgetError as exc:
        field = form[exc.field] if exc.field in form else form.name
        field.errors = [*field.errors, str(exc)]
        g.budget_form = form
        return _refused(domain)
    flash(message)
    return _back(domain)


@bp.post("/sites/<domain>/settings/budgets/<int:budget_id>")
def change_view(domain: str, budget_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = ChangeForm()
    if not form.validate_on_submit():
        return EXPIRED, 400
    try:
        with get_db().session() as session:
            budget = get_budget(session, access.site, budget_id)
            if budget is None:
                abort(404)
            saved = set_budget(
                session,
                access.site,
                scope=budget.scope,
                name=budget.label,
                amount=form.amount.data or "",
                currency=form.currency.data or "",
            )
            message = _saved_message(saved.budget, saved.created)
            audit.record(session, logged_in_user(), access.site, "budget.set", message)
    except BudgetError as exc:
        g.budget_errors = {budget_id: str(exc)}
        return _refused(domain)
    flash(message)
    return _back(domain)


@bp.post("/sites/<domain>/settings/budgets/<int:budget_id>/delete")
def delete_view(domain: str, budget_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        budget = get_budget(session, access.site, budget_id)
        if budget is None:
            abort(404)
        what = f"{SCOPE_LABELS[budget.scope]} {budget.label!r}"
        delete_budget(session, budget)
        audit.record(session, logged_in_user(), access.site, "budget.delete", f"Budget for {what}")
    flash(f"Budget for {what} deleted; cost rows are kept.")
    return _back(domain)
