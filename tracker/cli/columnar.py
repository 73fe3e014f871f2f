"""`tracker columnar`: the columnar store of closed days (status, rebuild)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from tracker.cli.context import CliContext, pass_context, table
from tracker.clock import now_ms as clock_now_ms
from tracker.columnar.build import (
    closed_until_ms,
    day_date,
    first_visit_day,
    rebuild,
    store_status,
)
from tracker.columnar.layout import DAY_MS, Manifest
from tracker.db.models import Site
from tracker.sites import find_site, list_sites


@click.group()
def columnar() -> None:
    """The columnar store: each site's closed days as Parquet files that reports read
    (kept up to date by the job columnar_store)."""


def _sites(ctx: CliContext, domain: str | None) -> list[Site]:
    with ctx.db.session() as session:
        if domain is None:
            return list_sites(session)
        site = find_site(session, domain)
        if site is None:
            raise click.ClickException(f"no site {domain!r}")
        return [site]


def _root(ctx: CliContext) -> Path:
    root = ctx.db.columnar_root
    if root is None:  # pragma: no cover - the CLI's database always has one
        raise click.ClickException("this database has no columnar store")
    return root


def _moment(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC") if ms else "-"


def _size(size_bytes: int) -> str:
    if size_bytes < 1_000_000:
        return f"{size_bytes / 1000:,.1f} kB"
    return f"{size_bytes / 1_000_000:,.1f} MB"


@columnar.command("status")
@click.option("--site", "domain", help="The site's domain (default: every site).")
@pass_context
def status_command(ctx: CliContext, domain: str | None) -> None:
    """Per site: parts (month parts among them), days covered, complete until (visits that
    started before it are read from the store), provisional until (the days after it that
    provisional parts hold, as they were written: visits changed since are read from the
    database), rows, size on disk."""
    root = _root(ctx)
    rows = []
    for site in _sites(ctx, domain):
        status = store_status(root, site.id)
        manifest = status.manifest
        parts = manifest.parts if manifest else ()
        days = f"{day_date(parts[0].first_day)}..{day_date(parts[-1].last_day)}" if parts else "-"
        rows.append(
            (
                site.domain,
                f"{len(parts)} ({status.month_parts} months)",
                days,
                _moment(manifest.complete_until_ms if manifest else 0),
                _moment(_provisional_until(manifest)),
                f"{status.visits:,}",
                f"{status.events:,}",
                _size(status.size_bytes),
            )
        )
    headers = ("site", "parts", "days", "complete until", "provisional until")
    table(rows, (*headers, "visits", "events", "size"))


def _provisional_until(manifest: Manifest | None) -> int:
    """The end of the manifest's provisional days, 0 without any."""
    return manifest.provisional_until_ms if manifest and manifest.has_provisional else 0


@columnar.command("rebuild")
@click.option("--site", "domain", help="The site's domain (default: every site).")
@pass_context
def rebuild_command(ctx: CliContext, domain: str | None) -> None:
    """Throw away a site's parts and write them all again from the database. Reports go
    on reading the old parts until the new ones replace them."""
    root = _root(ctx)
    for site in _sites(ctx, domain):
        now_ms = clock_now_ms()
        first = first_visit_day(ctx.db, site.id)
        closed = closed_until_ms(now_ms) // DAY_MS
        position = closed if first is None else min(first, closed)
        with click.progressbar(length=closed - position, label=f"Rebuilding {site.domain}") as bar:

            def reached(day: int) -> None:
                nonlocal position
                bar.update(max(day - position, 0))
                position = max(day, position)

            manifest = rebuild(ctx.db, root, site.id, now_ms=now_ms, reached=reached)
        if manifest is None:
            raise click.ClickException(
                f"{site.domain}: its data changed while it was rebuilt (reclassified or "
                "deleted); run the command again"
            )
        click.echo(
            f"{site.domain}: {len(manifest.parts)} parts, complete until "
            f"{_moment(manifest.complete_until_ms)}."
        )


COMMANDS: list[click.Command] = [columnar]
