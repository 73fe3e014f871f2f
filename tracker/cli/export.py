"""`tracker export events|visits`: the raw CSV export to a file or stdout, with progress."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO

import click

from tracker.cli.context import CliContext, pass_context
from tracker.export import TABLES, Table, export_csv, export_filename, row_count
from tracker.sites import find_site
from tracker.stats import Query, QueryError, dimension, first_day, parse_query
from tracker.stats.rows import Batch


def _write(ctx: CliContext, query: Query, table: Table, out: IO[str]) -> int:
    """Write the CSV to `out` with a progress bar on the terminal; returns the row count."""
    rows = 0
    # Progress is measured in time covered, so no row count has to be queried first.
    with click.progressbar(
        length=query.period.end_ms - query.period.start_ms,
        label=f"Exporting {table.name}",
        file=sys.stderr if out is sys.stdout else None,
        show_eta=True,
    ) as bar:
        done = query.period.start_ms

        def watch(batches: Iterator[Batch]) -> Iterator[Batch]:
            nonlocal rows, done
            for batch in batches:
                rows += row_count(batch)
                reached = min(max(table.last_time_ms(batch), done), query.period.end_ms)
                bar.update(reached - done)
                done = reached
                yield batch

        for chunk in export_csv(ctx.db, query, table, watch):
            out.write(chunk)
        bar.update(query.period.end_ms - done)
    return rows


def _command(table_name: str) -> click.Command:
    table = TABLES[table_name]

    @click.command(table_name)
    @click.option("--site", "domain", required=True, help="The site's domain.")
    @click.option("--from", "start", metavar="YYYY-MM-DD", required=True, help="First day.")
    @click.option("--to", "end", metavar="YYYY-MM-DD", required=True, help="Last day.")
    @click.option(
        "--filter",
        "filters",
        multiple=True,
        metavar="NAME=VALUE",
        help="A stats filter as in the page's URL, e.g. source=Google or page=~/blog (repeatable).",
    )
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="File to write (default: site-table-from-to-to.csv; - for stdout).",
    )
    @pass_context
    def command(
        ctx: CliContext,
        domain: str,
        start: str,
        end: str,
        filters: tuple[str, ...],
        output: str | None,
    ) -> None:
        with ctx.db.session() as session:
            site = find_site(session, domain)
        if site is None:
            raise click.ClickException(f"no site {domain!r}")
        args = {"period": "custom", "from": start, "to": end}
        for item in filters:
            name, sep, value = item.partition("=")
            try:
                dimension(name.strip())
            except KeyError:
                sep = ""
            if not sep:
                raise click.ClickException(
                    f"--filter {item!r}: write NAME=VALUE, NAME a stats filter (source, page...)"
                )
            args[name.strip()] = value
        try:
            query = parse_query(site, args, first_day=first_day(ctx.db, site))
        except QueryError as exc:
            raise click.ClickException(str(exc)) from None
        path = output or export_filename(query, table)
        if path == "-":
            rows = _write(ctx, query, table, sys.stdout)
        else:
            with open(path, "w", encoding="utf-8", newline="") as fh:
                rows = _write(ctx, query, table, fh)
        click.echo(f"Wrote {rows} {table.name} rows to {path}.", err=path == "-")

    command.help = (
        f"Write SITE's raw {table_name} from FROM to TO (days in the site's time zone) as "
        "CSV, with the columns listed in the README."
    )
    return command


@click.group("export")
def export() -> None:
    """Export raw events or visits as CSV."""


export.add_command(_command("events"))
export.add_command(_command("visits"))

COMMANDS: list[click.Command] = [export]
