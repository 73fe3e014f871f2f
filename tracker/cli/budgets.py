"""`tracker budgets`: set, list (with the month's pacing) and delete a site's monthly budgets."""

from __future__ import annotations

from datetime import date, datetime

import click

from tracker import audit
from tracker.budgets import SCOPES, BudgetError, delete_budget, find_budget, set_budget
from tracker.cli.context import SITE_OPTION, CliContext, pass_context, site_session, table
from tracker.money import format_minor
from tracker.sites import find_site
from tracker.stats.pacing import STATUS_TEXT, Pacing, month_pacing

CAMPAIGN_OPTION = click.option("--campaign", metavar="NAME", help="A campaign (utm_campaign).")
SOURCE_OPTION = click.option("--source", metavar="NAME", help="A source (utm_source).")
UNKNOWN = "-"


def _scope_name(campaign: str | None, source: str | None) -> tuple[str, str]:
    given = [(s, v) for s, v in zip(SCOPES, (campaign, source), strict=True) if v is not None]
    if len(given) != 1:
        raise click.ClickException("give exactly one of --campaign or --source")
    return given[0]


def _month(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value.strip(), "%Y-%m").date()
    except ValueError:
        raise click.ClickException(
            f"--month {value!r}: write it as YYYY-MM, e.g. 2026-03"
        ) from None


@click.group()
def budgets() -> None:
    """Set, list and delete a site's monthly budgets for campaigns and sources."""


@budgets.command("set")
@SITE_OPTION
@CAMPAIGN_OPTION
@SOURCE_OPTION
@click.option("--amount", required=True, help="The monthly amount, e.g. 1500 or 1500.50.")
@click.option("--currency", default="", metavar="CODE", help="ISO 4217 code (default: the site's).")
@pass_context
def budgets_set(
    ctx: CliContext,
    domain: str,
    campaign: str | None,
    source: str | None,
    amount: str,
    currency: str,
) -> None:
    """Set the monthly budget of a --campaign or a --source (changes it when it has one)."""
    scope, name = _scope_name(campaign, source)
    with site_session(ctx, domain, BudgetError) as (session, site):
        saved = set_budget(session, site, scope=scope, name=name, amount=amount, currency=currency)
        budget = saved.budget
        text = (
            f"{'Set' if saved.created else 'Changed'} the budget of {scope} {budget.label!r}: "
            f"{format_minor(budget.amount_minor, budget.currency)} {budget.currency} a month."
        )
        audit.record(session, None, site, "budget.set", text)
    click.echo(text)


def _money(minor: int | None, currency: str) -> str:
    return UNKNOWN if minor is None else f"{format_minor(minor, currency)} {currency}"


def _row(result: Pacing) -> tuple[str, ...]:
    return (
        result.scope,
        result.label,
        _money(result.amount_minor, result.currency),
        _money(result.spent_minor, result.currency),
        _money(result.expected_minor, result.currency),
        _money(result.projected_minor, result.currency),
        UNKNOWN if result.pace is None else f"{result.pace * 100:.0f}%",
        STATUS_TEXT[result.status],
    )


@budgets.command("list")
@SITE_OPTION
@click.option(
    "--month", metavar="YYYY-MM", help="Another month (default: this one, in the site's time zone)."
)
@pass_context
def budgets_list(ctx: CliContext, domain: str, month: str | None) -> None:
    """List the site's budgets with the month's pacing: spent, expected at an even pace,
    projected month-end spend, pace and status."""
    first = _month(month)
    with ctx.db.session() as session:
        site = find_site(session, domain)
    if site is None:
        raise click.ClickException(f"no site {domain!r}")
    results = month_pacing(ctx.db, site, month=first)
    if not results:
        click.echo(f"No budgets yet. Set one with: tracker budgets set --site {domain} ...")
        return
    click.echo(f"{results[0].caption} ({site.timezone})")
    headers = ("SCOPE", "NAME", "BUDGET", "SPENT", "EXPECTED", "PROJECTED", "PACE", "STATUS")
    table([_row(r) for r in results], headers)
    for result in results:
        if result.other_spend:
            other = ", ".join(_money(v, c) for c, v in result.other_spend.items())
            click.echo(f"{result.label}: also {other} (other currencies, not converted)")


@budgets.command("delete")
@SITE_OPTION
@CAMPAIGN_OPTION
@SOURCE_OPTION
@pass_context
def budgets_delete(ctx: CliContext, domain: str, campaign: str | None, source: str | None) -> None:
    """Delete the budget of a --campaign or a --source (cost rows are kept)."""
    scope, name = _scope_name(campaign, source)
    with site_session(ctx, domain, BudgetError) as (session, site):
        budget = find_budget(session, site, scope, name)
        if budget is None:
            raise click.ClickException(f"no budget for {scope} {name!r} on {site.domain}")
        label = budget.label
        delete_budget(session, budget)
        audit.record(session, None, site, "budget.delete", f"Budget for {scope} {label!r}")
    click.echo(f"Deleted the budget of {scope} {label!r}.")


COMMANDS: list[click.Command] = [budgets]
