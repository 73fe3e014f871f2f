"""`tracker annotations`: dated notes on a site's chart, from the shell."""

from __future__ import annotations

from datetime import date

import click

from tracker import audit
from tracker.annotations import (
    AnnotationError,
    add_annotation,
    delete_annotation,
    list_annotations,
    parse_day,
)
from tracker.cli.context import SITE_OPTION, CliContext, pass_context, site_session, table
from tracker.sites import site_today

# How errors name the input at fault (AnnotationError.field).
INPUTS = {"date": "--date", "text": "TEXT"}


def _describe(exc: AnnotationError) -> str:
    return f"{INPUTS.get(exc.field, exc.field)}: {exc}"


def _day_option(name: str, value: str | None) -> date | None:
    try:
        return parse_day(value) if value is not None else None
    except AnnotationError as exc:
        raise click.ClickException(f"{name}: {exc}") from None


@click.group("annotations")
def annotations_group() -> None:
    """Add, list and delete a site's chart annotations ("Black Friday launch")."""


@annotations_group.command("add")
@SITE_OPTION
@click.option("--date", "day", metavar="YYYY-MM-DD", help="The day (default: today, site time).")
@click.argument("text")
@pass_context
def annotations_add(ctx: CliContext, domain: str, day: str | None, text: str) -> None:
    """Add the note TEXT (1 to 200 characters) on a day of the site's chart."""
    with site_session(ctx, domain, AnnotationError, _describe) as (session, site):
        note = add_annotation(session, site, site_today(site) if day is None else day, text)
        message = f"Added note {note.id} on {note.day.isoformat()}: {note.text}"
        audit.record(session, None, site, "annotation.add", f"{note.day}: {note.text}")
    click.echo(message)


@annotations_group.command("list")
@SITE_OPTION
@click.option("--from", "first", metavar="YYYY-MM-DD", help="Only notes on or after this day.")
@click.option("--to", "last", metavar="YYYY-MM-DD", help="Only notes on or before this day.")
@pass_context
def annotations_list(ctx: CliContext, domain: str, first: str | None, last: str | None) -> None:
    """List the site's notes by day, with the ids `delete` takes."""
    start, end = _day_option("--from", first), _day_option("--to", last)
    with site_session(ctx, domain, AnnotationError, _describe) as (_session, site):
        notes = list_annotations(ctx.db, site, start, end)
    if not notes:
        click.echo(f'No notes. Add one with: tracker annotations add --site {domain} "TEXT"')
        return
    table([(str(n.id), n.day.isoformat(), n.text) for n in notes], ("ID", "DATE", "NOTE"))


@annotations_group.command("delete")
@SITE_OPTION
@click.argument("annotation_id", metavar="ID", type=int)
@pass_context
def annotations_delete(ctx: CliContext, domain: str, annotation_id: int) -> None:
    """Delete the note ID (see `tracker annotations list`)."""
    with site_session(ctx, domain, AnnotationError, _describe) as (session, site):
        note = delete_annotation(session, site, annotation_id)
        if note is None:
            raise click.ClickException(f"no note {annotation_id} on {site.domain}")
        audit.record(session, None, site, "annotation.delete", f"{note.day}: {note.text}")
    click.echo(f"Deleted note {note.id} of {note.day.isoformat()}: {note.text}")


COMMANDS: list[click.Command] = [annotations_group]
