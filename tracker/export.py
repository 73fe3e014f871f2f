"""CSV export: raw events and visits as streamed, spreadsheet-safe CSV.

Rows come from the stats layer (the same Query and filters as the page and the API); this
module only turns them into CSV text, one batch at a time, so memory stays flat at any size.
CSV is RFC 4180 (the csv module's quoting, CRLF line ends), UTF-8, one header line.

Spreadsheets run cells that start with = + - @ (or tab, CR) as formulas, so such text cells
get a leading `'` (OWASP's advice); number columns are written as they are.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from enum import Enum
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from tracker.db import Database
from tracker.stats import EVENT_FIELDS, VISIT_FIELDS, Query, event_rows, visit_rows
from tracker.stats.rows import Batch

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Kind(Enum):
    """How a column's values become cells."""

    TEXT = "text"
    NUMBER = "number"
    BOOL = "bool"
    JSON = "json"
    TIME_UTC = "time_utc"
    TIME_LOCAL = "time_local"


@dataclass(frozen=True)
class Column:
    header: str
    field: str  # the stats layer's row field this column reads
    kind: Kind = Kind.TEXT


_N = Kind.NUMBER

_VISIT_ORIGIN = (
    Column("source", "source"),
    Column("channel", "channel"),
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
    Column("device", "device"),
    Column("screen", "screen"),
)

EVENT_COLUMNS: tuple[Column, ...] = (
    Column("timestamp_utc", "timestamp_ms", Kind.TIME_UTC),
    Column("timestamp_local", "timestamp_ms", Kind.TIME_LOCAL),
    Column("type", "kind"),
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
)


def neutralize(value: str) -> str:
    """A text cell that a spreadsheet will show as text, never run as a formula."""
    if value and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# TRICKY: checking each text cell costs more than writing the row, so a row's text cells are
# joined behind NUL separators and searched once; only rows with a hit are fixed cell by cell.
_FORMULA_IN_ROW = re.compile("\x00[" + re.escape("".join(FORMULA_STARTS)) + "]")


def _json(value: Any) -> str:
    # The stats layer hands props over as their stored JSON text (decoding and re-encoding
    # a million objects would double the export's time). An object's text starts with `{`.
    return "" if value is None or value == "null" else value


def _number(value: Any) -> str:
    return "" if value is None else str(int(value))


def _time(zone: tzinfo) -> Callable[[Any], str]:
    """ISO 8601 with milliseconds in `zone` (`Z` for UTC), for epoch-millisecond values."""
    # Rows come in time order, many per minute, and an offset never changes inside a minute:
    # the minute's text is made once and only seconds and milliseconds per row.
    minute_start, head, offset = -1, "", ""

    def convert(ms: Any) -> str:
        nonlocal minute_start, head, offset
        if ms is None:
            return ""
        start = ms - ms % 60_000
        if start != minute_start:
            moment = datetime.fromtimestamp(start / 1000, zone).isoformat(timespec="minutes")
            head, offset = moment[:16], moment[16:]
            if len(offset) > 6:  # a pre-1972 offset with seconds: minutes do not align
                exact = datetime.fromtimestamp(ms / 1000, zone)
                return exact.isoformat(timespec="milliseconds")
            if offset == "+00:00" and zone is UTC:
                offset = "Z"
            minute_start = start
        rest = ms - start
        return f"{head}:{rest // 1000:02d}.{rest % 1000:03d}{offset}"

    return convert


