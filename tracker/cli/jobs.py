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

    rows = [
        (
            job.name,
            " ".join([job.trigger, *(f"{k}={v}" for k, v in job.schedule.items())]),
            (job.func.__doc__ or "").strip().splitlines()[0],
        )
        for job in JOBS
    ]
    widths = [max(len(row[i]) for row in rows) for i in (0, 1)]
    for name, schedule, summary in rows:
        click.echo(f"{name:<{widths[0]}}  {schedule:<{widths[1]}}  {summary}".rstrip())


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
