"""Raw rows behind a Query, for export: its events or its visits, streamed in batches.

The selection is every report's (see compiler.raw_buckets): the visits that started in the
period and match the filters, with all their events; an event filter keeps the matching
events only (and the visits having one). So an export adds up to the page's numbers:
pageview rows are the pageviews, distinct visit ids the visits, and so on.

Rows are read through a server-side cursor (PostgreSQL) or SQLite's lazy cursor, a batch at
a time, so memory stays flat at any size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, cast, exists, false, func, select

from tracker.db import Database
from tracker.stats.compiler import dimension_column, event_kinds, events, visits
from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.filters import compile_filters
from tracker.stats.query import Query

BATCH_ROWS = 5000

_EVENT_OWN = (
    "timestamp_ms", "kind", "name", "path", "hostname", "query", "title", "referrer",
    "target", "props", "engaged_ms", "scroll", "time_on_page_ms", "visit_id", "visitor_id",
)  # fmt: skip
_VISIT_FACTS = (
    "source", "channel", "utm_source", "utm_medium", "utm_campaign", "utm_term",
    "utm_content", "country", "region", "city", "browser", "browser_version", "os",
    "os_version", "device", "screen",
)  # fmt: skip

# Field names of the rows `event_rows` and `visit_rows` yield, in order.
EVENT_FIELDS: tuple[str, ...] = (*_EVENT_OWN, *_VISIT_FACTS)
VISIT_FIELDS: tuple[str, ...] = tuple(c.name for c in visits.columns if c.name != "site_id")

Batch = Sequence[Sequence[Any]]


def _visit_clauses(query: Query) -> list[ColumnElement[bool]]:
    return [
        visits.c.site_id == query.site.id,
        visits.c.started_ms >= query.period.start_ms,
        visits.c.started_ms < query.period.end_ms,
    ]


def _split_filters(query: Query) -> tuple[ColumnElement[bool] | None, ColumnElement[bool] | None]:
    """(visit filters, event filters with the event kinds they imply) as SQL clauses."""
    on_visits = tuple(f for f in query.filters if not DIMENSIONS[f.dimension].is_event)
    on_events = tuple(f for f in query.filters if DIMENSIONS[f.dimension].is_event)
    event_clause = compile_filters(on_events, dimension_column)
    kinds = event_kinds(query)
    if kinds is not None:
        kind_clause = events.c.kind.in_(kinds) if kinds else false()
        event_clause = kind_clause if event_clause is None else event_clause & kind_clause
    return compile_filters(on_visits, dimension_column), event_clause


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
    columns = [events.c[name] for name in _EVENT_OWN]
    columns[_EVENT_OWN.index("props")] = cast(events.c.props, Text).label("props")
    return (
        select(*columns, *(visits.c[name] for name in _VISIT_FACTS))
        .select_from(events.join(visits, events.c.visit_id == visits.c.id))
        .where(*where)
        .order_by(events.c.timestamp_ms, events.c.id)
    )


def visits_statement(query: Query) -> Select:
    """The query's visits (with an event filter: those with a matching event), by start."""
    visit_filter, event_filter = _split_filters(query)
    where = _visit_clauses(query)
    if visit_filter is not None:
        where.append(visit_filter)
    if event_filter is not None:
        where.append(exists().where(events.c.visit_id == visits.c.id, event_filter))
    return (
        select(*(visits.c[name] for name in VISIT_FIELDS))
        .where(*where)
        .order_by(visits.c.started_ms, visits.c.id)
    )


def _stream(db: Database, statement: Select, batch_rows: int) -> Iterator[Batch]:
    # The connection stays open while the consumer reads; closing the generator (a client
    # that goes away) closes it.
    with db.engine.connect() as conn:
        result = conn.execution_options(yield_per=batch_rows).execute(statement)
        yield from result.partitions()


def event_rows(db: Database, query: Query, batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """Batches of event rows (EVENT_FIELDS) of the query, oldest first."""
    return _stream(db, events_statement(query), batch_rows)


def visit_rows(db: Database, query: Query, batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """Batches of visit rows (VISIT_FIELDS) of the query, by start time."""
    return _stream(db, visits_statement(query), batch_rows)
