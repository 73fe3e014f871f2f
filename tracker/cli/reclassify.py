"""`tracker reclassify`: recompute stored visits' source and channel with the current rules."""

from __future__ import annotations

from datetime import datetime

import click

from tracker.cli.context import CliContext, pass_context
from tracker.db.models import Site
from tracker.reclassify import count_visits, first_changed_day, reclassify
from tracker.sites import find_site, list_sites
from tracker.stats import QueryError, first_day, parse_query, site_ref


@click.command("reclassify")
@click.option("--site", "domain", help="The site's domain (default: every site).")
@click.option("--from", "start", metavar="YYYY-MM-DD", help="First day (default: the first visit).")
@click.option("--to", "end", metavar="YYYY-MM-DD", help="Last day (default: today).")
@pass_context
def reclassify_command(
    ctx: CliContext, domain: str | None, start: str | None, end: str | None
) -> None:
    """Recompute source and channel of stored visits from their referrer, UTM fields and
    click id with the current rules and source lists, and rebuild the rollups of the days
    that changed. Safe to run again: unchanged visits are left as they are."""
    with ctx.db.session() as session:
        if domain:
            found = find_site(session, domain)
            if found is None:
                raise click.ClickException(f"no site {domain!r}")
            sites = [found]
        else:
            sites = list_sites(session)
    for site in sites:
        _reclassify_site(ctx, site, start, end)


def _reclassify_site(ctx: CliContext, site: Site, start: str | None, end: str | None) -> None:
    first = first_day(ctx.db, site)
    if first is None:
        click.echo(f"{site.domain}: no visits.")
        return
    today = datetime.now(site_ref(site).tz).date()
    args = {"period": "custom", "from": start or str(first), "to": end or str(max(today, first))}
    try:
        query = parse_query(site, args, first_day=first)
    except QueryError as exc:
        raise click.ClickException(f"--from/--to: {exc}") from None
    period, ref = query.period, site_ref(site)
    total = count_visits(ctx.db, ref, period.start_ms, period.end_ms)
    with click.progressbar(length=total, label=f"Reclassifying {site.domain}") as bar:
        result = reclassify(ctx.db, ref, period.start_ms, period.end_ms, bar.update)
    changed_from = first_changed_day(result, ref)
    rebuilt = f"; rollups rebuilt from {changed_from}" if changed_from else ""
    click.echo(f"{site.domain}: {result.changed} of {result.visits} visits changed{rebuilt}.")


COMMANDS: list[click.Command] = [reclassify_command]
