"""Reading the columnar store: the compiler's own statements, run by DuckDB over the parts.

A query's visits are cut at the split, the last local midnight (site time zone) at or before
the end of the manifest's provisional parts (`held`): those started before it are read from
the Parquet parts, those from it on from the database of record (today: few rows, through
`bucket_source`, so rollups answer them where they can). Provisional parts hold yesterday as
it was when written; the visitors the writer changed since (tracker.storage.changes) are
left out of them and read from the database too. Visitors are counted
distinct per local day (or hour), so a local day is never cut in two: a visitor with visits
on both sides would count twice. The database's per-bucket rows are handed to DuckDB as an
Arrow table and both sides are summed by the compiler's `outer` statement there, so ordering
and paging stay in one place. The statements are compiled for DuckDB in a dialect that keeps
the database of record's semantics where DuckDB's differ; text is always a bound parameter.

DuckDB runs in the process: one database per worker process, one connection per thread (its
connections are not safe to share between threads), never loading or downloading an
extension. Each call reads the parts covering its days through temporary views of that
thread's connection.
"""

from __future__ import annotations

import atexit
import contextvars
import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from typing import cast as typed

import duckdb
import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Connection,
    Select,
    String,
    Text,
    and_,
    column,
    false,
    func,
    literal,
    not_,
    select,
    table,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql.base import PGCompiler, PGDialect, PGTypeCompiler
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import iterate, replacement_traverse

from tracker.columnar.layout import (
    DAY_MS,
    MANIFEST,
    TABLES,
    Manifest,
    Part,
    read_manifest,
    site_dir,
    store_root,
)
from tracker.files import FileVersion, file_version
from tracker.stats.compiler import (
    PATH_ID,
    Plan,
    dim_key,
    events,
    needs_events,
    outer,
    raw_buckets,
    stored_events,
    stored_paths,
    visits,
)
from tracker.stats.dimensions import PAGE
from tracker.stats.filters import Filter, FilterClause, compile_filter
from tracker.stats.goals import matched_on_events, prop_text
from tracker.stats.periods import local_date, local_midnight_ms, make_period
from tracker.stats.query import Query
from tracker.stats.rollups import bucket_source, rollups_hold
from tracker.storage.changes import COMMIT_WITHIN_MS, changed_visitors

if TYPE_CHECKING:
    from tracker.config import Settings
    from tracker.db import Database

log = logging.getLogger(__name__)

# The database's settings, which every connection to it starts with; `configure` sets
# threads and memory from the settings (columnar_threads, columnar_memory_limit).
# Nothing is ever loaded or downloaded at run time (air-gapped servers): every DuckDB of
# the project, the readers' here and the parts' writer (tracker.columnar.export).
NO_EXTENSIONS: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
CONFIG: dict[str, Any] = {
    # One thread per report: a page's cards are concurrent requests over two workers
    # (docs/ARCHITECTURE.md, "Columnar store: reading", has the measurements behind it).
    "threads": 1,
    "memory_limit": "1GB",
    **NO_EXTENSIONS,
    # Never spilled to disk (an in-memory database would write into the working
    # directory): past memory_limit a report stops, and says so.
    "temp_directory": "",
}
# Seconds a report may read the store (columnar_timeout_seconds); 0: no limit.
TIMEOUT_S = 10.0
# The name the database's rows are registered under on a DuckDB connection.
LIVE = "live_buckets"
# The temporary table of the parts' per-bucket rows, summed while the database reads.
CLOSED = "closed_buckets"
# The temporary tables of the path numbers a page filter keeps or drops are named from it;
# up to INLINE_NUMBERS of them are written into the statement instead.
PAGE_NUMBERS = "page_numbers"
INLINE_NUMBERS = 100
# Page filters compare path numbers only for a site with more paths than this: fewer are
# read from the parts' small dictionaries about as fast as numbers, and matching the
# filter on the dictionary first cost more than it saved (the default bench dataset's 327
# paths: its 40 page-filtered reports 1,782 -> 1,899 ms of CPU; 100k paths: 3,930 -> 3,228).
NUMBERED_FILTERS_FROM = 10_000
# The name the visitors changed since their provisional parts' snapshot are registered
# under: those parts' rows of them are left out, the database reads them instead.
CHANGED = "changed_visitors"
# At most this many changed visitors are read from the database beside provisional parts;
# past it (an import into yesterday, say) the database reads those days whole.
MAX_CHANGED = 5_000
# Threads per process reading the days not closed yet while DuckDB scans the parts.
LIVE_READERS = 4
# PostgreSQL reads the open days (a few days' rows, beside DuckDB's sums) without parallel
# workers, for the rest of the request's transaction: the workers' start and their share of
# the cores cost more than they saved (1M bench dataset, 2 cores, load ~4, wall ms with /
# without: `event:page!=/` headline 221 -> 162, `country!=JP` by page 120 -> 87, by day
# under `page~/` 150 -> 101).
SERIAL_READ = "SET LOCAL max_parallel_workers_per_gather = 0"
# Parts are immutable: their footers are read once per process. (The Parquet reader's
# option, known only once the database is open.)
CACHE_FOOTERS = "SET GLOBAL parquet_metadata_cache = true"
# Where each database of record puts NULLs when an ORDER BY does not say: rows tied on
# every sort key must come out in the same order from DuckDB.
NULL_ORDER = {
    "sqlite": "nulls_first_on_asc_last_on_desc",
    "postgresql": "nulls_last_on_asc_first_on_desc",
}
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class DuckCompiler(PGCompiler):
    """PostgreSQL's SQL for DuckDB, with two differences.

    Integer division: DuckDB's `/` is float division, `//` divides integers (truncating,
    as SQLite's and PostgreSQL's `/` do).

    Integers are written into the SQL, text stays a bound parameter: DuckDB accepts no
    parameter in GROUP BY (a month's first day, constant over a one-month period) nor an
    expression selected and grouped by unless both are the same text. An int renders as
    digits only, so no value a user typed becomes SQL; cast, so a constant grouped or
    ordered by is not read as a column's position.
    """

    def visit_floordiv_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        return f"({self.process(binary.left, **kw)} // {self.process(binary.right, **kw)})"

    def visit_bindparam(self, bindparam: Any, *args: Any, **kw: Any) -> Any:
        value = bindparam.effective_value
        if type(value) is int:  # not bool, a subclass
            return f"CAST({value} AS BIGINT)"
        return super().visit_bindparam(bindparam, *args, **kw)


