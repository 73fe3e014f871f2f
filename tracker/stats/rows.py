"""Raw rows behind a Query, for export: its events or its visits, streamed in batches.

The selection is every report's (see compiler.raw_buckets): the visits that started in the
period and match the filters, with all their events; an event filter keeps the matching
events only (and the visits having one). So an export adds up to the page's numbers:
pageview rows are the pageviews, distinct visit ids the visits, and so on.

Rows are read through a server-side cursor (PostgreSQL) or SQLite's lazy cursor, a batch at
a time, so memory stays flat at any size. The database renders the cells (cells.py); a row
that needs no quotes and no formula neutralising comes as its CSV line, read and checked in
C, and only the other rows come cell by cell, so little Python runs per row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Text,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    null,
    select,
)

from tracker.db import Database
from tracker.money import minor_digits
from tracker.stats.cells import (
    FORMULA_STARTS,
    TEXT_SEP,
    TEXTUAL,
    Kind,
    cells,
    delimited,
)
from tracker.stats.compiler import column_filters, dimension_column, event_kinds, events, visits
from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.filters import compile_filters
from tracker.stats.goals import goal_clause, matches, with_goals
from tracker.stats.query import Query

BATCH_ROWS = 5000

_EVENT_OWN = (
    "timestamp_ms", "kind", "name", "path", "hostname", "query", "title", "referrer",
    "target", "props", "engaged_ms", "scroll", "time_on_page_ms", "visit_id", "visitor_id",
    "revenue_currency",
)  # fmt: skip
_VISIT_FACTS = (
    "source", "channel", "utm_source", "utm_medium", "utm_campaign", "utm_term",
    "utm_content", "country", "region", "city", "browser", "browser_version", "os",
    "os_version", "device", "screen",
)  # fmt: skip

# The fields `event_rows` and `visit_rows` can render: an event's own and its visit's facts;
# a visit's columns.
VISIT_FIELDS: tuple[str, ...] = tuple(c.name for c in visits.columns if c.name != "site_id")

# One batch of rows, in order, as pieces: a str is the CSV text (with line ends) of rows that
# need no quotes and no neutralising; a tuple is one row's cell values, for the CSV writer.
Batch = Sequence[str | tuple[Any, ...]]
Columns = Sequence[tuple[str, Kind]]


def _visit_clauses(query: Query) -> list[ColumnElement[bool]]:
    return [
        visits.c.site_id == query.site.id,
        visits.c.started_ms >= query.period.start_ms,
        visits.c.started_ms < query.period.end_ms,
    ]


def _split_filters(query: Query) -> tuple[ColumnElement[bool] | None, ColumnElement[bool] | None]:
    """(visit filters, event filters with the event kinds they imply) as SQL clauses."""
    plain = column_filters(query)
    on_visits = tuple(f for f in plain if not DIMENSIONS[f.dimension].is_event)
    on_events = tuple(f for f in plain if DIMENSIONS[f.dimension].is_event)
    event_clause = compile_filters(on_events, dimension_column)
    kinds = event_kinds(query)
    if kinds is not None:
        kind_clause = events.c.kind.in_(kinds) if kinds else false()
        event_clause = kind_clause if event_clause is None else event_clause & kind_clause
    visit_clause = compile_filters(on_visits, dimension_column)
    converted = goal_clause(query)  # a goal filter keeps whole visits that converted
    if converted is not None:
        visit_clause = converted if visit_clause is None else visit_clause & converted
    return visit_clause, event_clause


def events_statement(query: Query) -> Select:
    """The query's events joined to their visits, in time order."""
    visit_filter, event_filter = _split_filters(query)
    where = _visit_clauses(query)
    last_event = select(func.max(visits.c.last_ms)).where(*where).scalar_subquery()
    # TRICKY: the events' own (site, time) bounds add nothing to the result (a visit's
    # events fall between its start and its last event) but let the database walk the
    # events index in time order instead of sorting every row of the period.
    where += [
        events.c.site_id == query.site.id,
        events.c.timestamp_ms >= query.period.start_ms,
        events.c.timestamp_ms <= last_event,
    ]
    where += [c for c in (visit_filter, event_filter) if c is not None]
    return _all_events().where(*where).order_by(events.c.timestamp_ms, events.c.id)


