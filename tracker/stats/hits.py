"""Goal hits: each goal's matching events, kept per local day beside the rollups, and
each goal's daily counts summed from them (`goal_days`, and per UTM tags of the visits,
`goal_tag_days`: what the campaign report reads).

Matching a wide goal (`/blog/*`) against a month of raw events takes seconds; the Goals
card, conversion mode and funnels read these rows instead (`goals.goal_matches`). The
rollup refresh computes a chunk's hits with its rollup rows and writes each day's in the
same transaction, for the goals it loaded when it began. A goal added since has no hits
until `backfill` writes every covered day of it and marks it built; until then reports
match it on raw events. Goal definitions never change (a goal is renamed, moved or
deleted, not edited), so a built goal stays built.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Index,
    MetaData,
    Table,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from tracker.db.models import Event, Goal, GoalDay, GoalHit, GoalTagDay, Visit
from tracker.stats.compiler import Plan, bucket_expr
from tracker.stats.coverage import first_visit_ms, lock_site_writes
from tracker.stats.goals import load_goals, matches
from tracker.stats.periods import local_date, make_period
from tracker.stats.query import GoalSpec, Query, SiteRef

hits_table = cast(Table, GoalHit.__table__)
days_table = cast(Table, GoalDay.__table__)
tag_days_table = cast(Table, GoalTagDay.__table__)
DERIVED = (hits_table, days_table, tag_days_table)
TAGS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
goals_table = cast(Table, Goal.__table__)
events = Event.__table__
visits = Visit.__table__
COLUMNS = [c.name for c in hits_table.c if c.name != "id"]


def new_table(conn: Connection, name: str) -> Table:
    """An empty temporary table of hit rows (dropped by the caller)."""
    table = Table(
        name,
        MetaData(),
        *(Column(c.name, c.type) for c in hits_table.c if c.name != "id"),
        prefixes=["TEMPORARY"],
    )
    table.create(conn)
    return table


def compute(
    conn: Connection, site: SiteRef, goals: Sequence[GoalSpec], source: FromClause, into: Table
) -> None:
    """Insert into `into` the hits of `goals` in the visits of `source`, which has each
    visit's id, visitor_id, started_ms and local day (`bucket`)."""
    for goal in goals:
        rows = (
            select(
                literal(goal.id),
                literal(site.id),
                events.c.visit_id,
                source.c.visitor_id,
                source.c.started_ms,
                source.c.bucket,
                events.c.timestamp_ms,
                events.c.revenue_minor,
                events.c.revenue_currency,
            )
            .select_from(events.join(source, events.c.visit_id == source.c.id))
            .where(matches(goal))
        )
        conn.execute(insert(into).from_select(COLUMNS, rows))


def write_day(
    conn: Connection, site: SiteRef, goals: Sequence[GoalSpec], computed: Table, day: int
) -> None:
    """Replace the day's hits of `goals` with the computed ones (in the caller's
    transaction)."""
    if not goals:
        return
    ids = [g.id for g in goals]
    for table in DERIVED:
        c = table.c
        conn.execute(delete(table).where(c.site_id == site.id, c.day == day, c.goal_id.in_(ids)))
    mine = (computed.c.day == day, computed.c.goal_id.in_(ids))
    conn.execute(insert(hits_table).from_select(COLUMNS, select(computed).where(*mine)))
    _insert_days(conn, computed, *mine)


def _insert_days(conn: Connection, computed: Table, *where: ColumnElement[bool]) -> None:
    """The daily counts of the computed hits (a goal reached by nobody that day: no row)."""
    c = computed.c
    counts = (
        select(
            c.goal_id,
            c.day,
            c.site_id,
            func.count(c.visitor_id.distinct()),
            func.count(c.visit_id.distinct()),
            func.count(),
        )
        .where(*where)
        .group_by(c.goal_id, c.day, c.site_id)
    )
    columns = ["goal_id", "day", "site_id", "visitors", "conversions", "events"]
    conn.execute(insert(days_table).from_select(columns, counts))
    _insert_tag_days(conn, computed, *where)


