"""The `tracker` command. Each sub-command group lives in its own module."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.exc import OperationalError

from tracker.cli import (
    admin,
    columnar,
    demo,
    email,
    export,
    goals,
    imports,
    jobs,
    members,
    reclassify,
    server,
    spam,
)
from tracker.cli.annotations import COMMANDS as ANNOTATION_COMMANDS
from tracker.cli.budgets import COMMANDS as BUDGET_COMMANDS
from tracker.cli.context import CliContext
from tracker.cli.costs import COMMANDS as COST_COMMANDS
from tracker.config import ConfigError


class TrackerGroup(click.Group):
    """Turns expected failures (bad settings, no database) into one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            first_line = str(exc.orig).strip().splitlines()[0]
            raise click.ClickException(f"database unavailable: {first_line}") from None


@click.group(cls=TrackerGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = CliContext(config_path)


for command in (
    *server.COMMANDS,
    *admin.COMMANDS,
    *members.COMMANDS,
    *goals.COMMANDS,
    *BUDGET_COMMANDS,
    *ANNOTATION_COMMANDS,
    *COST_COMMANDS,
    *jobs.COMMANDS,
    *demo.COMMANDS,
    *email.COMMANDS,
    *imports.COMMANDS,
    *export.COMMANDS,
    *reclassify.COMMANDS,
    *spam.COMMANDS,
    *columnar.COMMANDS,
):
    cli.add_command(command)


def main() -> None:
    cli.main(prog_name="tracker")
