"""How far a site's pre-computed rows reach: the rollups and the goal hits built with them
(tracker.stats.rollups). Its own module: reading it must not import the builders."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, func, select

from tracker.db.models import StatsRollupState, Visit
from tracker.stats.query import SiteRef

state_table = cast(Table, StatsRollupState.__table__)
visits = Visit.__table__
LOCK_NAMESPACE = 0x5741_0000_0000


def lock_site_writes(conn: Connection, site: SiteRef) -> None:
    """On PostgreSQL, wait for any other server writing this site's rollups or goal hits
    (until the end of the transaction): its DELETE then sees their rows (READ COMMITTED),
    so no day is ever counted twice. SQLite has one writer anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(LOCK_NAMESPACE + site.id)))


def covered_until(conn: Connection, site: SiteRef) -> int | None:
    """The last local day the site's rollups cover (every day before it too), or None.

    Days before the site's first visit are covered: there was nothing to roll up. Events
    stored later for a covered day are picked up by the next refresh.
    """
    row = conn.execute(
        select(state_table.c.last_day, state_table.c.timezone).where(
            state_table.c.site_id == site.id
        )
    ).first()
    if row is None or row.timezone != site.timezone:
        return None
    return int(row.last_day)


def first_visit_ms(conn: Connection, site: SiteRef) -> int | None:
    """When the site's first visit started (where rollups and goal hits begin)."""
    return conn.scalar(select(func.min(visits.c.started_ms)).where(visits.c.site_id == site.id))
