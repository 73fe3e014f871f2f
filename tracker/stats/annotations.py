"""Chart annotations as reports read them: a site's notes in a date range, and which time
bucket of a series each note belongs to.

A note is dated by a day of the site's time zone, so it needs no conversion: it belongs to
the day bucket of that day, the week or month bucket holding it, and on an hourly series
to the first hour of that day (a note says nothing about the hour).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from tracker.db import Database
from tracker.db.models import Annotation
from tracker.stats.query import Query, SiteLike, SiteRef


@dataclass(frozen=True)
class Note:
    id: int
    day: date
    text: str


def site_notes(
    db: Database, site: SiteLike | SiteRef, first: date | None = None, last: date | None = None
) -> list[Note]:
    """The site's notes from `first` to `last` (inclusive; None: unbounded), by day, then
    in the order they were added."""
    a = Annotation.__table__.c
    query = select(a.id, a.day, a.text).where(a.site_id == site.id)
    if first is not None:
        query = query.where(a.day >= first)
    if last is not None:
        query = query.where(a.day <= last)
    with db.engine.connect() as conn:
        rows = conn.execute(query.order_by(a.day, a.id))
        return [Note(row.id, row.day, row.text) for row in rows]


def bucket_notes(labels: Sequence[str], notes: Sequence[Note]) -> list[list[Note]]:
    """For each bucket label of a series (`2026-11-23`, or an hour `2026-11-23T00:00+01:00`),
    the notes drawn on it: a note goes to the last bucket starting on or before its day and,
    of the hours of that day, to the first. Notes before the first bucket are left out; the
    caller reads only the notes of the series' period."""
    starts = [date.fromisoformat(label[:10]) for label in labels]
    out: list[list[Note]] = [[] for _ in labels]
    for note in notes:
        index = bisect_right(starts, note.day) - 1
        if index < 0:
            continue
        while index > 0 and starts[index - 1] == starts[index]:
            index -= 1  # the first hour of that day
        out[index].append(note)
    return out


def series_notes(db: Database, query: Query, labels: Sequence[str]) -> list[list[Note]]:
    """The notes of the query's period on each bucket of its time series (`labels`)."""
    period = query.period
    return bucket_notes(labels, site_notes(db, query.site, period.start, period.end))
