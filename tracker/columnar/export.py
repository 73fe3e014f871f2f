"""One part: a site's visits that started in a run of whole UTC days, and their events,
streamed from the database into two Parquet files.

Every column of the two tables is copied, as the database holds it: integers as BIGINT
(ids and times in ms) or INTEGER, `is_bounce` as BOOLEAN, text as VARCHAR with
its NULLs, and `props` as the JSON text `CAST(props AS TEXT)` gives on either database
(what the compiler reads). Each event also carries its visit's columns in
compiler.VISIT_COPIES, as `visit_<name>`, taken from the visits file just written
(VisitCopies): DuckDB reads every event report without the join. And flags
(STORED_FLAGS) for counting a page's visitors without grouping by visitor
(compiler.page_visitor_buckets): `first_of_path`, the visit's first pageview of its path,
and `visitor_revisits`, the visit's visitor has other visits in the part; and a third,
`visitor_first_of_path`, the visitor's first pageview of its path on its visit's UTC day
(with `Part.visitor_constant`, the visit columns the same for all of a visitor's visits of
a day); a fourth, `visitor_repeats_path`, a pageview whose visitor viewed its path in
another of its visits in the part (`repeats_query`, matched by the database); and
`path_id`, the path's number in the site's path dictionary (tracker.columnar.paths).
Visits keep the site's goals they convert on as bits (`goals`,
copied to events as `visit_goals`; which goal each bit is: `Part.goals`), matched by the
database in the part's snapshot, and their own `visitor_revisits` (REVISITS), for visit
reports to group by visitor only the visitors with other visits (compiler.group_facts).
Visits are in (started_ms, id) order, events in their visit's (started_ms, visit_id) order
then by id, so row group statistics let a reader skip by time; a visit's events are together,
which compiler.visit_ordered_buckets relies on (a visit's facts taken from its first event).

On PostgreSQL the rows come as `COPY (...) TO STDOUT` CSV, parsed by pyarrow's CSV reader:
half the CPU of fetching Python rows (server and client), the same table to the value.
"""

from __future__ import annotations

import io
import itertools
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple, cast

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    Table,
    Text,
    case,
    func,
    literal,
    select,
)
from sqlalchemy import cast as sql_cast

from tracker.clock import now_ms
from tracker.columnar.engine import NO_EXTENSIONS, quoted_path
from tracker.columnar.layout import DAY_MS, Part
from tracker.columnar.paths import PathDictionary
from tracker.db import Database
from tracker.db.models import Event, Visit
from tracker.stats.compiler import PATH_ID, REVISITS, STORED_FLAGS, STORED_GOALS, VISIT_COPIES
from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.goals import any_matches, goal_key, goals_of_site, matches
from tracker.stats.query import GoalSpec

visits = cast(Table, Visit.__table__)
events = cast(Table, Event.__table__)

# Rows fetched and converted at a time (as Python objects on SQLite, as CSV bytes from
# PostgreSQL), and rows per Parquet row group (DuckDB's own): memory stays the same for a
# day or a month, and each row group is large enough for DuckDB to scan in parallel.
BATCH_ROWS = 8192
CSV_BLOCK = 2 << 20
COPY_BUFFER = 1 << 20
ROW_GROUP_ROWS = 122_880
COMPRESSION = "zstd"
# Values per row group a file's columns are dictionary-encoded up to where its texts fit
# (`dictionary_limit`): more than a report's pages or campaigns, fewer than its ids or times.
SMALL_DICTIONARY = 10_000
# The writer's DuckDB (`_write_parquet`): one thread keeps the rows' order (and the job's
# share of the cores); nothing loaded at run time, as the reader's.
_WRITER_CONFIG: dict[str, Any] = {"threads": 1, "preserve_insertion_order": True, **NO_EXTENSIONS}
EPOCH = date(1970, 1, 1)


def arrow_type(column: Column[Any]) -> pa.DataType:
    """The Parquet type of a visits or events column."""
    kind = column.type
    if isinstance(kind, String | Text | JSON):
        return pa.string()
    if isinstance(kind, Boolean):
        return pa.bool_()
    if not isinstance(kind, Integer):
        raise TypeError(f"no Parquet type for {column.table.name}.{column.name} ({kind})")
    if isinstance(kind, BigInteger) or column.primary_key or column.foreign_keys:
        return pa.int64()
    return pa.int32()


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c)) for c in table.c])


