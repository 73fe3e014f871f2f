"""Visits of the last past days that the writer changed, kept in `visit_changes`.

The columnar store writes yesterday's visits into a provisional part soon after midnight
(tracker.columnar.build), while they may still change: a visit going on past midnight, an
engagement beacon from a tab left open, a late event. The writer records each such change
here, in the transaction making it; a reader of a provisional part leaves out the visitors
changed since the part's snapshot and reads them from the database instead
(tracker.columnar.engine), so the sum of both sides is what the database holds.

Only visits started on the writer's last RECORDED_DAYS UTC days are recorded: those are the
only days a provisional part may hold (older days are closed, and an import of old days
would otherwise record every visit it makes). `changed_ms` is the writer's clock when it
changed the visit, inside the transaction: a change committed after a part's snapshot is
stamped at most a transaction's length before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, and_, delete, or_, select

from tracker.clock import now_ms
from tracker.db.models import VisitChange
from tracker.ingest.drops import DAY_MS

if TYPE_CHECKING:
    from tracker.db import Database
    from tracker.storage.visits import VisitState

changes_t = cast(Table, VisitChange.__table__)

# The writer's UTC days before today whose visits' changes are recorded: the day before
# yesterday is closed 26 hours after its end (tracker.columnar.build.CLOSE_AFTER_MS).
RECORDED_DAYS = 2
# The longest a writer's transaction lives: a change stamped earlier than this before a
# snapshot was committed before it (the drain commits a batch in well under a second).
COMMIT_WITHIN_MS = 10 * 60_000
# Kept for a while after they can matter, then deleted by the jobs process.
KEPT_MS = 7 * DAY_MS


def recorded_from_ms(at_ms: int) -> int:
    """The start of the first UTC day whose visits' changes the writer records at `at_ms`."""
    return (at_ms // DAY_MS - RECORDED_DAYS) * DAY_MS


def change_rows(visits: Iterable[VisitState], at_ms: int) -> list[dict[str, Any]]:
    """The visit_changes rows of the changed or new `visits` (ids assigned) that started on
    a recorded past day."""
    first = recorded_from_ms(at_ms)
    today = at_ms // DAY_MS * DAY_MS
    return [
        {
            "visit_id": v.id,
            "site_id": v.row["site_id"],
            "visitor_id": v.row["visitor_id"],
            "started_ms": v.row["started_ms"],
            "changed_ms": at_ms,
        }
        for v in visits
        if first <= v.row["started_ms"] < today
    ]


def changed_visitors(
    conn: Connection, site_id: int, days: Sequence[tuple[int, int, int]]
) -> Sequence[int]:
    """The visitors with a visit started in one of `days` (from, to, UTC ms) and changed at
    or after that day's time (the third, by the writer's clock)."""
    if not days:
        return []
    rows = conn.execute(
        select(changes_t.c.visitor_id)
        .distinct()
        .where(
            changes_t.c.site_id == site_id,
            # Implied by the days' own bounds: the index's range (site_id, changed_ms).
            changes_t.c.changed_ms >= min(since for _, _, since in days),
            or_(
                *(
                    and_(
                        changes_t.c.started_ms >= start,
                        changes_t.c.started_ms < end,
                        changes_t.c.changed_ms >= since,
                    )
                    for start, end, since in days
                )
            ),
        )
    )
    return [int(visitor_id) for (visitor_id,) in rows]


def prune(db: Database, at_ms: int | None = None) -> int:
    """Delete the changes no reader can need any more; returns how many."""
    at_ms = now_ms() if at_ms is None else at_ms
    with db.engine.begin() as conn:
        gone = conn.execute(delete(changes_t).where(changes_t.c.changed_ms < at_ms - KEPT_MS))
    return int(gone.rowcount or 0)
