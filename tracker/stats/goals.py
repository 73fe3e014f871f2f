"""Goals: read-time definitions over stored events, so a goal added today counts past data.

A goal matches events: a `page` goal pageviews whose path matches its pattern (`*` stands
for any characters), an `event` goal custom events of its name (and one property's value,
when it names one), a `click` goal outbound-link and download clicks whose target matches
its pattern. A visit **converts** on a goal when it holds at least one matching event
(docs/ARCHITECTURE.md, "Goals and conversions").

The filter `goal is Signup` selects the visits that converted; every report then shows what
those visits did, and `events` counts the goal's matching events only.

Matching a wide goal (`/blog/*`) over a month of raw events takes seconds, so the rollup
job keeps each goal's matches in `goal_hits` (tracker.stats.hits) for the days it covers;
`goal_matches` reads them there and matches raw events only for later visits, or for a
goal added since the job last ran.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FunctionElement,
    Select,
    String,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles

from tracker.db import Database
from tracker.db.models import Event, Goal, GoalDay, GoalHit, Visit
from tracker.stats.coverage import covered_until
from tracker.stats.filters import Filter, match_pattern
from tracker.stats.periods import day_from_number, day_number, local_midnight_ms
from tracker.stats.query import GoalSpec, Query, QueryError, SiteLike, SiteRef, site_ref

GOAL = "event:goal"
events = Event.__table__
visits = Visit.__table__
hits = GoalHit.__table__
goal_days = GoalDay.__table__
# Metrics that only mean something for a goal: a goal filter or a breakdown by goal.
GOAL_METRICS = frozenset({"conversions", "conversion_rate", "total_revenue", "average_revenue"})


def load_goals(conn: Connection, site: SiteRef, *, hits: bool = False) -> tuple[GoalSpec, ...]:
    """A site's goals in their order; with `hits`, each says up to when `goal_hits` holds
    its matches (the end of the last day the rollups cover, once the goal's are built)."""
    last = covered_until(conn, site) if hits else None
    until = None
    if last is not None:
        until = local_midnight_ms(day_from_number(last) + timedelta(days=1), site.tz)
    return tuple(
        dataclasses.replace(g, hits_until_ms=until if built else None)
        for g, built in _goal_rows(conn, site.id)
    )


def goals_of_site(conn: Connection, site_id: int) -> tuple[GoalSpec, ...]:
    """A site's goals in their order, matched on raw events (the columnar store's builder)."""
    return tuple(g for g, _ in _goal_rows(conn, site_id))


def _goal_rows(conn: Connection, site_id: int) -> list[tuple[GoalSpec, bool]]:
    """Each goal of the site, in order, and whether `goal_hits` holds its matches."""
    g = Goal.__table__.c
    rows = conn.execute(
        select(
            g.id,
            g.name,
            g.kind,
            g.pattern,
            g.event_name,
            g.prop_key,
            g.prop_value,
            g.currency,
            g.hits_built,
        )
        .where(g.site_id == site_id)
        .order_by(g.position, g.id)
    )
    found = []
    for row in rows:
        fields = {k: v for k, v in row._mapping.items() if k != "hits_built"}
        found.append((GoalSpec(**fields), bool(row.hits_built)))
    return found


def site_goals(db: Database, site: SiteLike) -> tuple[GoalSpec, ...]:
    """A site's goals in their order (for pages: whether to show an empty Goals card)."""
    with db.engine.connect() as conn:
        return load_goals(conn, site_ref(site))


def needs_goals(query: Query) -> bool:
    return (
        GOAL in query.dimensions
        or query.filter_for(GOAL) is not None
        or bool(GOAL_METRICS & set(query.metrics))
    )


def with_goals(conn: Connection, query: Query, *, always: bool = False, hits: bool = True) -> Query:
    """The query with the site's goals attached, checked: a goal filter names goals that
    exist, and conversion metrics come with a goal filter or a breakdown by goal.
    `always`: attach them even when the query names none (funnels, the visits export);
    `hits=False`: match raw events only (tests compare both)."""
    if not (always or needs_goals(query)):
        return query
    query = dataclasses.replace(query, goals=load_goals(conn, query.site, hits=hits))
    asked = GOAL_METRICS & set(query.metrics)
    if asked and GOAL not in query.dimensions and query.filter_for(GOAL) is None:
        raise QueryError(
            f"metrics: {', '.join(sorted(asked))} need a goal: filter on one "
            "(goal=Signup, or filters=event:goal==Signup) or break down by event:goal."
        )
    flt = query.filter_for(GOAL)
    if flt is not None:
        selected_goals(query, flt)  # raises for an unknown goal
    return query


def matched_on_events(query: Query, stored: Sequence[Sequence[str]] = ()) -> Query:
    """The query matching its goals on the events it reads, never on `goal_hits`: for the
    columnar store, whose parts hold a closed day's events (goal definitions never change,
    so matching them there is exact for a goal added after the day was built). `stored`:
    each part's goals as its visits' bits hold them (`layout.Part.goals`, by `goal_key`);
    a goal at the same bit in every one reads that bit (`stored_bit`) instead."""
    goals = tuple(
        dataclasses.replace(g, hits_until_ms=None, stored_bit=_stored_bit(g, stored))
        for g in query.goals
    )
    return dataclasses.replace(query, goals=goals)


def goal_key(goal: GoalSpec) -> str:
    """What a goal matches (its definition, never changed; not its id or name): the key
    the columnar store's parts name their visits' goal bits by."""
    return json.dumps([goal.kind, goal.pattern, goal.event_name, goal.prop_key, goal.prop_value])


def _stored_bit(goal: GoalSpec, stored: Sequence[Sequence[str]]) -> int | None:
    key = goal_key(goal)
    bits = {list(keys).index(key) if key in keys else None for keys in stored}
    return bits.pop() if len(bits) == 1 else None


def selected_goals(query: Query, flt: Filter) -> list[GoalSpec]:
    if flt.op not in ("is", "is_not"):
        raise QueryError("goal: name goals exactly (goal=Signup, or goal=Signup|Purchase).")
    by_name = {g.name: g for g in query.goals}
    unknown = [v for v in flt.values if v not in by_name]
    if unknown:
        known = ", ".join(repr(g.name) for g in query.goals) or "none yet"
        raise QueryError(f"goal: no goal named {unknown[0]!r} (this site's goals: {known}).")
    return [by_name[v] for v in flt.values]


def matches(goal: GoalSpec) -> ColumnElement[bool]:
    """The events a goal counts, as a condition on the events table."""
    if goal.kind == "page":
        return and_(events.c.kind == "pageview", match_pattern(events.c.path, goal.pattern))
    if goal.kind == "click":
        return and_(events.c.kind == "click", match_pattern(events.c.target, goal.pattern))
    if goal.kind == "event":
        clause = and_(events.c.kind == "event", events.c.name == goal.event_name)
        if goal.prop_key:
            clause = and_(clause, prop_text(events.c.props, goal.prop_key) == goal.prop_value)
        return clause
    return false()


class prop_text(FunctionElement[str]):  # noqa: N801 - a SQL function
    """The text of one property of a JSON object column (NULL when absent).

    Its own element, not SQLAlchemy's JSON index: exports render statements with their
    values inlined, and the key must then stay a plain quoted string on both databases."""

    type = String()
    inherit_cache = True

    def __init__(self, column: ColumnElement, key: str) -> None:
        super().__init__(column, literal(key, String))


@compiles(prop_text)
def _prop_text_pg(element: prop_text, compiler: Any, **kw: Any) -> str:
    column, key = element.clauses
    return f"({compiler.process(column, **kw)} ->> {compiler.process(key, **kw)})"


@compiles(prop_text, "sqlite")
def _prop_text_sqlite(element: prop_text, compiler: Any, **kw: Any) -> str:
    column, key = element.clauses
    path = literal('$."', String) + key + literal('"', String)
    return f"json_extract({compiler.process(column, **kw)}, {compiler.process(path, **kw)})"


def any_matches(goals: Sequence[GoalSpec]) -> ColumnElement[bool]:
    return or_(*(matches(g) for g in goals)) if goals else false()


def goal_clause(
    query: Query, converting: Callable[[Query, Sequence[GoalSpec]], Select] | None = None
) -> ColumnElement[bool] | None:
    """The visits a goal filter keeps: those with a matching event (or none, for `is not`).
    `converting`: the statement of the ids of visits converting on some goals, in the form
    its engine runs faster (`converting_visit_ids` by default)."""
    flt = query.filter_for(GOAL)
    if flt is None:
        return None
    ids = (converting or converting_visit_ids)(query, selected_goals(query, flt))
    converted = visits.c.id.in_(ids)
    return not_(converted) if flt.op == "is_not" else converted


def converting_visit_ids(query: Query, goals: Sequence[GoalSpec]) -> Select:
    """Ids of the period's visits with an event matching one of `goals` (repeated). The
    goals matched on raw events alone are matched in one scan of them, not one per goal."""
    start = query.period.start_ms
    raw = [g for g in goals if _split(query, g) <= start]
    parts = [select(goal_matches(query, g).subquery().c.visit_id) for g in goals if g not in raw]
    if raw:
        parts.append(
            _raw_matches(query, any_matches(raw), start).with_only_columns(events.c.visit_id)
        )
    return parts[0] if len(parts) == 1 else select(union_all(*parts).subquery().c.visit_id)


def _split(query: Query, goal: GoalSpec) -> int:
    """Where the goal's matches stop being read from `goal_hits` (the period's start: never)."""
    start, end = query.period.start_ms, query.period.end_ms
    return start if goal.hits_until_ms is None else max(start, min(goal.hits_until_ms, end))


def goal_matches(query: Query, goal: GoalSpec) -> Select:
    """The goal's matching events in visits started in the query's period, with columns
    visit_id, visitor_id, started_ms (the visit's), timestamp_ms, revenue_minor and
    revenue_currency: from `goal_hits` for visits started before `goal.hits_until_ms`,
    from raw events for the rest."""
    start, end = query.period.start_ms, query.period.end_ms
    split = _split(query, goal)
    h = hits.c
    stored = select(
        h.visit_id, h.visitor_id, h.started_ms, h.timestamp_ms, h.revenue_minor, h.revenue_currency
    ).where(h.goal_id == goal.id, h.started_ms >= start, h.started_ms < split)
    raw = _raw_matches(query, matches(goal), split)
    if split <= start:
        return raw
    if split >= end:
        return stored
    return select(union_all(stored, raw).subquery())


def _raw_matches(query: Query, condition: ColumnElement[bool], split: int) -> Select:
    """`goal_matches`'s columns of the raw events meeting `condition` in the visits started
    from `split` to the period's end."""
    return (
        select(
            events.c.visit_id,
            visits.c.visitor_id,
            visits.c.started_ms,
            events.c.timestamp_ms,
            events.c.revenue_minor,
            events.c.revenue_currency,
        )
        .select_from(events.join(visits, events.c.visit_id == visits.c.id))
        .where(
            visits.c.site_id == query.site.id,
            visits.c.started_ms >= split,
            visits.c.started_ms < query.period.end_ms,
            # A visit's events come at or after its start: that bounds the scan.
            events.c.site_id == query.site.id,
            events.c.timestamp_ms >= split,
            condition,
        )
    )


def daily_counts(query: Query, goal: GoalSpec) -> Select | None:
    """The goal's visitors (per day, summed), visits and events over the whole period from
    its daily counts; None unless those cover the period (then read `goal_matches`)."""
    # Daily counts cannot stop at a time of day (a comparison cut at the time it is now).
    if goal.hits_until_ms is None or goal.hits_until_ms < query.period.end_ms or query.period.cut:
        return None
    d = goal_days.c
    return select(
        *(func.coalesce(func.sum(d[c]), 0).label(c) for c in ("visitors", "events")),
        func.coalesce(func.sum(d.conversions), 0).label("visits"),
    ).where(
        d.goal_id == goal.id,
        d.day >= day_number(query.period.start),
        d.day <= day_number(query.period.end),
    )


def goal_events(query: Query) -> ColumnElement[bool] | None:
    """Under a goal filter (`is`), the events the `events` metric counts: matching ones."""
    flt = query.filter_for(GOAL)
    if flt is None or flt.op != "is":
        return None
    return any_matches(selected_goals(query, flt))
