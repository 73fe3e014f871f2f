"""A stand-in for the columnar store's builder in tests: one part per UTC day, written
straight from the database rows with pyarrow, the same columns as the tables.

It writes what tracker.columnar.layout promises (every visit started before
`complete_until_ms` in the parts, with all its events), nothing more, so the read side is
tested against the layout alone.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import JSON, Boolean, Integer, Table, Text, cast, select

from tracker.columnar.layout import DAY_MS, Manifest, Part, site_dir, write_manifest
from tracker.db import Database
from tracker.db.models import Event, Visit

visits = Visit.__table__
events = Event.__table__


def _arrow_type(column) -> pa.DataType:
    if isinstance(column.type, Boolean):
        return pa.bool_()
    if isinstance(column.type, Integer):  # BigInteger and SmallInteger too
        return pa.int64()
    return pa.string()  # strings, and JSON as the text the database keeps


def _selected(table: Table) -> list:
    # JSON as its stored text: the raw path groups and filters by that text.
    return [cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in table.c]


def _write(conn, table: Table, stmt, path: Path) -> None:
    rows = conn.execute(stmt).all()
    columns = {
        c.name: pa.array([row._mapping[c.name] for row in rows], _arrow_type(c)) for c in table.c
    }
    pq.write_table(pa.table(columns), path)


def write_store(db: Database, root: Path, site_id: int, first_day: int, last_day: int) -> Manifest:
    """Parts of UTC days first_day..last_day (day numbers) of a site; returns the manifest
    (complete until the end of last_day)."""
    directory = site_dir(root, site_id)
    directory.mkdir(parents=True, exist_ok=True)
    parts = []
    with db.engine.connect() as conn:
        for day in range(first_day, last_day + 1):
            started = visits.c.started_ms
            chosen = (
                (visits.c.site_id == site_id)
                & (started >= day * DAY_MS)
                & (started < (day + 1) * DAY_MS)
            )
            ids = select(visits.c.id).where(chosen)
            part = Part(day, day, f"visits-{day}.parquet", f"events-{day}.parquet")
            _write(conn, visits, select(*_selected(visits)).where(chosen), directory / part.visits)
            event_rows = select(*_selected(events)).where(events.c.visit_id.in_(ids))
            _write(conn, events, event_rows, directory / part.events)
            parts.append(part)
    manifest = Manifest(site_id, complete_until_ms=(last_day + 1) * DAY_MS, parts=tuple(parts))
    write_manifest(root, manifest)
    return manifest
