"""CSV export: raw events and visits as streamed, spreadsheet-safe CSV.

Rows come from the stats layer (the same Query and filters as the page and the API), each
already rendered by the database as its CSV line (tracker/stats/cells.py: times in UTC and
the site's zone, formula starts neutralised, fields quoted exactly as csv.writer quotes
them). This module names the columns and joins each batch of lines into one chunk, so
memory stays flat at any size and no Python runs per row. CSV is RFC 4180 (CRLF line ends),
UTF-8, one header line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from tracker.db import Database
from tracker.stats import Query, event_rows, visit_rows
from tracker.stats.cells import FORMULA_STARTS, Kind
from tracker.stats.rows import Batch, Columns


@dataclass(frozen=True)
class Column:
    header: str
    field: str  # the stats layer's row field this column reads
    kind: Kind = Kind.TEXT


_N = Kind.NUMBER

_VISIT_ORIGIN = (
    Column("source", "source"),
    Column("channel", "channel", Kind.KEYWORD),
    Column("utm_source", "utm_source"),
    Column("utm_medium", "utm_medium"),
    Column("utm_campaign", "utm_campaign"),
    Column("utm_term", "utm_term"),
    Column("utm_content", "utm_content"),
)

_VISIT_DEVICE = (
    Column("country", "country"),
    Column("region", "region"),
    Column("city", "city"),
    Column("browser", "browser"),
    Column("browser_version", "browser_version"),
    Column("os", "os"),
    Column("os_version", "os_version"),
    Column("device", "device", Kind.KEYWORD),
    Column("screen", "screen", Kind.KEYWORD),
)

EVENT_COLUMNS: tuple[Column, ...] = (
    Column("timestamp_utc", "timestamp_ms", Kind.TIME_UTC),
    Column("timestamp_local", "timestamp_ms", Kind.TIME_LOCAL),
    Column("type", "kind", Kind.KEYWORD),
    Column("name", "name"),
    Column("page", "path"),
    Column("hostname", "hostname"),
    Column("query", "query"),
    Column("title", "title"),
    Column("referrer", "referrer"),
    *_VISIT_ORIGIN,
    Column("target", "target"),
    Column("props", "props", Kind.JSON),
    Column("engaged_ms", "engaged_ms", _N),
    Column("scroll", "scroll", _N),
    Column("time_on_page_ms", "time_on_page_ms", _N),
    Column("visit_id", "visit_id", _N),
    Column("visitor_id", "visitor_id", _N),
    *_VISIT_DEVICE,
    # Last, so the columns before keep their places: "42.50" in revenue_currency's units.
    Column("revenue", "revenue", _N),
    Column("revenue_currency", "revenue_currency", Kind.KEYWORD),
)

VISIT_COLUMNS: tuple[Column, ...] = (
    Column("visit_id", "id", _N),
    Column("started_utc", "started_ms", Kind.TIME_UTC),
    Column("started_local", "started_ms", Kind.TIME_LOCAL),
    Column("last_event_utc", "last_ms", Kind.TIME_UTC),
    Column("visitor_id", "visitor_id", _N),
    Column("hostname", "hostname"),
    Column("entry_page", "entry_page"),
    Column("exit_page", "exit_page"),
    Column("pageviews", "pageviews", _N),
    Column("events", "events", _N),
    Column("interactions", "interactions", _N),
    Column("bounce", "is_bounce", Kind.BOOL),
    Column("duration_ms", "duration_ms", _N),
    Column("referrer", "referrer"),
    *_VISIT_ORIGIN,
    Column("click_id", "click_id"),
    *_VISIT_DEVICE,
    # Last, so the columns before keep their places: the goals the visit converted on.
    Column("goals", "goals"),
)


def neutralize(value: str) -> str:
    """A text cell that a spreadsheet will show as text, never run as a formula."""
    if value and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_chunks(columns: Sequence[Column], batches: Iterable[Batch]) -> Iterator[str]:
    """The header, then one CSV text chunk per batch of pieces (see stats.rows.Batch)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    text = [i for i, c in enumerate(columns) if c.kind is Kind.TEXT]

    def take() -> str:
        chunk = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return chunk

    writer.writerow([c.header for c in columns])
    yield take()
    for batch in batches:
        for piece in batch:
            if isinstance(piece, str):
                buffer.write(piece)
            else:
                cells = list(piece)
                for i in text:
                    cells[i] = neutralize(cells[i])
                writer.writerow(cells)
        yield take()


def row_count(batch: Batch) -> int:
    return sum(piece.count("\n") if isinstance(piece, str) else 1 for piece in batch)


def download_name(domain: str, table: str, first: date, last: date) -> str:
    """`example.com-events-2026-11-01-to-2026-11-30.csv`: names the site, table and range."""
    safe_domain = re.sub(r"[^a-z0-9.-]+", "_", domain.lower())
    return f"{safe_domain}-{table}-{first.isoformat()}-to-{last.isoformat()}.csv"


@dataclass(frozen=True)
class Table:
    """One exportable table: its CSV columns and where its rows come from."""

    name: str
    columns: tuple[Column, ...]
    rows: Callable[[Database, Query, Columns], Iterator[Batch]]
    time_column: str  # rows come in the order of this column (a UTC time)

    def cells(self) -> Columns:
        """The (field, kind) of each column, as the stats layer renders them."""
        return [(c.field, c.kind) for c in self.columns]

    def last_time_ms(self, batch: Batch) -> int:
        """Epoch milliseconds of the time column of a batch's last row."""
        index = [c.header for c in self.columns].index(self.time_column)
        last = batch[-1]
        # A text piece holds lines without quotes, so commas are the fields' own.
        cells = last if isinstance(last, tuple) else last[:-2].rsplit("\n", 1)[-1].split(",")
        return round(datetime.fromisoformat(cells[index]).timestamp() * 1000)


TABLES: dict[str, Table] = {
    "events": Table("events", EVENT_COLUMNS, event_rows, "timestamp_utc"),
    "visits": Table("visits", VISIT_COLUMNS, visit_rows, "started_utc"),
}


def export_csv(
    db: Database,
    query: Query,
    table: Table,
    watch: Callable[[Iterator[Batch]], Iterator[Batch]] = iter,
) -> Iterator[str]:
    """The CSV text of `table` for `query`, chunk by chunk; `watch` may observe the batches.

    Closing it (a download whose client left: Werkzeug and gunicorn close the response)
    closes the rows' stream at once, whatever `watch` holds: its cursor is closed and its
    connection goes back to the pool, its transaction rolled back (stats.rows)."""
    rows = table.rows(db, query, table.cells())
    return _closing(csv_chunks(table.columns, watch(rows)), rows)


def _closing(chunks: Iterator[str], rows: Iterator[Batch]) -> Iterator[str]:
    """`chunks`, then `rows` closed, also when the consumer stops early. Not left to the
    garbage collector: a reference kept elsewhere (a traceback, a wrapper) would hold the
    connection, and on PostgreSQL its open transaction, until it is collected."""
    try:
        yield from chunks
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def export_filename(query: Query, table: Table) -> str:
    return download_name(query.site.domain, table.name, query.period.start, query.period.end)
