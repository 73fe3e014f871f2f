"""`tracker spam update`: load the maintained referrer spam list into the data directory."""

from __future__ import annotations

import click

from tracker.cli.context import CliContext, pass_context
from tracker.ingest.spam import CHECK_SECONDS, SpamListError, update


@click.group()
def spam() -> None:
    """Referrer spam hosts: the bundled list, and the maintained one in the data directory."""


@spam.command("update")
@click.option(
    "--from",
    "source",
    metavar="URL_OR_FILE",
    help="Where to read the list, one host per line (default: setting spam_list_url).",
)
@pass_context
def spam_update(ctx: CliContext, source: str | None) -> None:
    """Read a referrer spam list (by default Matomo's, from setting spam_list_url) into
    <data_dir>/spam_hosts.txt, replacing the previous one; it counts with the bundled list.
    A list that cannot be read, or is not a list of host names, changes nothing."""
    source = source or ctx.settings.spam_list_url
    if not source:
        raise click.ClickException("no list to read: setting spam_list_url is empty; use --from")
    try:
        result = update(source, ctx.settings.data_dir)
    except SpamListError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())
    click.echo(f"A running server counts it within {CHECK_SECONDS:.0f} seconds.")


COMMANDS: list[click.Command] = [spam]
