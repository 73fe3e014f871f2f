"""Raw rows as CSV cells, rendered by the database: the export's SQL side.

The CSV export streams a million rows; per-row Python (timestamps, JSON, numbers) cost more
than reading and writing the rows together. So the statement renders every cell, exactly
on SQLite and PostgreSQL alike (tests/test_export.py runs both):

- times: ISO 8601 with milliseconds, from integer epoch milliseconds; the site's local time
  adds the UTC offset of its segment (Python finds the DST changes, as for the reports);
- JSON null is an empty cell, booleans are 1 or 0, numbers and text are as stored.

`delimited` returns a whole row as one text (the cheapest way out of the database), with
separators that tell text fields from the others; the reader (rows.py) writes a row that
needs no quotes and no formula neutralising as it is, and reads the others as `cells`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, Integer, Select, Text, cast, func, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from tracker.stats.compiler import segment_case
from tracker.stats.periods import offset_segments

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What precedes a text field in `delimited` lines (a comma precedes the others, which never
# hold one): a control character a CSV line never needs.
TEXT_SEP = "\x1f"


class Kind(Enum):
    """How a column's values become cells."""

    TEXT = "text"  # any text: formula starts neutralised
    KEYWORD = "keyword"  # text from a fixed vocabulary of the code (type, channel, device...)
    NUMBER = "number"
    BOOL = "bool"  # 1 or 0
    JSON = "json"  # stored JSON text; JSON null is an empty cell
    TIME_UTC = "time_utc"
    TIME_LOCAL = "time_local"


TEXTUAL = (Kind.TEXT, Kind.KEYWORD, Kind.JSON)  # may need quotes


class iso_ms(FunctionElement[str]):  # noqa: N801 - named as the SQL function it stands for
    """`YYYY-MM-DDTHH:MM:SS.mmm` of an epoch-milliseconds integer (no zone suffix)."""

    type = Text()
    inherit_cache = True
    name = "iso_ms"


@compiles(iso_ms, "sqlite")
def _iso_ms_sqlite(element: iso_ms, compiler: Any, **kw: Any) -> str:
    # SQLite keeps times as integer milliseconds, so ms / 1000.0 round-trips exactly.
    arg = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%dT%H:%M:%f', ({arg}) / 1000.0, 'unixepoch')"


@compiles(iso_ms, "postgresql")
def _iso_ms_postgresql(element: iso_ms, compiler: Any, **kw: Any) -> str:
    # to_timestamp rounds to microseconds, so a numeric ms / 1000 lands on the exact ms.
    arg = compiler.process(element.clauses, **kw)
    return (
        f"to_char(to_timestamp(({arg}) / 1000.0) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
    )


class joined(FunctionElement[str]):  # noqa: N801 - named as the SQL it renders
    """printf/format(fmt, values...): one call formats a whole row; NULL prints nothing."""

    type = Text()
    inherit_cache = True
    name = "joined"


@compiles(joined, "sqlite")
def _joined_sqlite(element: joined, compiler: Any, **kw: Any) -> str:
    return f"printf({compiler.process(element.clauses, **kw)})"


@compiles(joined, "postgresql")
def _joined_postgresql(element: joined, compiler: Any, **kw: Any) -> str:
    return f"format({compiler.process(element.clauses, **kw)})"


def _offset_text(at_ms: int, zone: ZoneInfo) -> str:
    # As datetime.isoformat writes it: +01:00, or +00:09:21 for an old local mean time.
    return datetime.fromtimestamp(at_ms / 1000, zone).isoformat(timespec="seconds")[19:]


def local_time(ts: ColumnElement, start_ms: int, end_ms: int, zone: ZoneInfo) -> ColumnElement:
    """`ts` in `zone` with its offset, exact for any `ts` in [start_ms, end_ms]."""
    segments = offset_segments(start_ms, end_ms, zone)
    offset = segment_case(ts, segments, lambda _start, off: literal(off, BigInteger))
    suffix = segment_case(ts, segments, lambda start, _off: literal(_offset_text(start, zone)))
    return iso_ms(ts + offset) + suffix


def _value(column: ColumnElement, kind: Kind, zone: ZoneInfo, span_ms: tuple[int, int]) -> Any:
    if kind is Kind.JSON:
        return func.nullif(column, "null")
    if kind is Kind.TIME_UTC:
        return iso_ms(column) + literal("Z", Text)
    if kind is Kind.TIME_LOCAL:
        return local_time(column, *span_ms, zone)
    if kind is Kind.BOOL:
        return cast(column, Integer)
    return column


def cells(
    statement: Select,
    columns: Sequence[tuple[str, Kind]],
    zone: ZoneInfo,
    span_ms: tuple[int, int],
) -> Select:
    """`statement` selecting the cell values of (field, kind) `columns` instead of its fields.

    Text is as stored (quoting and neutralising are the writer's); `span_ms` bounds the
    rows' times (local times are exact inside it).
    """
    source = statement.selected_columns
    values = [_value(source[name], kind, zone, span_ms) for name, kind in columns]
    return statement.with_only_columns(*values, maintain_column_froms=True)


def line_format(columns: Sequence[tuple[str, Kind]]) -> str:
    """The printf format of `delimited` lines: TEXT_SEP before text, a comma before others."""
    seps = [TEXT_SEP if kind in TEXTUAL else "," for _, kind in columns]
    return "%s" + "".join(sep + "%s" for sep in seps[1:])


def delimited(
    statement: Select,
    columns: Sequence[tuple[str, Kind]],
    zone: ZoneInfo,
    span_ms: tuple[int, int],
) -> Select:
    """`statement` selecting one text per row instead of its fields: the cell values of
    `columns` as `cells` gives them, joined by `line_format`.

    # TRICKY: SQLite spends ~0.15 us per function call and Python ~0.2 us per fetched value;
    one printf per row is the cheapest way out of the database, and the separators say
    which fields are text, so the reader can tell a row needing no quotes (most) at once.
    """
    source = statement.selected_columns
    values = [_value(source[name], kind, zone, span_ms) for name, kind in columns]
    line = joined(literal(line_format(columns), Text), *values)
    return statement.with_only_columns(line, maintain_column_froms=True)