def revenue_text(minor: ColumnElement, currency: ColumnElement) -> ColumnElement:
    """Integer minor units as the decimal text of their currency: 4250 EUR -> "42.50",
    1000 JPY -> "1000", 1234 KWD -> "1.234"; NULL stays NULL. Exact (integer arithmetic),
    the same text on SQLite and PostgreSQL; amounts are never negative."""
    by_places: dict[int, list[str]] = {}
    for code, places in minor_digits().items():
        by_places.setdefault(places, []).append(code)

    def text(places: int) -> ColumnElement:
        if places == 0:
            return cast(minor, Text)
        unit = 10**places  # the fraction, zero-padded: substr of unit + fraction past its "1"
        fraction = func.substr(cast(literal(unit) + minor % unit, Text), 2)
        return cast(minor // unit, Text) + "." + fraction

    whens: list[tuple[ColumnElement[bool], ColumnElement]] = [(minor.is_(None), null())]
    whens += [(currency.in_(codes), text(p)) for p, codes in sorted(by_places.items()) if p != 2]
    return case(*whens, else_=text(2))


def _all_events() -> Select:
    columns = [events.c[name] for name in _EVENT_OWN]
    columns[_EVENT_OWN.index("props")] = cast(events.c.props, Text).label("props")
    columns.append(revenue_text(events.c.revenue_minor, events.c.revenue_currency).label("revenue"))
    return select(*columns, *(visits.c[name] for name in _VISIT_FACTS)).select_from(
        events.join(visits, events.c.visit_id == visits.c.id)
    )


def _all_visits(query: Query) -> Select:
    return select(*(visits.c[name] for name in VISIT_FIELDS), converted_goals(query).label("goals"))


def converted_goals(query: Query) -> ColumnElement:
    """The goals a visit converted on, in the goals' order: `Signup; Purchase` ("" for none)."""
    if not query.goals:
        return literal("", Text)
    named = [
        case(
            (exists().where(events.c.visit_id == visits.c.id, matches(goal)), "; " + goal.name),
            else_="",
        )
        for goal in query.goals
    ]
    joined: ColumnElement = named[0]
    for more in named[1:]:
        joined = joined + more
    return func.substr(joined, 3)


def visits_statement(query: Query) -> Select:
    """The query's visits (with an event filter: those with a matching event), by start."""
    visit_filter, event_filter = _split_filters(query)
    where = _visit_clauses(query)
    if visit_filter is not None:
        where.append(visit_filter)
    if event_filter is not None:
        where.append(exists().where(events.c.visit_id == visits.c.id, event_filter))
    return _all_visits(query).where(*where).order_by(visits.c.started_ms, visits.c.id)


def _span_ms(conn: Connection, query: Query) -> tuple[int, int]:
    """From the period's start to the last event of its visits: the times rows can hold."""
    latest = conn.execute(
        select(func.max(visits.c.last_ms)).where(*_visit_clauses(query))
    ).scalar_one()
    return query.period.start_ms, max(latest or 0, query.period.end_ms)


class _Raw:
    """Core statements compiled once and run on the connection's DBAPI cursor.

    # TRICKY: SQLAlchemy's result handling costs microseconds a row, as much as the rest
    of the export; the values here are plain numbers and strings, so nothing is lost (the
    collector's Bulk writes the same way).
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        self.dbapi = dbapi

    def cursor(self, statement: Select, server_side: bool = False) -> Any:
        compiled = statement.compile(
            dialect=self.conn.dialect, compile_kwargs={"render_postcompile": True}
        )
        params = compiled.construct_params()
        if self.conn.dialect.name == "postgresql":
            # A named cursor is server-side: PostgreSQL sends each batch when asked.
            cursor = self.dbapi.cursor(name="tracker_rows") if server_side else self.dbapi.cursor()
            cursor.execute(compiled.string, params)
        else:
            # SQLite's cursor steps through the result as rows are fetched.
            cursor = self.dbapi.cursor()
            cursor.execute(compiled.string, [params[k] for k in compiled.positiontup or ()])
        return cursor


class _Lines:
    """Splits delimited lines (cells.delimited) into runs that are already CSV (no quotes
    needed, no formula to neutralise: most rows) and the keys of the other rows."""

    def __init__(self, columns: Columns) -> None:
        kinds = [kind for _, kind in columns]
        self.text_seps = sum(kind in TEXTUAL for kind in kinds[1:])
        self.commas = len(kinds) - 1 - self.text_seps
        formula = "[" + re.escape("".join(FORMULA_STARTS)) + "]"
        starts = f"^{formula}|{TEXT_SEP}{formula}" if kinds[0] is Kind.TEXT else TEXT_SEP + formula
        self.formula = re.compile(starts)

    def split(self, rows: Sequence[tuple[str, int]]) -> tuple[list[Any], list[int]]:
        """(pieces: CSV text of runs of rows, and the keys of the others in their place;
        those keys)."""
        pieces: list[Any] = []
        run: list[str] = []
        wanted: list[int] = []
        formula, text_seps, commas = self.formula.search, self.text_seps, self.commas
        for line, key in rows:
            # TRICKY: per-row work is the export's cost, so only C-level tests: the counts
            # prove no value holds a comma or separator, so each separator starts a field.
            if (
                '"' in line
                or "\r" in line
                or "\n" in line
                or line.count(",") != commas
                or line.count(TEXT_SEP) != text_seps
                or formula(line)
            ):
                if run:
                    pieces.append(self._csv(run))
                    run = []
                pieces.append(key)
                wanted.append(key)
            else:
                run.append(line)
        if run:
            pieces.append(self._csv(run))
        return pieces, wanted

    @staticmethod
    def _csv(lines: list[str]) -> str:
        return ("\r\n".join(lines) + "\r\n").replace(TEXT_SEP, ",")


def _stream(
    db: Database,
    query: Query,
    statement: Select,
    rows_by_key: Select,
    key: ColumnElement,
    columns: Columns,
    batch_rows: int,
) -> Iterator[Batch]:
    """`statement`'s rows as pieces of `columns`; rows needing the CSV writer are read
    again by `key` from `rows_by_key` (the same columns, unfiltered), a batch at once."""
    # The connection stays open while the consumer reads. Closing the generator (a client
    # that went away: tracker.export closes it) raises GeneratorExit at the `yield`, where
    # no statement runs: each batch is one FETCH of the server-side cursor, done before the
    # batch is yielded. The cursor is closed (on PostgreSQL, CLOSE of its portal) and the
    # connection goes back to the pool, whose rollback ends the transaction: nothing of the
    # export is left on the server. A connection whose cursor fails to close is dropped.
    with db.engine.connect() as conn:
        span = _span_ms(conn, query)
        raw = _Raw(conn)
        lines = _Lines(columns)
        fast = delimited(statement, columns, query.site.tz, span).add_columns(key)
        slow = cells(rows_by_key, columns, query.site.tz, span).add_columns(key)
        cursor = raw.cursor(fast, server_side=True)
        try:
            while rows := cursor.fetchmany(batch_rows):
                pieces, wanted = lines.split(rows)
                if wanted:
                    again = raw.cursor(slow.where(key.in_(wanted)))
                    try:
                        by_key = {row[-1]: row[:-1] for row in again.fetchall()}
                    finally:
                        again.close()
                    pieces = [by_key[p] if isinstance(p, int) else p for p in pieces]
                yield pieces
        finally:
            try:
                cursor.close()
            except BaseException:
                conn.invalidate()
                raise


def event_rows(
    db: Database, query: Query, columns: Columns, batch_rows: int = BATCH_ROWS
) -> Iterator[Batch]:
    """The query's events, oldest first, as CSV pieces of (field, kind) `columns` (an event's
    own fields and its visit's facts): see Batch."""
    query = _goals_loaded(db, query)
    return _stream(
        db, query, events_statement(query), _all_events(), events.c.id, columns, batch_rows
    )


def visit_rows(
    db: Database, query: Query, columns: Columns, batch_rows: int = BATCH_ROWS
) -> Iterator[Batch]:
    """The query's visits, by start time, as CSV pieces of (field, kind) `columns` (fields
    of VISIT_FIELDS): see Batch."""
    with db.engine.connect() as conn:  # every visit says which goals it converted on
        query = with_goals(conn, query, always=True)
    return _stream(
        db, query, visits_statement(query), _all_visits(query), visits.c.id, columns, batch_rows
    )


def _goals_loaded(db: Database, query: Query) -> Query:
    """A goal filter needs the site's goal definitions before its SQL is built."""
    with db.engine.connect() as conn:
        return with_goals(conn, query)