_ASCII_FOLD = str.maketrans(_UPPER, _UPPER.lower())
_ASCII_LETTERS = frozenset(_UPPER + _UPPER.lower())


def _ascii_lower(sql: str) -> str:
    """SQL lowering the ASCII letters of a column only. DuckDB's translate() is slow (2 s
    over 1M paths): only text with other characters (more bytes than characters) goes
    through it; lower() folds pure ASCII text the same way, 50 times faster."""
    folded = f"translate({sql}, '{_UPPER}', '{_UPPER.lower()}')"
    return f"CASE WHEN strlen({sql}) = length({sql}) THEN lower({sql}) ELSE {folded} END"


class SqliteDuckCompiler(DuckCompiler):
    """SQLite's lower() and case-insensitive LIKE fold ASCII letters only (`É` stays `É`);
    DuckDB's fold every letter, so a `contains` filter or a source pattern would match
    more rows than the raw path does on SQLite."""

    def visit_lower_func(self, fn: Any, **kw: Any) -> str:
        return _ascii_lower(self.process(fn.clauses, **kw))

    def visit_ilike_op_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        return self._folded_like(binary, "LIKE", **kw)

    def visit_not_ilike_op_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        return self._folded_like(binary, "NOT LIKE", **kw)

    def _folded_like(self, binary: Any, op: str, **kw: Any) -> str:
        # The column on the left, the pattern (a bound value) folded here: a constant
        # pattern keeps DuckDB's fast LIKE.
        text = self.process(binary.left, **kw)
        pattern = str(binary.right.effective_value).translate(_ASCII_FOLD)
        right = self.process(literal(pattern, Text()), **kw)
        escape = binary.modifiers.get("escape")
        tail = "" if escape is None else " ESCAPE " + self.render_literal_value(escape, Text())
        if not _ASCII_LETTERS.intersection(pattern):
            # Nothing to fold: one LIKE, which DuckDB runs in the scan (1M events, 100k
            # paths: `event:page~/` by source 127 -> 101 ms).
            return f"{text} {op} {right}{tail}"
        if not pattern.isascii():
            folded = f"{_ascii_lower(text)} {op} {right}{tail}"
        else:
            # An ASCII pattern and ASCII text: DuckDB's ILIKE folds both as SQLite does,
            # without lower()'s copy of every value (40 -> 29 ms CPU over 870k paths). Only
            # ASCII patterns: DuckDB lowers some other letters into ASCII ones (the Kelvin
            # sign).
            translated = f"translate({text}, '{_UPPER}', '{_UPPER.lower()}')"
            ascii_op = op.replace("LIKE", "ILIKE")
            folded = (
                f"CASE WHEN strlen({text}) = length({text}) THEN {text} {ascii_op} {right}{tail}"
                f" ELSE {translated} {op} {right}{tail} END"
            )
        if op != "LIKE":
            return folded
        # Whatever SQLite's fold matches, DuckDB's ILIKE matches too (it lowers every letter
        # of both sides, and the patterns' only wildcard is %, which takes any length): a
        # condition DuckDB runs in the scan, so the fold reads only the rows it keeps.
        return f"({text} ILIKE {right}{tail} AND {folded})"


