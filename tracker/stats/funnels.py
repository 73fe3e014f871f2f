"""Funnels: 2 to 8 goals completed in order within one visit.

A visit reaches step k when it holds an event matching step k's goal at or after the
moment it reached step k-1 (other events may come between steps; a step done before the
previous one does not count, nor one done in another visit). Visitors are counted per day,
as everywhere (ids rotate daily). Every filter of the query applies: the funnel of one
campaign, of phones, of visits that converted on another goal.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, FromClause, Select, func, select

from tracker.db import Database
from tracker.db.models import Funnel
from tracker.stats.compiler import (
    Plan,
    bucket_expr,
    column_filters,
    dimension_column,
    events,
    visits,
)
from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.filters import compile_filters
from tracker.stats.goals import daily_counts, goal_clause, goal_matches, hits, with_goals
from tracker.stats.query import GoalSpec, Query, QueryError, SiteLike, site_ref


@dataclass(frozen=True)
class Step:
    goal: str
    visitors: int
    # Percent of the previous step's visitors (None for the first) and of the first's.
    from_previous: float | None
    from_start: float | None
    # Visitors of the previous step who did not reach this one.
    dropped: int


@dataclass(frozen=True)
class FunnelResult:
    name: str
    steps: list[Step]

    @property
    def conversion_rate(self) -> float | None:
        return self.steps[-1].from_start if self.steps else None


def funnel(db: Database, query: Query, name: str) -> FunnelResult:
    """The named funnel of the query's site over its period and filters; QueryError for an
    unknown funnel or one whose step's goal was deleted."""
    with db.engine.connect() as conn:
        query = with_goals(conn, query, always=True)
        steps = _steps(conn, query, name)
        counts = [int(conn.scalar(_reached(query, steps[: i + 1])) or 0) for i in range(len(steps))]
    return FunnelResult(name, _step_rows([g.name for g in steps], counts))


def funnel_names(db: Database, site: SiteLike) -> list[str]:
    """The site's funnels, by name."""
    f = Funnel.__table__.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(f.name).where(f.site_id == site_ref(site).id).order_by(f.name))
        return [row.name for row in rows]


def _steps(conn: Connection, query: Query, name: str) -> list[GoalSpec]:
    f = Funnel.__table__.c
    # No name holds a NUL, and PostgreSQL refuses one in a query.
    row = None
    if "\x00" not in name:
        row = conn.execute(
            select(f.steps).where(f.site_id == query.site.id, f.name == name)
        ).first()
    if row is None:
        raise QueryError(f"funnel: no funnel named {name!r}.")
    goals = {g.id: g for g in query.goals}
    steps = []
    for number, goal_id in enumerate(row.steps, start=1):
        if goal_id not in goals:
            raise QueryError(
                f"funnel: {name!r} is broken: the goal of step {number} was deleted; "
                "edit the funnel in the site's settings."
            )
        steps.append(goals[goal_id])
    return steps


def _visits_in_scope(query: Query) -> Select:
    """The period's visits that pass the query's filters, with their day bucket."""
    where = [
        visits.c.site_id == query.site.id,
        visits.c.started_ms >= query.period.start_ms,
        visits.c.started_ms < query.period.end_ms,
    ]
    plain = column_filters(query)
    on_visits = compile_filters(
        tuple(f for f in plain if not DIMENSIONS[f.dimension].is_event), dimension_column
    )
    on_events = compile_filters(
        tuple(f for f in plain if DIMENSIONS[f.dimension].is_event), dimension_column
    )
    if on_visits is not None:
        where.append(on_visits)
    if on_events is not None:  # visits having such an event
        where.append(visits.c.id.in_(select(events.c.visit_id).where(on_events)))
    converted = goal_clause(query)
    if converted is not None:
        where.append(converted)
    bucket = bucket_expr(visits.c.started_ms, Plan((), (), "day"), query)
    return select(visits.c.id, visits.c.visitor_id, bucket.label("bucket")).where(*where)


def _reached(query: Query, steps: list[GoalSpec]) -> Select:
    """Visitors (per day) whose visit completed `steps` in order."""
    fast = _reached_from_hits(query, steps)
    if fast is not None:
        return fast
    scope = _visits_in_scope(query).subquery("scope")
    done: FromClause = scope
    at = None
    for number, goal in enumerate(steps):
        found = goal_matches(query, goal).subquery(f"found{number}")
        stmt = (
            select(found.c.visit_id.label("id"), func.min(found.c.timestamp_ms).label("t"))
            .select_from(found.join(done, found.c.visit_id == done.c.id))
            .group_by(found.c.visit_id)
        )
        if at is not None:
            stmt = stmt.where(found.c.timestamp_ms >= at)
        done = stmt.subquery(f"step{number}")
        at = done.c.t
    people = (
        select(scope.c.bucket, scope.c.visitor_id)
        .select_from(scope.join(done, scope.c.id == done.c.id))
        .distinct()
        .subquery("people")
    )
    return select(func.count()).select_from(people)


def _reached_from_hits(query: Query, steps: list[GoalSpec]) -> Select | None:
    """`_reached` from stored hits alone, where they cover the period and no filter narrows
    the visits (None otherwise): the first step from its daily counts; a later one from the
    visits reaching its goal, each looked up, step by step, for the moment it reached the
    one before (a few index lookups per visit reaching the last step)."""
    covered = all(
        g.hits_until_ms is not None and g.hits_until_ms >= query.period.end_ms for g in steps
    )
    if query.filters or not covered:
        return None
    if len(steps) == 1:
        summed = daily_counts(query, steps[0])
        assert summed is not None
        return select(summed.subquery().c.visitors)
    h = hits.c
    last = (
        select(h.visit_id, h.visitor_id, h.day, func.max(h.timestamp_ms).label("t"))
        .where(
            h.goal_id == steps[-1].id,
            h.started_ms >= query.period.start_ms,
            h.started_ms < query.period.end_ms,
        )
        .group_by(h.visit_id, h.visitor_id, h.day)
        .subquery("last")
    )
    at = None
    for number, goal in enumerate(steps[:-1]):
        earlier = hits.alias(f"step{number}")
        moment = select(func.min(earlier.c.timestamp_ms)).where(
            earlier.c.goal_id == goal.id, earlier.c.visit_id == last.c.visit_id
        )
        if at is not None:
            moment = moment.where(earlier.c.timestamp_ms >= at)
        at = moment.correlate(last).scalar_subquery()
    people = select(last.c.day, last.c.visitor_id).where(last.c.t >= at).distinct().subquery()
    return select(func.count()).select_from(people)


def _step_rows(names: list[str], counts: list[int]) -> list[Step]:
    rows = []
    for i, (name, count) in enumerate(zip(names, counts, strict=True)):
        previous = counts[i - 1] if i else None
        rows.append(
            Step(
                goal=name,
                visitors=count,
                from_previous=_percent(count, previous) if previous is not None else None,
                from_start=_percent(count, counts[0]),
                dropped=(previous - count) if previous is not None else 0,
            )
        )
    return rows


def _percent(part: int, whole: int | None) -> float | None:
    return round(part * 100 / whole, 1) if whole else None
