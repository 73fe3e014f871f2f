"""The `tracker` command. Each sub-command group lives in its own module."""

from __future__ import annotations

import sys

import click
from sqlalchemy.exc import OperationalError

from tracker.cli import admin, server
from tracker.cli.context import pass_context  # noqa: F401  (re-exported for sub-modules)
from tracker.config import ConfigError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="TRACKER_CONFIG",
    help="TOML settings file (default: $TRACKER_CONFIG; see config.example.toml).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """tracker: self-hosted, privacy-first web analytics.

    Settings come from --config and TRACKER_* environment variables.
    """
    from tracker.cli.context import CliContext

    ctx.obj = CliContext(config_path)


for command in (*server.COMMANDS, *admin.COMMANDS):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except OperationalError as exc:
        click.echo(f"Error: database unavailable: {exc.orig}", err=True)
        sys.exit(1)