@compiles(prop_text, "duckdb")
def _prop_text_duckdb(element: prop_text, compiler: Any, **kw: Any) -> str:
    """A property's text, as both databases read it (property values are always text).
    The key always inside a quoted JSON path: DuckDB reads a bare key starting with `$`
    or `/` as a path of its own."""
    column, key = element.clauses
    path = literal('$."', String) + key + literal('"', String)
    return f"({compiler.process(column, **kw)} ->> ({compiler.process(path, **kw)}))"


class DuckTypeCompiler(PGTypeCompiler):
    """DuckDB's FLOAT is single precision and its bare NUMERIC a DECIMAL(18,3); metric sort
    keys divide in double precision on both databases of record, so DuckDB must too."""

    def visit_FLOAT(self, type_: Any, **kw: Any) -> str:  # noqa: N802 - SQLAlchemy's name
        return "DOUBLE"

    def visit_NUMERIC(self, type_: Any, **kw: Any) -> str:  # noqa: N802 - SQLAlchemy's name
        return "DOUBLE"


class DuckDialect(PGDialect):
    """Statements for DuckDB, agreeing with PostgreSQL where DuckDB's SQL differs."""

    name = "duckdb"
    default_paramstyle = "qmark"
    statement_compiler = DuckCompiler
    type_compiler_cls = DuckTypeCompiler


class SqliteDuckDialect(DuckDialect):
    """Statements for DuckDB, agreeing with SQLite where its functions differ."""

    statement_compiler = SqliteDuckCompiler


DIALECTS = {"sqlite": SqliteDuckDialect(), "postgresql": DuckDialect()}


def compiled(stmt: Select, record: str) -> tuple[str, list[Any]]:
    """SQL for DuckDB, with the semantics of the database of record (its dialect name),
    and its bound values in order: user values are never inlined."""
    comp = stmt.compile(dialect=DIALECTS[record], compile_kwargs={"render_postcompile": True})
    return str(comp), [comp.params[name] for name in comp.positiontup or ()]


class StoreLimit(Exception):
    """A report the columnar store stopped: past its time or memory limit. The request
    answers 503 with this sentence (tracker.web.database); the database is not asked
    instead, as a raw scan of the same days would take longer still."""


def configure(*, threads: int, memory_limit: str, timeout_s: float) -> None:
    """This process's limits, from the settings; a database already open takes them too."""
    global TIMEOUT_S
    CONFIG.update(threads=max(1, int(threads)), memory_limit=str(memory_limit))
    TIMEOUT_S = float(timeout_s)
    with _process_lock:
        process = _process
    if process is not None and process.pid == os.getpid():
        process.apply_limits()


def configure_from(settings: Settings) -> None:
    """`configure` with the settings' limits."""
    configure(
        threads=settings.columnar_threads,
        memory_limit=settings.columnar_memory_limit,
        timeout_s=settings.columnar_timeout_seconds,
    )


def attach(db: Database, settings: Settings) -> Database:
    """`db`, its reports reading the settings' data directory's store, with their limits
    (the app's database, a CLI command's)."""
    db.columnar_root = store_root(settings.data_dir)
    configure_from(settings)
    return db