# Visits as the database gives them, and as they are streamed: with their goals (the part
# keeps them flagged as well, `_flagged`).
FETCHED_VISITS_SCHEMA = arrow_schema(visits)
VISITS_SCHEMA = pa.schema([*FETCHED_VISITS_SCHEMA, pa.field(STORED_GOALS, pa.int64())])
COPY_FIELDS = [
    *(pa.field(f"visit_{n}", arrow_type(visits.c[n])) for n in VISIT_COPIES),
    pa.field(f"visit_{STORED_GOALS}", pa.int64()),
]
FLAG_FIELDS = [pa.field(name, pa.bool_()) for name in STORED_FLAGS]
# Events as the database gives them (their own columns), and as the part keeps them.
FETCHED_SCHEMA = arrow_schema(events)
EVENTS_SCHEMA = pa.schema(
    [*FETCHED_SCHEMA, *COPY_FIELDS, *FLAG_FIELDS, pa.field(PATH_ID, pa.int64())]
)
_VISIT_DIMENSION_COLUMNS = frozenset(d.column for d in DIMENSIONS.values() if d.scope == "visit")
# Goals a part keeps as bits of its visits' `goals` (a BIGINT, its sign bit left alone);
# the others are matched on its events when asked.
MAX_STORED_GOALS = 63


def _selected(table: Table) -> list[ColumnElement[Any]]:
    # TRICKY: PostgreSQL's driver hands json back parsed; its text is what reports read.
    return [sql_cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in table.c]


def visits_query(site_id: int, start_ms: int, end_ms: int) -> Select[Any]:
    return (
        select(*_selected(visits))
        .where(
            visits.c.site_id == site_id,
            visits.c.started_ms >= start_ms,
            visits.c.started_ms < end_ms,
        )
        .order_by(visits.c.started_ms, visits.c.id)
    )


def events_query(site_id: int, start_ms: int, end_ms: int) -> Select[Any]:
    """The events' own columns; their visit's copies are taken from the visits part."""
    return (
        select(*_selected(events))
        .select_from(events.join(visits, visits.c.id == events.c.visit_id))
        .where(
            visits.c.site_id == site_id,
            visits.c.started_ms >= start_ms,
            visits.c.started_ms < end_ms,
        )
        .order_by(visits.c.started_ms, visits.c.id, events.c.id)
    )


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """A connection whose reads all see one state of the database, so a part's visits and
    events agree. Reads only: on SQLite a deferred transaction takes no write lock."""
    with db.engine.connect() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql("BEGIN")
        else:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        try:
            yield conn
        finally:
            conn.rollback()


