"""`tracker demo`: fill a site with realistic traffic so the stats page has something to show."""

from __future__ import annotations

import click

from tracker.cli.context import CliContext, pass_context
from tracker.config import ensure_secret_key
from tracker.db import analyze
from tracker.db.migrate import upgrade
from tracker.demo import BATCH, add_demo_goals, add_demo_spend, demo_days, demo_ingest
from tracker.sites import SiteError, add_site, find_site, list_sites
from tracker.storage.store import STORED_TABLES


@click.command()
@click.option("--site", "domain", default="demo.example", show_default=True, help="Site to fill.")
@click.option("--days", type=click.IntRange(1, 3660), default=90, show_default=True)
@click.option("--visits-per-day", type=click.IntRange(1, 100_000), default=2000, show_default=True)
@click.option(
    "--timezone", default="UTC", show_default=True, help="Time zone of the site if created."
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same traffic.")
@click.option(
    "--if-no-sites", is_flag=True, help="Do nothing when any site exists (used by `make run`)."
)
@pass_context
def demo(
    ctx: CliContext,
    domain: str,
    days: int,
    visits_per_day: int,
    timezone: str,
    seed: int,
    if_no_sites: bool,
) -> None:
    """Fill a site with DAYS of made-up but realistic traffic, up to now.

    Events go through the collector's pipeline (trusted batch path, with timestamps):
    sources and campaigns, devices, countries, bounces, engaged time, outbound clicks,
    downloads and custom events, sign-ups and purchases with revenue. The site is created
    when it does not exist; demo goals and a funnel are added unless it has goals of those
    names already. Its paid campaigns get 60 days of ad spend (one ad matches no visit),
    monthly budgets (retargeting over-paces) and a few chart annotations.
    """
    from tracker.app import create_app

    settings = ensure_secret_key(ctx.settings.with_overrides(scheduler_enabled=False))
    upgrade(settings.resolved_database_url())
    app = create_app(settings)
    db = app.extensions["tracker.db"]
    with db.session() as session:
        if if_no_sites and list_sites(session):
            return
        site = find_site(session, domain)
        if site is None:
            try:
                site = add_site(session, domain, timezone=timezone)
            except SiteError as exc:
                raise click.ClickException(str(exc)) from None
        added = add_demo_goals(session, site)
        cost_rows = add_demo_spend(session, site, visits_per_day)
        domain, zone = site.domain, site.timezone
    ingest = demo_ingest(app)
    accepted = 0
    days_iter = demo_days(
        domain, days=days, visits_per_day=visits_per_day, timezone=zone, seed=seed
    )
    label = f"Filling {domain} with {days} days of traffic"
    with click.progressbar(days_iter, length=days, label=label, show_pos=True) as bar:
        for events in bar:
            for start in range(0, len(events), BATCH):
                accepted += ingest(events[start : start + BATCH])
    analyze(db, STORED_TABLES)  # the planner's statistics count the demo's rows
    click.echo(f"The pipeline accepted {accepted:,} events for {domain}.")
    if added:
        click.echo(f"Goals and funnel added: {', '.join(added)}.")
    click.echo(
        f"Ad spend: {cost_rows:,} daily cost rows, monthly budgets and chart notes "
        "(see the Campaigns tab)."
    )
    # Said so that it reads right both alone and as a step of `make run`, which serves next.
    click.echo(
        f"Once the server runs (`tracker serve`), log in (the first visit creates the admin "
        f"account) and open /sites/{domain}."
    )


COMMANDS: list[click.Command] = [demo]
