"""Shared state for CLI commands: settings and the database, made on first use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from tracker.columnar import engine as columnar_engine
from tracker.config import Settings, load_settings
from tracker.db import Database
from tracker.db.models import Site
from tracker.sites import find_site


class CliContext:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    @cached_property
    def db(self) -> Database:
        return columnar_engine.attach(
            Database(self.settings.resolved_database_url()), self.settings
        )


pass_context = click.make_pass_decorator(CliContext)


def table(rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> None:
    """`rows` under `headers` in left-aligned columns, as every list command prints."""
    widths = [max(len(str(v)) for v in col) for col in zip(headers, *rows, strict=False)]
    for row in (headers, *rows):
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())


SITE_OPTION = click.option(
    "--site", "domain", required=True, metavar="DOMAIN", help="The site's domain."
)

E = TypeVar("E", bound=Exception)


@contextmanager
def site_session(
    ctx: CliContext,
    domain: str,
    errors: type[E],
    describe: Callable[[E], str] = str,
) -> Iterator[tuple[Session, Site]]:
    """A transaction on one site; `errors` (bad input) become a one-line error, nothing
    saved. `describe` words the error, e.g. to name the option at fault."""
    try:
        with ctx.db.session() as session:
            site = find_site(session, domain)
            if site is None:
                raise click.ClickException(f"no site {domain!r}")
            yield session, site
    except errors as exc:
        raise click.ClickException(describe(exc)) from None