class _Process:
    """This process's DuckDB database, and each thread's connection to it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.database = duckdb.connect(":memory:", config=CONFIG)
        self.database.execute(CACHE_FOOTERS)
        self.local = threading.local()

    def apply_limits(self) -> None:
        self.database.execute(f"SET GLOBAL threads = {int(CONFIG['threads'])}")
        self.database.execute("SET GLOBAL memory_limit = ?", [CONFIG["memory_limit"]])

    def connection(self) -> duckdb.DuckDBPyConnection:
        found = getattr(self.local, "connection", None)
        if found is None:
            found = self.local.connection = self.database.cursor()
        return found


_process: _Process | None = None
_process_lock = threading.Lock()
# A forked child's copy of its parent's database: kept, never closed there (closing would
# wait for threads the child does not have).
_inherited: list[_Process] = []


@atexit.register
def _release() -> None:
    """Lets go of this process's database (and every thread's connection to it) before
    the interpreter ends: DuckDB's bindings report each of their objects still alive then
    as a leak, about forty lines on stderr from a process that had read the store (the
    jobs' reports, a command, the bench). A forked parent's copy is kept (`_inherited`)."""
    global _process
    with _process_lock:
        if _process is not None and _process.pid == os.getpid():
            _process = None


def connection() -> duckdb.DuckDBPyConnection:
    """The calling thread's DuckDB connection; a forked child makes its own database."""
    global _process
    with _process_lock:
        if _process is not None and _process.pid != os.getpid():
            _inherited.append(_process)
            _process = None
        if _process is None:
            _process = _Process()
        process = _process
    return process.connection()


# Per process: each manifest read, by path, with the identity of the file it was read from.
_manifests: dict[Path, tuple[FileVersion, Manifest | None]] = {}


def current_manifest(root: Path, site_id: int) -> Manifest | None:
    """The site's manifest, read again only when the file was replaced."""
    path = site_dir(root, site_id) / MANIFEST
    identity = file_version(path)
    if identity is None:
        return None
    cached = _manifests.get(path)
    if cached is not None and cached[0] == identity:
        return cached[1]
    manifest = read_manifest(root, site_id)
    _manifests[path] = (identity, manifest)
    return manifest


def forget_manifest(root: Path, site_id: int) -> None:
    _manifests.pop(site_dir(root, site_id) / MANIFEST, None)


@dataclass(frozen=True)
class Held:
    """What a site's parts answer for: the visits started before `until_ms`, but for the
    `changed` visitors' visits started from `provisional_ms` on (in provisional parts, and
    changed since their snapshot: tracker.storage.changes), read from the database."""

    until_ms: int
    provisional_ms: int
    changed: tuple[int, ...] = ()


def held(conn: Connection, manifest: Manifest, end_ms: int) -> Held:
    """The manifest's closed days, and its provisional ones unless the writer changed more
    than MAX_CHANGED of their visitors since (then the database reads those days), for a
    period ending at `end_ms` (a local midnight)."""
    complete = manifest.complete_until_ms
    closed_only = Held(complete, complete)
    if not manifest.has_provisional or end_ms <= complete:
        return closed_only
    snapshots = {p.first_day: p.snapshot_ms for p in manifest.parts if p.provisional}
    # Per day, the changes from its part's snapshot on, less a transaction's length (all
    # of a day without a part: it had no visits then).
    days = [
        (day * DAY_MS, (day + 1) * DAY_MS, max(0, snapshots.get(day, 0) - COMMIT_WITHIN_MS))
        for day in range(complete // DAY_MS, manifest.provisional_until_ms // DAY_MS)
    ]
    changed = changed_visitors(conn, manifest.site_id, days)
    if len(changed) > MAX_CHANGED:
        return closed_only
    return Held(manifest.provisional_until_ms, complete, tuple(changed))


def split_ms(until_ms: int, query: Query) -> int:
    """The last local midnight at or before `until_ms`: the visits started before it are
    in the parts, in whole local days."""
    tz = query.site.tz
    return local_midnight_ms(local_date(until_ms, tz), tz)


def _days(query: Query, start_ms: int, end_ms: int) -> Query:
    """The query over the local days from start_ms to end_ms (local midnights)."""
    tz = query.site.tz
    last = local_date(end_ms - 1, tz)
    period = make_period("custom", local_date(start_ms, tz), last, tz)
    return dataclasses.replace(query, period=period)


def answer(
    conn: Connection,
    root: Path,
    query: Query,
    plan: Plan,
    extra: ColumnElement[bool] | None = None,
) -> tuple[list[dict[str, Any]], str] | None:
    """`outer`'s rows (k0.., parts) and which path answered ("columnar", "columnar+live"),
    or None where the store cannot help: nothing built for the period's first day, rollups
    holding every closed day already, or parts that cannot be read."""
    # Parts hold whole days: a period cut at a time of day is answered by the database.
    if query.period.cut:
        return None
    for attempt in range(2):
        manifest = current_manifest(root, query.site.id)
        if manifest is None:
            return None
        try:
            return _answer(conn, root, manifest, query, plan, extra)
        except duckdb.InterruptException:
            raise StoreLimit(
                f"This report took longer than {TIMEOUT_S:g} seconds and was stopped;"
                " try a shorter period or fewer filters."
            ) from None
        except duckdb.OutOfMemoryException:
            log.warning("columnar store of site %s: past memory_limit", query.site.id)
            raise StoreLimit(
                f"This report needed more than {CONFIG['memory_limit']} of memory and was"
                " stopped; try a shorter period or fewer filters."
            ) from None
        except duckdb.IOException:
            # A part replaced by the builder (and deleted) since the manifest was read.
            forget_manifest(root, query.site.id)
            if attempt:
                log.warning("columnar store of site %s unreadable in %s", query.site.id, root)
        except duckdb.Error:
            # A damaged part, or a statement DuckDB refuses: the database still answers.
            log.exception("columnar store of site %s failed in %s", query.site.id, root)
            return None
    return None


def _answer(
    conn: Connection,
    root: Path,
    manifest: Manifest,
    query: Query,
    plan: Plan,
    extra: ColumnElement[bool] | None,
) -> tuple[list[dict[str, Any]], str] | None:
    period = query.period
    holding = held(conn, manifest, period.end_ms)
    split = split_ms(holding.until_ms, query)
    if split <= period.start_ms:
        return None
    end = min(split, period.end_ms)
    closed = _days(query, period.start_ms, end)
    if rollups_hold(conn, closed, plan, extra):
        return None
    record = conn.dialect.name
    reads = Reads(
        open_days=_days(query, split, period.end_ms) if split < period.end_ms else None,
        changed=_changed_read(closed, plan, holding, extra, end),
    )
    if reads.open_days is None and reads.changed is None:
        rows = sums(root, manifest, query, plan, split, None, extra, record=record)
        return rows, "columnar"
    live: Future[Sequence[Any]] | Sequence[Any]
    if record == "postgresql":
        # The server reads the open days while DuckDB sums the parts (it lets go of the
        # GIL): the request waits for the longer of the two, not their sum. The connection
        # is the reader's alone until it is done.
        live = _live_readers().submit(
            contextvars.copy_context().run,  # the request's statement timeout
            _live_rows,
            conn,
            reads,
            plan,
            extra,
        )
    else:
        # SQLite reads in this process: overlapped with DuckDB it saved no time on two
        # busy cores and cost 5 % more CPU (1M bench dataset, load ~9).
        live = _live_rows(conn, reads, plan, extra)
    try:
        rows = sums(
            root, manifest, query, plan, split, live, extra, record=record, changed=holding.changed
        )
    finally:
        if isinstance(live, Future):
            wait([live])
    return rows, "columnar+live"


@dataclass(frozen=True)
class Reads:
    """What the database reads beside the parts: the days after the split (`open_days`),
    and the per-bucket rows of the changed visitors' visits of provisional parts."""

    open_days: Query | None
    changed: Select | None


def _changed_read(
    closed: Query, plan: Plan, holding: Held, extra: ColumnElement[bool] | None, end: int
) -> Select | None:
    """The changed visitors' visits within `closed` (the parts' days, to `end`), or None
    when there are none there."""
    start = max(closed.period.start_ms, holding.provisional_ms)
    if not holding.changed or start >= end:
        return None
    kept = visits.c.visitor_id.in_(holding.changed)
    return raw_buckets(closed, plan, [(start, end)], kept if extra is None else and_(extra, kept))


def _live_rows(
    conn: Connection, reads: Reads, plan: Plan, extra: ColumnElement[bool] | None
) -> Sequence[Any]:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(SERIAL_READ)
    rows: list[Any] = []
    if reads.open_days is not None:
        rows += conn.execute(_live_source(conn, reads.open_days, plan, extra)).all()
    if reads.changed is not None:
        rows += conn.execute(reads.changed).all()
    return rows


_readers: tuple[int, ThreadPoolExecutor] | None = None
_readers_lock = threading.Lock()


def _live_readers() -> ThreadPoolExecutor:
    """This process's readers of the open days (a forked child makes its own)."""
    global _readers
    with _readers_lock:
        if _readers is None or _readers[0] != os.getpid():
            _readers = (os.getpid(), ThreadPoolExecutor(LIVE_READERS, "columnar-live"))
        return _readers[1]


def _live_source(
    conn: Connection, query: Query, plan: Plan, extra: ColumnElement[bool] | None
) -> Select | CompoundSelect:
    """The database's per-bucket rows of the days not closed yet (`query`'s period).

    On PostgreSQL raw events are also bounded by their own time: a visit's events come at
    or after its start (the collector keeps started_ms its events' earliest time), so this
    selects the same rows. TRICKY: bounded by the visits' start alone, PostgreSQL scanned
    every event of the site and hashed them against the few visits of these days (1M
    events, two open days, `event:page!=/`: 1.1 s, two parallel workers); by the events'
    time it reads these days' events by ix_events_site_time. SQLite already reads them by
    the visits' index; bounded, it read every open day's event instead (a page breakdown
    under a rare source: 111 -> 128 ms CPU, 24-34 % more under other rare visit filters)."""
    source, used = bucket_source(conn, query, plan, extra)
    if conn.dialect.name != "postgresql" or used != "raw" or not needs_events(query, plan.parts):
        return source
    since = and_(events.c.site_id == query.site.id, events.c.timestamp_ms >= query.period.start_ms)
    bound = since if extra is None else and_(extra, since)
    return raw_buckets(query, plan, [(query.period.start_ms, query.period.end_ms)], bound)


def _live_table(rows: Sequence[Any], plan: Plan) -> pa.Table:
    """The database's per-bucket rows, typed as DuckDB computes the parts' own (text
    dimensions, integer bucket and sums; PostgreSQL's sums come as decimals)."""
    names = [*(dim_key(i) for i in range(len(plan.dims))), "bucket", *plan.parts]
    mappings: list[Mapping[str, Any]] = [row._mapping for row in rows]
    arrays = []
    for index, name in enumerate(names):
        values = [m[name] for m in mappings]
        if index < len(plan.dims):
            arrays.append(pa.array(values, pa.string()))
        else:
            arrays.append(pa.array([None if v is None else int(v) for v in values], pa.int64()))
    return pa.table(arrays, names=names)


def _bucket_rows(name: str, plan: Plan) -> Select:
    """The per-bucket rows (d0.., bucket, parts) of DuckDB's table or view `name`."""
    dims = [column(dim_key(i), Text) for i in range(len(plan.dims))]
    sums = [column(p, BigInteger) for p in plan.parts]
    return select(table(name, *dims, column("bucket", BigInteger), *sums))


def quoted_path(path: Path) -> str:
    """A file's path as a DuckDB string literal."""
    return "'" + str(path).replace("'", "''") + "'"


# The column each table's rows are kept in a period by (`_views`).
_STARTED = {"visits": "started_ms", "events": "visit_started_ms"}


def _views(
    duck: duckdb.DuckDBPyConnection,
    directory: Path,
    parts: Sequence[Part],
    changed: bool,
    span: tuple[int, int],
) -> None:
    """`visits` and `events` of this connection: the rows of exactly these parts whose
    visit started within `span` (UTC ms), so statements compare no row's site or start
    (`raw_buckets` without ranges); `changed`: but those of the visitors in CHANGED from
    provisional parts. Made again only when these differ from the connection's last call
    (a page's cards ask for the same period, and its views cost a few ms to make).

    Rows are compared to `span` only when it cuts a part: DuckDB reads and compares every
    row of a filtered column even where the row group's bounds make it true (10M events,
    a month's part: 85 ms of one core). Then every part's are: a view reading the cut parts
    apart (UNION ALL) costs more than it saves, as DuckDB then buffers a window over it
    instead of streaming it (10M, `event:page==/*` headline: 840-1,030 -> 920-1,040 ms).

    TRICKY: the provisional parts' rows come after the others', each part's in its order
    (DuckDB keeps the order of a UNION ALL's sides where it matters), and a visitor's
    visits are left out whole, so a visit's events stay together (`visit_ordered_buckets`)
    and the parts' per-visitor flags hold for the visitors kept."""
    files = (changed, span, *(str(directory / getattr(p, n)) for n in TABLES for p in parts))
    local = _thread_state()
    if getattr(local, "views", None) == files:
        return
    local.views = None
    start, end = span
    cut = any(p.start_ms < start or end < p.end_ms for p in parts)
    kept = [p for p in parts if not (changed and p.provisional)]
    left = [p for p in parts if changed and p.provisional]
    for name in TABLES:
        bounds = [f"{_STARTED[name]} >= {int(start)}", f"{_STARTED[name]} < {int(end)}"]
        within = bounds if cut else []
        sides = [_scan(directory, kept, name, within)] if kept else []
        if left:
            unchanged = f"visitor_id NOT IN (SELECT visitor_id FROM {CHANGED})"
            sides.append(_scan(directory, left, name, [*within, unchanged]))
        duck.execute(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {' UNION ALL '.join(sides)}")
    local.views = files


def _path_dictionary(duck: duckdb.DuckDBPyConnection, file: Path) -> int:
    """`paths` of this connection: the site's path dictionary (compiler.stored_paths) held
    in memory, read again only when the file is another (page filters and breakdowns read
    it whole: 100k paths read from the file cost each of them ~5 ms); how many paths."""
    local = _thread_state()
    if getattr(local, "paths", None) != file:
        local.paths = None
        duck.execute(
            f"CREATE OR REPLACE TEMPORARY TABLE {stored_paths.name}"
            f" AS FROM read_parquet({quoted_path(file)})"
        )
        ((count,),) = duck.execute(f"SELECT count(*) FROM {stored_paths.name}").fetchall()
        local.paths, local.path_count = file, int(count)
    paths: int = local.path_count
    return paths


def _page_filters_by_number(
    duck: duckdb.DuckDBPyConnection, stmt: Select, record: str, paths: int
) -> tuple[Select, list[str]]:
    """`stmt` with each filter on the page of the store's events answered by path number
    (`events.path_id`) where the site has many paths (NUMBERED_FILTERS_FROM), and the
    temporary tables it then reads. Each filter is matched once on the site's `paths`
    dictionary (of `paths` paths): every path kept, no filter; none, nothing; else the
    numbers of the fewer of the paths kept and those dropped. Comparing numbers spares
    reading the path of every event (the wide dataset's 100k paths, process CPU,
    alternating runs: the 40 page-filtered reports 3,930 -> 3,228 ms; `page~/` headline
    142 -> 106, a rare contains by page 107 -> 76). Exact: the same filter, run by the
    same DuckDB, on the same paths."""
    if paths <= NUMBERED_FILTERS_FROM:
        return stmt, []
    marked = {
        e.filter
        for e in iterate(stmt)
        if isinstance(e, FilterClause)
        and e.filter.dimension == PAGE
        and any(c is stored_events.c.path for c in iterate(e.clause))
    }
    by_number: dict[Filter, ColumnElement[bool]] = {}
    tables: list[str] = []
    for index, flt in enumerate(sorted(marked, key=repr)):
        by_number[flt], made = _numbers_clause(duck, flt, f"{PAGE_NUMBERS}_{index}", record, paths)
        tables += made

    def replaced(element: Any, **_: Any) -> Any:
        if isinstance(element, FilterClause) and element.filter in by_number:
            return by_number[element.filter]
        return None

    return typed(Select, replacement_traverse(stmt, {}, replaced)), tables


def _numbers_clause(
    duck: duckdb.DuckDBPyConnection, flt: Filter, name: str, record: str, paths: int
) -> tuple[ColumnElement[bool], list[str]]:
    """The events the page filter keeps, by path number, and the temporary tables made
    for it. The paths it keeps are counted; the fewer of those and the others (of all
    `paths`) are numbered: up to INLINE_NUMBERS written into the statement, which DuckDB
    compares in the scan (a join to the one number `page!=/` drops cost more than reading
    every path: its headline on the wide dataset 148 against 130 ms), more kept in the
    temporary table `name`."""
    keeps = compile_filter(flt, lambda _: stored_paths.c.path)
    counted, params = compiled(select(func.count().filter(keeps)).select_from(stored_paths), record)
    ((kept,),) = duck.execute(counted, params).fetchall()
    if kept in (0, paths):
        return (true() if kept else false()), []
    keeping = kept <= paths // 2
    found = select(stored_paths.c[PATH_ID]).where(keeps if keeping else not_(keeps))
    sql, params = compiled(found, record)
    number = stored_events.c[PATH_ID]
    if min(kept, paths - kept) <= INLINE_NUMBERS:
        numbers: Select | list[ColumnElement[int]] = [
            literal(n, BigInteger) for (n,) in duck.execute(sql, params).fetchall()
        ]
        tables = []
    else:
        duck.execute(f"CREATE OR REPLACE TEMPORARY TABLE {name} AS {sql}", params)
        numbers, tables = select(table(name, column(PATH_ID, BigInteger)).c[PATH_ID]), [name]
    return (number.in_(numbers) if keeping else number.not_in(numbers)), tables


def _scan(directory: Path, parts: Sequence[Part], table_name: str, where: list[str]) -> str:
    named = ", ".join(quoted_path(directory / getattr(p, table_name)) for p in parts)
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT * FROM read_parquet([{named}]){condition}"


def _thread_state() -> threading.local:
    """The calling thread's state beside its connection (`connection` made both)."""
    assert _process is not None
    return _process.local


class _Watchdog:
    """One thread per process interrupting the statements past their deadline (a timer
    thread per statement cost milliseconds to start on a busy machine)."""

    def __init__(self) -> None:
        self.due: dict[int, tuple[float, duckdb.DuckDBPyConnection]] = {}
        self.changed = threading.Condition()
        self.tokens = itertools.count()
        self.pid = 0

    def watch(self, duck: duckdb.DuckDBPyConnection, seconds: float) -> int:
        with self.changed:
            if self.pid != os.getpid():  # none yet, or the parent's before a fork
                self.pid, self.due = os.getpid(), {}
                threading.Thread(target=self._run, name="duckdb-watchdog", daemon=True).start()
            token = next(self.tokens)
            self.due[token] = (time.monotonic() + seconds, duck)
            self.changed.notify()
            return token

    def done(self, token: int) -> None:
        with self.changed:
            self.due.pop(token, None)

    def stop(self) -> None:
        """Ends the thread (at exit: a thread still waiting then keeps DuckDB's objects)."""
        with self.changed:
            self.pid = -1
            self.changed.notify()

    def _run(self) -> None:
        with self.changed:
            while self.pid == os.getpid():
                now = time.monotonic()
                expired = [t for t, (deadline, _) in self.due.items() if deadline <= now]
                for token in expired:
                    self.due.pop(token)[1].interrupt()
                nearest = min((d for d, _ in self.due.values()), default=None)
                self.changed.wait(None if nearest is None else max(0.0, nearest - now))


_watchdog = _Watchdog()
atexit.register(_watchdog.stop)


@contextmanager
def _deadline(duck: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Interrupts the connection's statement once TIMEOUT_S have passed (DuckDB then
    raises InterruptException)."""
    if TIMEOUT_S <= 0:
        yield
        return
    token = _watchdog.watch(duck, TIMEOUT_S)
    try:
        yield
    finally:
        _watchdog.done(token)


def sums(
    root: Path,
    manifest: Manifest,
    query: Query,
    plan: Plan,
    split: int,
    live: Future[Sequence[Any]] | Sequence[Any] | None,
    extra: ColumnElement[bool] | None = None,
    *,
    record: str,
    changed: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """`outer`'s rows over the parts' visits started from the period's start to `split`
    (but the `changed` visitors' of provisional parts) and the database's per-bucket
    `live` rows; duckdb.IOException when a part is gone. `live` being read still (a
    Future): the parts' rows are summed per bucket meanwhile, into a temporary table, then
    both sides once the database has answered."""
    period = query.period
    end = min(split, period.end_ms)
    parts = manifest.covering(period.start_ms, end)
    duck = connection()
    duck.execute(f"SET default_null_order = '{NULL_ORDER[record]}'")
    pending = isinstance(live, Future)
    sides: list[Select] = []
    numbered: list[str] = []
    try:
        if parts:
            if changed:
                duck.register(CHANGED, pa.table({"visitor_id": pa.array(changed, pa.int64())}))
            span = (period.start_ms, end)
            directory = site_dir(root, manifest.site_id)
            _views(duck, directory, parts, bool(changed), span)
            paths = _path_dictionary(duck, directory / manifest.paths)
            # Goals are read from the visits' bits, or matched on the parts' events where
            # a part has no bit for one (goal_hits is the database's).
            goals_read = matched_on_events(query, [p.goals for p in parts])
            constant = set.intersection(*(set(p.visitor_constant) for p in parts))
            closed = raw_buckets(goals_read, plan, None, extra, direct=True, constant=constant)
            closed, numbered = _page_filters_by_number(duck, closed, record, paths)
            if pending:
                sql, params = compiled(closed, record)
                with _deadline(duck):
                    duck.execute(f"CREATE OR REPLACE TEMPORARY TABLE {CLOSED} AS {sql}", params)
                closed = _bucket_rows(CLOSED, plan)
            sides.append(closed)
        rows = live.result() if isinstance(live, Future) else live
        if rows:
            duck.register(LIVE, _live_table(rows, plan))
            sides.append(_bucket_rows(LIVE, plan))
        if not sides:
            return []
        source: Select | CompoundSelect = sides[0] if len(sides) == 1 else union_all(*sides)
        sql, params = compiled(outer(query, plan, source), record)
        with _deadline(duck):
            cursor = duck.execute(sql, params)
            names = [d[0] for d in cursor.description or ()]
            found = cursor.fetchall()
        return [dict(zip(names, row, strict=True)) for row in found]
    finally:
        duck.unregister(LIVE)
        duck.unregister(CHANGED)
        if pending and parts:
            duck.execute(f"DROP TABLE IF EXISTS {CLOSED}")
        for name in numbered:
            duck.execute(f"DROP TABLE {name}")
