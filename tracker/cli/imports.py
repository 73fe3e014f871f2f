"""`tracker import events FILE.ndjson`: history and server-side events from a file;
`tracker import logs FILE...`: web-server access logs (tracker.accesslog).

Each line is one event of the ingestion protocol with the trusted fields `timestamp`,
`ip` and `user_agent` (all three required here: there is no request to take them from).
Lines go through the same pipeline as POST /api/events, 1,000 at a time, so they make the
same visits live traffic would; keep the file in time order, as exports are. A line that
fails validation is rejected whole and reported with its number; the others are imported.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import tzinfo
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from tracker.accesslog.files import LogFileError, open_log
from tracker.accesslog.formats import NAMES, LogFormatError, named_format
from tracker.accesslog.load import FileReport, LogImport, LogImportError
from tracker.cli.context import CliContext, pass_context
from tracker.clock import now_ms
from tracker.db import analyze
from tracker.ingest.parse import EventError, IncomingEvent, decode_json, parse_event
from tracker.ingest.pipeline import Client, Pipeline, Rejected
from tracker.ingest.spam import spam_hosts_path
from tracker.storage.spool import spool_directory
from tracker.storage.store import STORED_TABLES

CHUNK = 1000
REQUIRED = ("timestamp", "ip", "user_agent")
SHOWN_REJECTIONS = 50


class ImportSummary:
    def __init__(self) -> None:
        self.accepted = 0
        self.dropped: Counter[str] = Counter()
        self.rejected: list[tuple[int, str]] = []

    def report(self, name: str) -> None:
        dropped = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.dropped.items()))
        click.echo(
            f"Imported {self.accepted:,} events from {name}"
            + (f" (dropped: {dropped})." if dropped else ".")
        )
        if self.rejected:
            click.echo(f"Rejected {len(self.rejected):,} lines:", err=True)
            for number, message in self.rejected[:SHOWN_REJECTIONS]:
                click.echo(f"  line {number}: {message}", err=True)
            if len(self.rejected) > SHOWN_REJECTIONS:
                click.echo(f"  ... and {len(self.rejected) - SHOWN_REJECTIONS:,} more", err=True)


def _parse_line(line: bytes, pipeline: Pipeline, received: int) -> IncomingEvent:
    try:  # as the batch endpoint reads a line: huge numbers or nesting are no crash
        data = decode_json(line)
    except EventError:
        raise EventError("not valid JSON") from None
    if isinstance(data, dict):
        missing = [field for field in REQUIRED if not data.get(field)]
        if missing:
            raise EventError(f"{missing[0]}: is required for imports")
    event = parse_event(data, trusted=True, now_ms=received)
    pipeline.gate(event, None)
    return event


def import_file(pipeline: Pipeline, stream: IO[bytes], size: int) -> ImportSummary:
    summary = ImportSummary()
    chunk: list[IncomingEvent] = []
    client = Client(ip="", user_agent="")  # every line brings its own

    def flush() -> None:
        if chunk:
            outcome = pipeline.accept(chunk, client, wait=True)
            summary.accepted += outcome.accepted
            summary.dropped.update(outcome.dropped)
            chunk.clear()

    with click.progressbar(length=size, label="Importing", file=sys.stderr) as bar:
        for number, line in enumerate(stream, start=1):
            bar.update(len(line))
            if not line.strip():
                continue
            try:
                chunk.append(_parse_line(line, pipeline, now_ms()))
            except (EventError, Rejected) as exc:
                summary.rejected.append((number, str(exc)))
                continue
            if len(chunk) >= CHUNK:
                flush()
        flush()
    return summary


@click.group("import")
def import_group() -> None:
    """Import data from files."""


@import_group.command("events")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def import_events(ctx: CliContext, file: Path) -> None:
    """Import events from FILE, one JSON event per line (NDJSON), in time order.

    Each line needs site, type, url, timestamp (ISO 8601 with offset), ip and user_agent.
    Exits with status 1 when a line was rejected (the other lines are imported).
    """
    settings = ctx.settings
    pipeline = Pipeline(
        ctx.db,
        visit_timeout_minutes=settings.visit_timeout_minutes,
        geoip_path=settings.geoip_path,
        store_timeout_seconds=max(settings.store_timeout_seconds, 60),
        spool_dir=spool_directory(settings.data_dir),
        spam_hosts_file=spam_hosts_path(settings.data_dir),
    )
    with file.open("rb") as stream:
        summary = import_file(pipeline, stream, file.stat().st_size)
    summary.report(file.name)
    if not pipeline.flush():
        click.echo(
            "The database is not taking events; the rest wait in the spool, and the server's "
            "replay_spool job stores them when it does.",
            err=True,
        )
    elif summary.accepted:
        analyze(ctx.db, STORED_TABLES)  # the planner's statistics count the imported rows
    if summary.rejected:
        raise SystemExit(1)


def _zone(_ctx: click.Context, _param: click.Parameter, name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{name!r} is not a time zone name such as Europe/Paris") from None


class LineRate:
    """The progress bar's item text: lines read and lines per second."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.lines = 0

    def __call__(self, _item: object) -> str:
        rate = self.lines / max(time.monotonic() - self.began, 1e-3)
        return f"{self.lines:,} lines, {rate:,.0f} lines/s"