def _fetched(conn: Connection, stmt: Select[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The rows a batch at a time, column by column, as the driver's tuples: SQLAlchemy's
    rows (and its result's buffering) took a tenth of a part's build on SQLite (the
    bench's 1M dataset, 33.7 -> 30.8 s of CPU). Its booleans come as the integers SQLite
    stores."""
    result = conn.execute(stmt)
    try:
        while rows := result.cursor.fetchmany(BATCH_ROWS):
            columns = zip(*rows, strict=True)
            arrays = [_arrow(values, f.type) for values, f in zip(columns, schema, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        result.close()


def _arrow(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    if kind == pa.bool_():
        return pa.array(values, pa.int8()).cast(kind)
    return pa.array(values, kind)


class _CopyOutput(io.RawIOBase):
    """The chunks a COPY sends, as the file pyarrow's CSV reader reads."""

    def __init__(self, first: memoryview, rest: Iterator[memoryview]) -> None:
        self.chunk, self.rest = first, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.chunk:
            following = next(self.rest, None)
            if following is None:
                return 0
            self.chunk = memoryview(following)
        size = min(len(buffer), len(self.chunk))
        buffer[:size] = self.chunk[:size]
        self.chunk = self.chunk[size:]
        return size


def _copied(conn: Connection, stmt: Select[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The rows as PostgreSQL's CSV, a block at a time. NULL is an unquoted empty field, an
    empty string a quoted one; booleans are t and f."""
    compiled = stmt.compile(dialect=conn.dialect)
    driver = conn.connection.dbapi_connection
    assert driver is not None  # an open connection's
    cursor = driver.cursor()
    with cursor.copy(f"COPY ({compiled.string}) TO STDOUT (FORMAT CSV)", compiled.params) as copy:
        chunks = iter(copy)
        first = next(chunks, None)
        if first is None:
            return  # the CSV reader refuses an empty file
        yield from pa_csv.open_csv(
            io.BufferedReader(_CopyOutput(memoryview(first), chunks), COPY_BUFFER),
            # One thread: a background job, and threads cost more CPU than they save here.
            read_options=pa_csv.ReadOptions(
                column_names=schema.names, block_size=CSV_BLOCK, use_threads=False
            ),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=schema,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )


def _row_groups(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    """The batches gathered ROW_GROUP_ROWS rows at a time (the last group fewer)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= ROW_GROUP_ROWS:
            yield pa.Table.from_batches(pending, schema)
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending, schema)


def _dictionary_encoded(file: pq.ParquetFile, names: Sequence[str]) -> list[str]:
    """Those of the columns `names` every row group of `file` keeps in a dictionary."""
    meta = file.metadata
    plain = set()
    for group in range(meta.num_row_groups):
        for index in range(meta.num_columns):
            chunk = meta.row_group(group).column(index)
            if not {"RLE_DICTIONARY", "PLAIN_DICTIONARY"} & set(chunk.encodings):
                plain.add(chunk.path_in_schema)
    return [name for name in names if name not in plain]


class VisitCopies:
    """Each event's copies of its visit's columns (VISIT_COPIES), taken from the part's
    visits file: Arrow takes them by row position in C, where fetching them with every
    event cost the builder a third more time (two dozen more values per event, as Python
    objects on SQLite). Events come in their visits' order, so a row group's visits are
    looked up among the next visits of the file, all of them only if one is not there.
    Then the flags (STORED_FLAGS), and the path's number in the site's `paths`.
    `repeated`: the (visitor, path) pairs viewed in more than one of the visitor's visits
    in the part (`repeated_paths`)."""

    def __init__(self, visits_path: Path, paths: PathDictionary, repeated: pa.Table) -> None:
        self.paths = paths
        self.repeated = repeated
        copied = [*VISIT_COPIES, STORED_GOALS]
        strings = [n for n, f in zip(copied, COPY_FIELDS, strict=True) if f.type == pa.string()]
        # Dictionary-encoded as read where the file has them so: a month's visits take
        # little memory (Arrow cannot read a text stored plain into a dictionary).
        columns = ["id", *copied, REVISITS]
        read_dictionary = _dictionary_encoded(pq.ParquetFile(visits_path), strings)
        table = pq.read_table(visits_path, columns=columns, read_dictionary=read_dictionary)
        self.ids = table.column("id").combine_chunks()
        self.revisits = table.column(REVISITS)
        self.table = table.drop_columns(["id", REVISITS])
        self.start = 0  # the row of the last visit looked up: its events may go on
        # The last visit of the rows seen so far and its pageviews' paths: its events may
        # go on in the next rows.
        self.last_visit: int | None = None
        self.last_paths = pa.array([], pa.string())
        # The (day, visitor, path) of the pageviews seen on the last UTC day of the rows so
        # far: that day's visits may go on in the next rows.
        none = pa.array([], pa.int64())
        self.seen_today = _visitor_paths(none, none, pa.array([], pa.string()), none).select(
            _VISITOR_PATH
        )

    def added(self, fetched: pa.Table) -> pa.Table:
        """`fetched` (events' own columns) with their visit's copies after them."""
        visit_ids = fetched.column("visit_id")
        offset = self.start
        found = pc.index_in(visit_ids, value_set=self.ids.slice(offset, len(fetched) + 1))
        if found.null_count:  # visits without events in between (none expected)
            offset, found = 0, pc.index_in(visit_ids, value_set=self.ids)
        assert not found.null_count, "an event without its visit in the part"
        rows = pc.add(found, offset)
        self.start = pc.max(rows).as_py()
        copies = self.table.take(rows)
        arrays = [*fetched.columns]
        for name, field in zip([*VISIT_COPIES, STORED_GOALS], COPY_FIELDS, strict=True):
            column = copies.column(name)
            arrays.append(column.cast(field.type) if column.type != field.type else column)
        group = _Flagged(
            fetched,
            copies,
            pa.array(range(len(fetched)), pa.int64()),
            pc.equal(fetched.column("kind"), "pageview"),
            copies.column("visitor_id").cast(pa.int64()),
        )
        arrays += [
            self._first_of_path(group),
            self.revisits.take(rows),
            self._visitor_first_of_path(group),
            self._repeats_path(group),
            self.paths.numbered(fetched.column("path")),
        ]
        return pa.Table.from_arrays(arrays, schema=EVENTS_SCHEMA)

    def _repeats_path(self, group: _Flagged) -> pa.Array:
        """Per event: a pageview whose visitor viewed its path in another of its visits in
        the part (REPEATS_PATH)."""
        pageviews = pa.table(
            {"visitor": group.visitor, "path": group.fetched.column("path"), "row": group.rows}
        ).filter(group.pageview)
        found = pageviews.join(
            self.repeated, keys=["visitor", "path"], join_type="left semi", use_threads=False
        )
        return _flat(pc.is_in(group.rows, value_set=found.column("row")))

    def _visitor_first_of_path(self, group: _Flagged) -> pa.Array:
        """Per event: a pageview that is the first of its path (a NULL path counts as one
        path) among its visitor's pageviews in the visits started on its visit's UTC day,
        here or in the rows before (visits come in their start's order, so only the last
        day's may go on in the next rows)."""
        day = pc.divide(group.copies.column("started_ms"), DAY_MS).cast(pa.int64())
        path = group.fetched.column("path")
        pageviews = _visitor_paths(day, group.visitor, path, group.rows).filter(group.pageview)
        firsts = pageviews.group_by(_VISITOR_PATH, use_threads=False).aggregate([("row", "min")])
        if self.seen_today.num_rows:
            firsts = firsts.join(
                self.seen_today, keys=_VISITOR_PATH, join_type="left anti", use_threads=False
            )
        flagged = pc.is_in(group.rows, value_set=firsts.column("row_min"))
        seen = pa.concat_tables([self.seen_today, firsts.select(_VISITOR_PATH)])
        self.seen_today = seen.filter(pc.equal(seen.column("day"), pc.max(day)))
        return _flat(flagged)

    def _first_of_path(self, group: _Flagged) -> pa.Array:
        """Per event: a pageview whose visit has no earlier pageview of its path (a NULL
        path counts as one path), here or in the rows before (a visit's events come
        together, by id)."""
        fetched, rows = group.fetched, group.rows
        pageviews = pa.table(
            {"visit_id": fetched.column("visit_id"), "path": fetched.column("path"), "row": rows}
        ).filter(group.pageview)
        firsts = pageviews.group_by(["visit_id", "path"], use_threads=False).aggregate(
            [("row", "min")]
        )
        first = pc.is_in(rows, value_set=firsts.column("row_min"))
        if self.last_visit is not None:
            seen = pc.and_(
                pc.equal(fetched.column("visit_id"), self.last_visit),
                pc.is_in(fetched.column("path"), value_set=self.last_paths, skip_nulls=False),
            )
            first = pc.and_(first, pc.invert(seen))
        last = fetched.column("visit_id")[-1].as_py()
        of_last = pageviews.filter(pc.equal(pageviews.column("visit_id"), last))
        paths = of_last.column("path").combine_chunks()
        if last == self.last_visit:
            paths = pa.concat_arrays([self.last_paths, paths])
        self.last_visit, self.last_paths = last, paths
        return _flat(first)


class _Flagged(NamedTuple):
    """A row group of events as VisitCopies flags it: what every flag reads, made once."""

    fetched: pa.Table  # the events' own columns
    copies: pa.Table  # their visit's columns
    rows: pa.Array  # each event's row in the group
    pageview: pa.Array  # whether it is a pageview
    visitor: pa.Array  # its visit's visitor id, as int64


def _flat(flags: pa.Array | pa.ChunkedArray) -> pa.Array:
    return flags.combine_chunks() if isinstance(flags, pa.ChunkedArray) else flags


# A pageview's key among its visitor's pageviews of a day (`_visitor_first_of_path`). The
# path comes with whether it is NULL (then ""): Acero's joins match no NULL keys.
_VISITOR_PATH = ["day", "visitor", "path", "no_path"]


def _visitor_paths(day: pa.Array, visitor: pa.Array, path: pa.Array, row: pa.Array) -> pa.Table:
    return pa.table(
        {"day": day, "visitor": visitor, "path": pc.fill_null(path, ""),
         "no_path": pc.is_null(path), "row": row}
    )  # fmt: skip


class VisitGoals:
    """Each visit's goals as bits (STORED_GOALS): bit i set when one of its events matches
    the part's i-th goal. Matched by the database itself (the raw path's own matching, as
    `goals.matches` says), once per part, in the part's read snapshot."""

    def __init__(self, conn: Connection, stmt: Select[Any] | None) -> None:
        rows = [] if stmt is None else conn.execute(stmt).all()
        self.ids = pa.array([r[0] for r in rows], pa.int64())
        self.masks = pa.array([int(r[1]) for r in rows], pa.int64())

    def added(self, fetched: pa.Table) -> pa.Table:
        """`fetched` (visits' own columns) with their goals after them (0: none)."""
        found = pc.index_in(fetched.column("id"), value_set=self.ids)
        goals = pc.fill_null(self.masks.take(found), 0)
        return pa.Table.from_arrays([*fetched.columns, goals], schema=VISITS_SCHEMA)


def repeats_query(site_id: int, start_ms: int, end_ms: int) -> Select[Any]:
    """The (visitor, path) pairs of the part's pageviews viewed in more than one of the
    visitor's visits: only the visitors with other visits in the part are looked at (their
    events found by visit, a fifth of the part's at 1M; 1 s of SQLite for 1M events)."""
    in_part = (
        visits.c.site_id == site_id,
        visits.c.started_ms >= start_ms,
        visits.c.started_ms < end_ms,
    )
    returning = (
        select(visits.c.visitor_id)
        .where(*in_part)
        .group_by(visits.c.visitor_id)
        .having(func.count() > 1)
    )
    return (
        select(visits.c.visitor_id, events.c.path)
        .select_from(visits.join(events, events.c.visit_id == visits.c.id))
        .where(*in_part, visits.c.visitor_id.in_(returning), events.c.kind == "pageview")
        .group_by(visits.c.visitor_id, events.c.path)
        .having(func.count(events.c.visit_id.distinct()) > 1)
    )


def repeated_paths(conn: Connection, site_id: int, start_ms: int, end_ms: int) -> pa.Table:
    """`repeats_query`'s pairs, as VisitCopies looks events up among them."""
    rows = conn.execute(repeats_query(site_id, start_ms, end_ms)).all()
    return pa.table(
        {"visitor": pa.array([r[0] for r in rows], pa.int64()),
         "path": pa.array([r[1] for r in rows], pa.string())}
    )  # fmt: skip


def visitor_constant(visits: pa.Table) -> tuple[str, ...]:
    """The visit dimensions' columns (compiler.VISIT_COPIES) whose value (NULL counting as
    one) is the same for all of a visitor's visits of a UTC day among the part's `visits`
    (VisitCopies.table: its columns as read from the visits file)."""
    columns = [c for c in VISIT_COPIES if c in _VISIT_DIMENSION_COLUMNS]
    day = pc.divide(visits.column("started_ms"), DAY_MS)
    keyed = visits.select(["visitor_id", *columns]).unify_dictionaries().append_column("day", day)
    every = pc.CountOptions(mode="all")
    counts = keyed.group_by(["day", "visitor_id"], use_threads=False).aggregate(
        [(c, "count_distinct", every) for c in columns]
    )
    return tuple(c for c in columns if pc.max(counts.column(f"{c}_count_distinct")).as_py() == 1)


def part_goals(previous: Sequence[str], goals: Sequence[GoalSpec]) -> tuple[str, ...]:
    """The goal keys (`goals.goal_key`) a new part keeps as bits, bit i the i-th: the
    site's goals, each where the last part built keeps it (`previous`), so the parts of a
    period agree and its queries read the bits; a goal no longer there leaves its place
    empty (""), new ones are added after. Past MAX_STORED_GOALS the empty places go."""
    current = {goal_key(g) for g in goals}
    keys = [k if k in current else "" for k in previous]
    keys += [k for k in dict.fromkeys(goal_key(g) for g in goals) if k not in keys]
    if len(keys) > MAX_STORED_GOALS:
        keys = [k for k in keys if k]
    while keys and not keys[-1]:
        keys.pop()
    return tuple(keys[:MAX_STORED_GOALS])


def goals_query(
    site_id: int, start_ms: int, end_ms: int, keys: Sequence[str], goals: Sequence[GoalSpec]
) -> Select[Any] | None:
    """Per visit of the part with a goal among `keys`: its id and bits (bit i: the i-th
    key's goal); None without goals."""
    by_key = {goal_key(g): g for g in goals}
    kept = [(bit, by_key[k]) for bit, k in enumerate(keys) if k]
    if not kept:
        return None
    bits = [
        func.max(case((matches(g), literal(1 << bit, BigInteger)), else_=literal(0, BigInteger)))
        for bit, g in kept
    ]
    return (
        select(events.c.visit_id, sum(bits[1:], bits[0]).label(STORED_GOALS))
        .select_from(events.join(visits, visits.c.id == events.c.visit_id))
        .where(
            visits.c.site_id == site_id,
            visits.c.started_ms >= start_ms,
            visits.c.started_ms < end_ms,
            any_matches([g for _, g in kept]),
        )
        .group_by(events.c.visit_id)
    )


def write_rows(
    conn: Connection,
    stmt: Select[Any],
    schema: pa.Schema,
    path: Path,
    *,
    empty: bool,
    added: VisitCopies | VisitGoals,
) -> Written:
    """Stream the statement's rows (`schema`) into a Parquet file, with the columns `added`
    adds to them; says how many, and the file's `dictionary_limit`. No file is made for no
    rows unless `empty`."""
    postgresql = conn.dialect.name == "postgresql"
    batches = _copied(conn, stmt, schema) if postgresql else _fetched(conn, stmt, schema)
    out = EVENTS_SCHEMA if isinstance(added, VisitCopies) else VISITS_SCHEMA
    tables = (added.added(fetched) for fetched in _row_groups(batches, schema))
    first = next(tables, None)
    if first is None and not empty:
        return Written(0, 0)
    written = 0

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal written
        for table in itertools.chain([] if first is None else [first], tables):
            written += table.num_rows
            yield from table.to_batches()

    limit = ROW_GROUP_ROWS if first is None else dictionary_limit(first)
    _write_parquet(pa.RecordBatchReader.from_batches(out, counted()), path, limit)
    return Written(written, limit)


class Written(NamedTuple):
    """A file `write_rows` wrote: its rows, and the dictionary limit it was written with."""

    rows: int
    dictionary_limit: int


def dictionary_limit(group: pa.Table) -> int:
    """The most values a column of a file whose first row group is `group` is
    dictionary-encoded with (`_write_parquet`). Its texts are read faster from a dictionary
    (the wide dataset's 100k paths stored plain: 7 % slower), its ids, times and durations
    from a delta encoding: so SMALL_DICTIONARY where the texts fit (ids, a text with more
    values than half the rows, are never grouped by), else the row group's rows, all texts
    in a dictionary (DuckDB's choice is per file, not per column). Groups come whole but
    the last: a first group short of one is the file's only one; DuckDB sizes each
    column's dictionary by the limit (a 200-row file of 60 columns: 58 ms of CPU at a row
    group's worth, 5 at its own rows)."""
    rows = max(1, min(group.num_rows, ROW_GROUP_ROWS))
    texts = [f.name for f in group.schema if pa.types.is_string(f.type)]
    counts = [pc.count_distinct(group[name]).as_py() for name in texts]
    if all(n <= SMALL_DICTIONARY or n > rows // 2 for n in counts):
        return min(rows, SMALL_DICTIONARY)
    return rows


def _write_parquet(rows: pa.RecordBatchReader, path: Path, dictionary_limit: int) -> None:
    """The rows into a Parquet file, in their order, written by DuckDB, which reads its own
    files faster than pyarrow's with the same compression: the bench's 1M dataset, DuckDB
    CPU alone, an `event:page!=/` headline 110 -> 96 ms, page breakdowns 5-20 % less.
    Parquet's version 2 encodings: integers past the dictionary (`dictionary_limit`) are
    delta-encoded, which DuckDB decodes in about half the time of a large dictionary's
    (10M events: visit ids 89 -> 51 ms, visit starts 90 -> 48)."""
    duck = _writer()
    duck.register("part_rows", rows)
    try:
        _copy(duck, "part_rows", path, dictionary_limit)
    finally:
        duck.unregister("part_rows")


def _copy(duck: duckdb.DuckDBPyConnection, rows: str, path: Path, dictionary_limit: int) -> None:
    """`rows` (a table's name, or a query in parentheses) into the Parquet file `path`."""
    duck.execute(
        f"COPY {rows} TO {quoted_path(path)} (FORMAT parquet, COMPRESSION {COMPRESSION},"
        f" ROW_GROUP_SIZE {ROW_GROUP_ROWS}, DICTIONARY_SIZE_LIMIT {dictionary_limit},"
        " PARQUET_VERSION V2)"
    )


def _write_visits(conn: Connection, stmt: Select[Any], path: Path, goals: VisitGoals) -> bool:
    """The visits file of a part, with their goals and flags; False for no visits (no file)."""
    # A .parquet the manifest never names: swept if a crash leaves it (build.sweep).
    streamed = path.with_name(f".streamed-{path.name}")
    try:
        written = write_rows(conn, stmt, FETCHED_VISITS_SCHEMA, streamed, empty=False, added=goals)
        if written.rows:
            _flagged(streamed, path, written.dictionary_limit)
        return written.rows > 0
    finally:
        streamed.unlink(missing_ok=True)


def _flagged(streamed: Path, path: Path, dictionary_limit: int) -> None:
    """The visits file `streamed` (written with `dictionary_limit`) written again as
    `path`, in the same order, each visit with REVISITS: whether its visitor has other
    visits in the part. Known only once all of them are (a visitor's visits of a day may
    lie in two row groups); flagged in DuckDB, which streams the file, where Arrow would
    hold a month's visits in memory."""
    source = quoted_path(streamed)
    returning = f"SELECT visitor_id FROM {source} GROUP BY visitor_id HAVING count(*) > 1"
    flagged = f"(SELECT *, visitor_id IN ({returning}) AS {REVISITS} FROM {source})"
    _copy(_writer(), flagged, path, dictionary_limit)


_writers = threading.local()


def _writer() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB for writing files, made once per thread and process: a new
    in-memory database costs ~15 ms of CPU, ten times what writing a small part's file
    does (a build writes two files a part; the test suite thousands)."""
    if getattr(_writers, "pid", None) != os.getpid():  # not one a forked parent made
        _writers.connection = duckdb.connect(":memory:", config=_WRITER_CONFIG)
        _writers.pid = os.getpid()
    connection: duckdb.DuckDBPyConnection = _writers.connection
    return connection


def file_names(first_day: int, last_day: int, built_ms: int) -> tuple[str, str]:
    """Unique names for a new part's two files: its days, when it was built, and a few
    random characters (two builds in one millisecond never collide)."""
    days = f"{EPOCH + timedelta(days=first_day)}_{EPOCH + timedelta(days=last_day)}"
    tag = f"{days}_{built_ms}_{secrets.token_hex(3)}"
    return f"visits_{tag}.parquet", f"events_{tag}.parquet"


def write_part(
    db: Database,
    directory: Path,
    site_id: int,
    first_day: int,
    last_day: int,
    built_ms: int,
    paths: PathDictionary,
    previous_goals: Sequence[str] = (),
    *,
    provisional: bool = False,
) -> Part | None:
    """The part of the site's visits that started on days first_day..last_day (UTC day
    numbers), written into `directory`; None when there were no visits. Its visits carry
    the site's goals as bits, where the part built last (`previous_goals`) has them; its
    events their path's number in `paths` (new paths numbered there).
    `provisional`: days whose visits may still change (`Part.snapshot_ms`)."""
    start_ms, end_ms = first_day * DAY_MS, (last_day + 1) * DAY_MS
    visits_name, events_name = file_names(first_day, last_day, built_ms)
    directory.mkdir(parents=True, exist_ok=True)
    # Before the snapshot: a change it misses is stamped after this, less a transaction's
    # length (tracker.storage.changes).
    snapshot_ms = now_ms() if provisional else 0
    with snapshot(db) as conn:
        goals = goals_of_site(conn, site_id)
        keys = part_goals(previous_goals, goals)
        found = VisitGoals(conn, goals_query(site_id, start_ms, end_ms, keys, goals))
        if not _write_visits(
            conn, visits_query(site_id, start_ms, end_ms), directory / visits_name, found
        ):
            return None
        stmt = events_query(site_id, start_ms, end_ms)
        repeated = repeated_paths(conn, site_id, start_ms, end_ms)
        copies = VisitCopies(directory / visits_name, paths, repeated)
        write_rows(conn, stmt, FETCHED_SCHEMA, directory / events_name, empty=True, added=copies)
    return Part(
        first_day=first_day,
        last_day=last_day,
        visits=visits_name,
        events=events_name,
        goals=keys,
        visitor_constant=visitor_constant(copies.table),
        snapshot_ms=snapshot_ms,
    )