@dataclass(frozen=True)
class _RowFormat:
    """How rows of the stats layer's `fields` become cells of `columns`, worked out once."""

    pick: Callable[[Sequence[Any]], tuple[Any, ...]]  # row -> values in column order
    special: tuple[tuple[int, Callable[[Any], str]], ...]  # (cell, converter) for non-text
    text: tuple[int, ...]  # cells holding text (never NULL in the schema)

    @classmethod
    def build(cls, columns: Sequence[Column], fields: Sequence[str], zone: tzinfo) -> _RowFormat:
        missing = [c.field for c in columns if c.field not in fields]
        if missing:
            raise ValueError(f"rows lack the fields {missing}")
        converters: dict[Kind, Callable[[Any], str]] = {
            Kind.NUMBER: _number,
            Kind.BOOL: _number,
            Kind.JSON: _json,
            Kind.TIME_UTC: _time(UTC),
            Kind.TIME_LOCAL: _time(zone),
        }
        return cls(
            pick=itemgetter(*(fields.index(c.field) for c in columns)),
            special=tuple(
                (i, converters[c.kind]) for i, c in enumerate(columns) if c.kind in converters
            ),
            text=tuple(i for i, c in enumerate(columns) if c.kind is Kind.TEXT),
        )

    def cells(self, row: Sequence[Any]) -> list[str]:
        cells = list(self.pick(row))
        for i, convert in self.special:
            cells[i] = convert(cells[i])
        if _FORMULA_IN_ROW.search("\x00" + "\x00".join([cells[i] for i in self.text])):
            for i in self.text:
                cells[i] = neutralize(cells[i])
        return cells


class _Chunk:
    """A write target for csv.writer that hands back what was written since the last take."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        return text


# A row none of whose cells holds a comma, quote or line break is written by the csv module
# (QUOTE_MINIMAL) exactly as its cells joined by commas; tests/test_export.py pins that.
_QUOTE_OR_BREAK = re.compile('["\r\n]')


def csv_chunks(
    columns: Sequence[Column],
    fields: Sequence[str],
    batches: Iterable[Sequence[Sequence[Any]]],
    timezone: str = "UTC",
) -> Iterator[str]:
    """The header, then one CSV text chunk per batch of rows (rows hold `fields` in order)."""
    fmt = _RowFormat.build(columns, list(fields), ZoneInfo(timezone))
    chunk = _Chunk()
    writer = csv.writer(chunk, lineterminator="\r\n")
    writer.writerow([c.header for c in columns])
    yield chunk.take()
    commas = len(columns) - 1
    for batch in batches:
        for row in batch:
            cells = fmt.cells(row)
            # TRICKY: the csv module costs ~15 us a row here, most of the export's time; plain
            # rows take the equivalent join (1 us) and anything needing quotes goes through it.
            line = ",".join(cells)
            if line.count(",") == commas and not _QUOTE_OR_BREAK.search(line):
                chunk.write(line + "\r\n")
            else:
                writer.writerow(cells)
        yield chunk.take()


def download_name(domain: str, table: str, first: date, last: date) -> str:
    """`example.com-events-2026-11-01-to-2026-11-30.csv`: names the site, table and range."""
    safe_domain = re.sub(r"[^a-z0-9.-]+", "_", domain.lower())
    return f"{safe_domain}-{table}-{first.isoformat()}-to-{last.isoformat()}.csv"


@dataclass(frozen=True)
class Table:
    """One exportable table: its CSV columns and where its rows come from."""

    name: str
    columns: tuple[Column, ...]
    fields: tuple[str, ...]
    rows: Callable[[Database, Query], Iterator[Batch]]
    time_field: str  # rows come in the order of this field (epoch ms)


TABLES: dict[str, Table] = {
    "events": Table("events", EVENT_COLUMNS, EVENT_FIELDS, event_rows, "timestamp_ms"),
    "visits": Table("visits", VISIT_COLUMNS, VISIT_FIELDS, visit_rows, "started_ms"),
}


def export_csv(
    db: Database,
    query: Query,
    table: Table,
    watch: Callable[[Iterator[Batch]], Iterator[Batch]] = iter,
) -> Iterator[str]:
    """The CSV text of `table` for `query`, chunk by chunk; `watch` may observe the batches."""
    batches = watch(table.rows(db, query))
    return csv_chunks(table.columns, table.fields, batches, query.site.timezone)


def export_filename(query: Query, table: Table) -> str:
    return download_name(query.site.domain, table.name, query.period.start, query.period.end)