def _insert_tag_days(conn: Connection, computed: Table, *where: ColumnElement[bool]) -> None:
    """The daily conversions of the computed hits in tagged visits, per tags: one row of
    every converting visit (currency ""), one per currency paid with its revenue."""
    c = computed.c
    tags = [visits.c[t] for t in TAGS]
    tagged = or_(*(t != "" for t in tags))
    joined = computed.join(visits, visits.c.id == c.visit_id)
    keys = [c.goal_id, c.site_id, c.day, *tags]
    every = select(*keys, literal(""), func.count(c.visit_id.distinct()), literal(0))
    paid = select(
        *keys, c.revenue_currency, func.count(c.visit_id.distinct()), func.sum(c.revenue_minor)
    ).where(c.revenue_minor.is_not(None), c.revenue_currency != "")
    columns = ["goal_id", "site_id", "day", *TAGS, "currency", "conversions", "revenue_minor"]
    for rows, grouped in ((every, keys), (paid, [*keys, c.revenue_currency])):
        rows = rows.select_from(joined).where(tagged, *where).group_by(*grouped)
        conn.execute(insert(tag_days_table).from_select(columns, rows))


def first_day(conn: Connection, site: SiteRef, since: int | None = None) -> int | None:
    """The first local day (from `since`) holding any of the site's hits (goal days and tag
    days are summed from them), None if none."""
    c = hits_table.c
    where = [c.site_id == site.id] if since is None else [c.site_id == site.id, c.day >= since]
    return conn.scalar(select(func.min(c.day)).where(*where))


def unbuild(conn: Connection, site: SiteRef) -> None:
    """Reports match the site's goals on raw events again: its days are being cut anew (a
    rebuild from scratch), their hits replaced day by day."""
    conn.execute(
        update(goals_table).where(goals_table.c.site_id == site.id).values(hits_built=False)
    )


def mark_built(conn: Connection, goals: Sequence[GoalSpec]) -> None:
    if goals:
        ids = [g.id for g in goals]
        conn.execute(update(goals_table).where(goals_table.c.id.in_(ids)).values(hits_built=True))


def _unbuilt(conn: Connection, site: SiteRef) -> list[GoalSpec]:
    g = goals_table.c
    built = set(conn.scalars(select(g.id).where(g.site_id == site.id, g.hits_built)))
    return [goal for goal in load_goals(conn, site) if goal.id not in built]


def backfill(conn: Connection, site: SiteRef, last: date) -> int:
    """Write every hit of the site's goals not built yet, for visits started through day
    `last`, and mark them built; returns how many goals. Computed first into a temporary
    table, then copied a goal and a day per transaction, so SQLite's write lock is held
    only for that (reports match the goals on raw events until they are marked built)."""
    with conn.begin():
        goals = _unbuilt(conn, site)
        first_ms = first_visit_ms(conn, site) if goals else None
    if not goals:
        return 0
    computed = None
    days: list[int] = []
    if first_ms is not None:
        first = local_date(first_ms, site.tz)
        period = make_period("custom", first, last, site.tz)
        bucket = bucket_expr(visits.c.started_ms, Plan((), (), "day"), Query(site, period))
        source = (
            select(visits.c.id, visits.c.visitor_id, visits.c.started_ms, bucket.label("bucket"))
            .where(
                visits.c.site_id == site.id,
                visits.c.started_ms >= period.start_ms,
                visits.c.started_ms < period.end_ms,
            )
            .subquery("backfilled")
        )
        with conn.begin():
            computed = new_table(conn, "goal_backfill")
            compute(conn, site, goals, source, computed)
            Index("ix_goal_backfill_day", computed.c.day, computed.c.goal_id).create(conn)
            days = list(conn.scalars(select(computed.c.day).distinct().order_by(computed.c.day)))
    with conn.begin():
        lock_site_writes(conn, site)
        ids = [g.id for g in goals]
        for table in DERIVED:
            conn.execute(delete(table).where(table.c.goal_id.in_(ids)))
    if computed is not None:
        for day in days:
            for goal in goals:
                with conn.begin():
                    lock_site_writes(conn, site)
                    write_day(conn, site, [goal], computed, day)
    with conn.begin():
        mark_built(conn, goals)
        if computed is not None:
            computed.drop(conn)
    return len(goals)
