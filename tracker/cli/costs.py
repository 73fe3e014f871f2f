"""`tracker costs`: import ad spend from an ad platform's CSV export, list it, delete it.

An import stores every row or none: any row with a problem is listed (row number and field)
and the exit status is 1. `--dry-run` checks the file and says what it would store.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from tracker import audit
from tracker.cli.context import SITE_OPTION, CliContext, pass_context, site_session, table
from tracker.costs import (
    CostBatch,
    CostDefaults,
    CostError,
    CostFileError,
    Stored,
    check_table,
    cost_defaults,
    cost_summary,
    count_replaced,
    delete_costs,
    read_cost_file,
    store_costs,
)
from tracker.money import format_minor

SHOWN_PROBLEMS = 100
DAY = click.DateTime(["%Y-%m-%d"])


def money_totals(totals: dict[str, int]) -> str:
    """{"EUR": 123456, "USD": 300} -> "1234.56 EUR, 3.00 USD": never added or converted."""
    return ", ".join(f"{format_minor(minor, code)} {code}" for code, minor in totals.items())


def _check(file: Path, defaults: CostDefaults) -> CostBatch:
    try:
        rows = read_cost_file(file.read_bytes())
    except CostFileError as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None
    with click.progressbar(length=len(rows.records), label="Checking", file=sys.stderr) as bar:
        return check_table(rows, defaults, on_row=lambda: bar.update(1))


def _report_problems(batch: CostBatch, name: str) -> None:
    click.echo(
        f"Nothing imported: {len(batch.problems):,} problem(s) in {name}; fix them and import "
        "the file again.",
        err=True,
    )
    for problem in batch.problems[:SHOWN_PROBLEMS]:
        click.echo(f"  {problem}", err=True)
    if len(batch.problems) > SHOWN_PROBLEMS:
        click.echo(f"  ... and {len(batch.problems) - SHOWN_PROBLEMS:,} more", err=True)


def _report(batch: CostBatch, name: str, stored: Stored, *, dry_run: bool) -> None:
    skipped = len(batch.skipped)
    skipped_text = f" (skipped {skipped:,} title, total and note lines)" if skipped else ""
    click.echo(f"Checked {len(batch.rows):,} cost rows of {name}{skipped_text}.")
    for note in batch.notes:
        click.echo(f"Note: {note}")
    counts = f"{stored.imported:,} rows, {stored.replaced:,} of them replacing stored rows"
    click.echo(
        f"Dry run, nothing stored: would import {counts}." if dry_run else f"Imported {counts}."
    )
    period = batch.period
    if period is not None:
        click.echo(f"Period: {period[0].isoformat()} to {period[1].isoformat()}")
    click.echo(f"Total: {money_totals(batch.totals())}")
    if stored.site_currency:
        click.echo(f"The site's currency is now {stored.site_currency}.")


@click.group()
def costs() -> None:
    """Import, list and delete a site's ad spend (cost per day and campaign)."""


@costs.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@SITE_OPTION
@click.option("--source", default="", help="utm_source of rows without one, e.g. google.")
@click.option("--medium", default="", help="utm_medium of rows without one, e.g. cpc.")
@click.option("--currency", default="", metavar="CODE", help="ISO 4217 code of rows without one.")
@click.option("--dry-run", is_flag=True, help="Check the file and say what would be stored.")
@pass_context
def costs_import(
    ctx: CliContext, file: Path, domain: str, source: str, medium: str, currency: str, dry_run: bool
) -> None:
    """Import ad spend from FILE: a Google Ads, Microsoft Advertising or Meta Ads Manager
    CSV export, or a CSV of date, utm_source, utm_medium, utm_campaign, cost, currency
    (optionally utm_term, utm_content, impressions, clicks).

    A row of a day and tags already stored replaces it. Any row with a problem: nothing
    is stored, the problems are listed, and the exit status is 1.
    """
    try:
        defaults = cost_defaults(source, medium, currency)
    except CostError as exc:
        raise click.ClickException(str(exc)) from None
    with site_session(ctx, domain, CostError) as (session, site):
        batch = _check(file, defaults)
        if not batch.rows and not batch.problems:
            raise click.ClickException(f"{file.name} holds no cost rows")
        if batch.problems:
            _report_problems(batch, file.name)
            raise SystemExit(1)
        if dry_run:
            stored = Stored(len(batch.rows), count_replaced(session, site, batch.rows))
        else:
            with click.progressbar(length=len(batch.rows), label="Storing", file=sys.stderr) as bar:
                stored = store_costs(session, site, batch.rows, on_stored=bar.update)
            detail = f"Imported {stored.imported:,} cost rows of {file.name}"
            audit.record(session, None, site, "cost.import", detail)
    _report(batch, file.name, stored, dry_run=dry_run)


@costs.command("list")
@SITE_OPTION
@pass_context
def costs_list(ctx: CliContext, domain: str) -> None:
    """List the stored ad spend per month and campaign."""
    with site_session(ctx, domain, CostError) as (session, site):
        summary = cost_summary(session, site)
    if not summary:
        click.echo(f"No ad spend stored. Import it with: tracker costs import FILE --site {domain}")
        return
    rows = [
        (
            m.month.strftime("%Y-%m"),
            m.label,
            f"{m.rows:,}",
            f"{m.first_day.isoformat()} to {m.last_day.isoformat()}",
            money_totals(m.cost),
        )
        for m in summary
    ]
    table(rows, ("MONTH", "CAMPAIGN", "ROWS", "DAYS", "COST"))


@costs.command("delete")
@SITE_OPTION
@click.option("--from", "start", required=True, type=DAY, help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, type=DAY, help="Last day, YYYY-MM-DD.")
@click.option("--campaign", default=None, help="Only this campaign (any case and spacing).")
@pass_context
def costs_delete(
    ctx: CliContext, domain: str, start: datetime, end: datetime, campaign: str | None
) -> None:
    """Delete the stored ad spend of the days --from to --to (both included)."""
    first, last = start.date(), end.date()
    with site_session(ctx, domain, CostError) as (session, site):
        deleted = delete_costs(session, site, first, last, campaign)
        which = f" of campaign {campaign!r}" if campaign is not None else ""
        message = f"Deleted {deleted:,} cost rows{which} from {first} to {last}."
        audit.record(session, None, site, "cost.delete", message)
    click.echo(message)


COMMANDS: list[click.Command] = [costs]
