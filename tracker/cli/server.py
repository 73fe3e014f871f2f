"""`tracker migrate` and `tracker serve`."""

from __future__ import annotations

import click

from tracker.cli.context import CliContext, pass_context
from tracker.columnar.invalidate import invalidate_all
from tracker.columnar.layout import store_root
from tracker.config import Settings, ensure_secret_key
from tracker.db.migrate import upgrade


def migrate_database(settings: Settings) -> None:
    """Upgrade the schema; after any migration, the columnar store is written again (a
    migration may have rewritten stored visits, or changed the columns parts hold)."""
    if upgrade(settings.resolved_database_url()):
        invalidate_all(store_root(settings.data_dir))


@click.command()
@pass_context
def migrate(ctx: CliContext) -> None:
    """Create or upgrade the database schema to the latest version."""
    migrate_database(ctx.settings)
    click.echo(f"Database is up to date ({_describe(ctx.settings.resolved_database_url())}).")


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: setting `host`).")
@click.option("--port", type=int, default=None, help="Port (default: setting `port`, 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: 2).")
@pass_context
def serve(ctx: CliContext, host: str | None, port: int | None, workers: int | None) -> None:
    """Run migrations, then serve the app with gunicorn."""
    from tracker.server import run_gunicorn

    settings = ctx.settings.with_overrides(
        **{k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v}
    )
    settings = ensure_secret_key(settings)  # once, so every worker signs with the same key
    migrate_database(settings)
    click.echo(f"tracker is serving on http://{settings.host}:{settings.port}/")
    run_gunicorn(settings)


def _describe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


COMMANDS: list[click.Command] = [migrate, serve]