def _import_one(job: LogImport, name: str, dry_run: bool) -> FileReport:
    log = open_log(name)
    rate = LineRate()
    bar = click.progressbar(
        length=log.size or 0,
        label=f"Importing {log.name}",
        file=sys.stderr,
        show_eta=bool(log.size),
        show_percent=bool(log.size),
        item_show_func=rate,
    )
    read = 0

    def progress(position: int, lines: int) -> None:
        nonlocal read
        rate.lines = lines
        bar.update(max(position - read, 0), current_item=lines)
        read = max(read, position)

    try:
        with bar:
            report = job.run(log, dry_run=dry_run, progress=progress)
    finally:
        log.close()
    click.echo(f"  {rate(None)}", err=True)  # a pipe's or a log file's bar shows no rate
    return report


@import_group.command("logs")
@click.argument("files", nargs=-1, required=True)
@click.option("--site", "domain", required=True, help="The site's domain, as registered.")
@click.option(
    "--format",
    "format_name",
    type=click.Choice(NAMES),
    default="auto",
    show_default=True,
    help="auto: recognised from each file's first lines.",
)
@click.option("--log-format", help="nginx's log_format text (implies --format nginx).")
@click.option(
    "--timezone",
    "zone",
    default="UTC",
    show_default=True,
    callback=_zone,
    help="Time zone of times logged without an offset (Caddy's wall clock).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be stored; store nothing.")
@pass_context
def import_logs(
    ctx: CliContext,
    files: tuple[str, ...],
    domain: str,
    format_name: str,
    log_format: str | None,
    zone: tzinfo,
    dry_run: bool,
) -> None:
    """Import web-server access logs: FILE... (.gz too; - for standard input).

    Page requests only (successful GET/HEAD of HTML pages, no bots, assets or health
    checks) become pageviews and visits, as if the tracker had seen them. Lines stored by an
    earlier import of a file (the same file, grown, rotated or compressed) are skipped.
    Import the files covering a day in one run: visitor ids use salts of the run's own.
    Exits with status 1 when a file could not be imported (nothing of it is stored).
    """
    if log_format and format_name == "auto":
        format_name = "nginx"  # a log_format says which format it is
    try:
        fmt = None if format_name == "auto" else named_format(format_name, zone, log_format)
        job = LogImport.with_settings(ctx.db, ctx.settings, domain, zone=zone, log_format=fmt)
    except (LogFormatError, LogImportError) as exc:
        raise click.ClickException(str(exc)) from None
    failed = stored = 0
    for name in files:
        try:
            report = _import_one(job, name, dry_run)
        except (LogFileError, LogImportError) as exc:
            click.echo(f"{exc}", err=True)
            failed += 1
            continue
        click.echo("\n".join(report.summary()))
        stored += report.pages
    if dry_run:
        click.echo("Dry run: nothing was stored.")
    elif stored:
        analyze(ctx.db, STORED_TABLES)  # the planner's statistics count the imported rows
    if failed:
        raise SystemExit(1)


COMMANDS: list[click.Command] = [import_group]
