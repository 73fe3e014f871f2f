"""`tracker jobs`: list the background jobs and run one now."""

from __future__ import annotations

import click

from tracker.cli.context import CliContext, pass_context


@click.group()
def jobs() -> None:
    """Background jobs (they also run inside `tracker serve`)."""


@jobs.command("list")
def jobs_list() -> None:
    """List jobs and their schedules."""
    from tracker.jobs import JOBS

    for job in JOBS:
        schedule = " ".join(f"{k}={v}" for k, v in job.schedule.items())
        click.echo(f"{job.name}  {job.trigger} {schedule}".rstrip())


@jobs.command("run")
@click.argument("name")
@pass_context
def jobs_run(ctx: CliContext, name: str) -> None:
    """Run the job NAME once, now."""
    from tracker.jobs import find_job

    try:
        job = find_job(name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    job.func(ctx.db, ctx.settings)
    click.echo(f"Ran {job.name}.")


COMMANDS: list[click.Command] = [jobs]
