"""Goals and funnels: validation, adding, listing, renaming, reordering, deleting.

A goal is a read-time definition over stored events (tracker/stats/goals.py counts them):
a `page` goal matches pageviews whose path matches its pattern, an `event` goal custom
events of one name (optionally narrowed by one property), a `click` goal outbound-link and
download clicks whose target matches its pattern. In patterns `*` stands for any
characters and `\\*` for a star. A funnel is 2 to 8 of a site's goals, in order.

Deleting a goal that a funnel uses is allowed: the funnel is then broken (its step names a
goal that is gone) until it is edited; `funnel_problems` says which step, so pages show
"broken, fix it" instead of failing. Every problem raises GoalError with a sentence naming
the field; nothing is changed before validation passes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.db import Database
from tracker.db.models import Funnel, Goal, Site
from tracker.money import currency_code
from tracker.stats import parse_query, run
from tracker.stats.filters import pattern_parts
from tracker.text import has_control

KINDS = ("page", "event", "click")
KIND_LABELS = {"page": "Page visit", "event": "Custom event", "click": "Link click or download"}
MAX_NAME = 120
MAX_PATTERN = 500
# The collector's own limits (tracker/ingest/parse.py): a longer event name or property key
# is never stored, so a goal naming one could never match.
MAX_EVENT_NAME = 200
MAX_PROP_KEY = 100
MAX_PROP_VALUE = 500
MIN_STEPS = 2
MAX_STEPS = 8


class GoalError(ValueError):
    """A user-facing problem with a goal or funnel; `field` names the input at fault
    (name, kind, pattern, event_name, property, currency, steps)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _text(field: str, label: str, value: str | None, limit: int, *, required: bool) -> str:
    """`value` stripped and checked: present when required, at most `limit` characters,
    no control characters (tabs, line breaks, NUL...)."""
    text = (value or "").strip()
    if not text:
        if required:
            raise GoalError(field, f"{label} is required.")
        return ""
    if len(text) > limit:
        raise GoalError(field, f"{label} must be at most {limit} characters (got {len(text)}).")
    if has_control(text):
        raise GoalError(field, f"{label} must not contain control characters (tabs, line breaks).")
    return text


def normalize_currency(value: str | None) -> str:
    """No revenue ("") or an ISO 4217 code, upper-cased: "eur" -> "EUR". The codes are the
    collector's (tracker/data/iso4217.tab), so a goal's currency is one revenue can have."""
    code = (value or "").strip().upper()
    if not code:
        return ""
    checked = currency_code(code)
    if checked is None:
        raise GoalError(
            "currency",
            f"Currency {code[:20]!r} is not an ISO 4217 code: give one such as EUR or USD, "
            "or leave it empty.",
        )
    return checked


def _check_name(session: Session, model: type[Goal] | type[Funnel], site: Site, name: str,
                *, what: str, exclude_id: int | None = None) -> str:  # fmt: skip
    name = _text("name", f"The {what} name", name, MAX_NAME, required=True)
    query = select(model.id).where(model.site_id == site.id, func.lower(model.name) == name.lower())
    if exclude_id is not None:
        query = query.where(model.id != exclude_id)
    if session.scalar(query) is not None:
        raise GoalError("name", f"The {what} name {name!r} is already used on this site.")
    return name


def validate_definition(
    kind: str,
    *,
    pattern: str = "",
    event_name: str = "",
    prop_key: str = "",
    prop_value: str = "",
) -> dict[str, str]:
    """The goal's definition, checked and cleaned: the fields of `kind` only."""
    if kind not in KINDS:
        raise GoalError("kind", f"The goal kind must be one of {', '.join(KINDS)} (got {kind!r}).")
    if kind == "page":
        pattern = _text("pattern", "The page pattern", pattern, MAX_PATTERN, required=True)
        if not pattern.startswith("/"):
            raise GoalError(
                "pattern",
                "The page pattern must start with / (a path such as /thank-you or "
                "/order/*/done, not a full address).",
            )
        if "?" in pattern:
            raise GoalError(
                "pattern",
                "The page pattern must be a path without ?query: pages are stored without it.",
            )
        return {"pattern": pattern, "event_name": "", "prop_key": "", "prop_value": ""}
    if kind == "click":
        pattern = _text("pattern", "The link target pattern", pattern, MAX_PATTERN, required=True)
        return {"pattern": pattern, "event_name": "", "prop_key": "", "prop_value": ""}
    event_name = _text("event_name", "The event name", event_name, MAX_EVENT_NAME, required=True)
    key = _text("property", "The property key", prop_key, MAX_PROP_KEY, required=False)
    value = _text("property", "The property value", prop_value, MAX_PROP_VALUE, required=False)
    if bool(key) != bool(value):
        raise GoalError(
            "property", "The property needs both a key and a value (e.g. plan = pro), or neither."
        )
    return {"pattern": "", "event_name": event_name, "prop_key": key, "prop_value": value}


def list_goals(session: Session, site: Site) -> list[Goal]:
    """The site's goals in display order."""
    query = select(Goal).where(Goal.site_id == site.id).order_by(Goal.position, Goal.id)
    return list(session.scalars(query))


def find_goal(session: Session, site: Site, name: str) -> Goal | None:
    """The site's goal of that name (exact first, else ignoring case)."""
    goals = list_goals(session, site)
    name = name.strip()
    exact = next((g for g in goals if g.name == name), None)
    return exact or next((g for g in goals if g.name.lower() == name.lower()), None)


def get_goal(session: Session, site: Site, goal_id: int) -> Goal | None:
    goal = session.get(Goal, goal_id)
    return goal if goal is not None and goal.site_id == site.id else None


def add_goal(
    session: Session,
    site: Site,
    *,
    name: str,
    kind: str,
    pattern: str = "",
    event_name: str = "",
    prop_key: str = "",
    prop_value: str = "",
    currency: str = "",
) -> Goal:
    """Add a goal at the end of the site's list; GoalError (nothing added) on bad input."""
    definition = validate_definition(
        kind, pattern=pattern, event_name=event_name, prop_key=prop_key, prop_value=prop_value
    )
    code = normalize_currency(currency)
    name = _check_name(session, Goal, site, name, what="goal")
    last = session.scalar(select(func.max(Goal.position)).where(Goal.site_id == site.id))
    goal = Goal(
        site_id=site.id,
        name=name,
        kind=kind,
        currency=code,
        position=(last if last is not None else -1) + 1,
        **definition,
    )
    session.add(goal)
    session.flush()
    return goal


def rename_goal(session: Session, site: Site, goal: Goal, name: str) -> None:
    goal.name = _check_name(session, Goal, site, name, what="goal", exclude_id=goal.id)


def move_goal(session: Session, site: Site, goal: Goal, offset: int) -> bool:
    """Move a goal up (offset -1) or down (+1) the list; False when it is already at that
    end. Positions are renumbered 0, 1, 2... on the way."""
    goals = list_goals(session, site)
    index = next(i for i, g in enumerate(goals) if g.id == goal.id)
    target = index + offset
    if not 0 <= target < len(goals):
        return False
    goals[index], goals[target] = goals[target], goals[index]
    for position, item in enumerate(goals):
        item.position = position
    return True


def delete_goal(session: Session, site: Site, goal: Goal) -> list[str]:
    """Delete a goal; the names of the funnels it leaves broken (they keep their steps)."""
    broken = [f.name for f in list_funnels(session, site) if goal.id in (f.steps or [])]
    session.delete(goal)
    session.flush()
    return broken


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether `text` matches a goal pattern (`*` any characters, `\\*` a star), as the
    stats layer counts it: case-sensitively, the whole text."""
    parts = pattern_parts(pattern)
    regex = ".*".join(re.escape(p) for p in parts)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


def goal_label(goal: Goal) -> str:
    """One line saying what the goal counts: "Visit /thank-you", "Event Signup where plan =
    pro", "Click https://calendly.com/*"."""
    if goal.kind == "page":
        return f"Visit {goal.pattern}"
    if goal.kind == "click":
        return f"Click {goal.pattern}"
    if goal.kind == "event":
        where = f" where {goal.prop_key} = {goal.prop_value}" if goal.prop_key else ""
        return f"Event {goal.event_name}{where}"
    return f"Unknown kind {goal.kind!r}"


# Funnels


def list_funnels(session: Session, site: Site) -> list[Funnel]:
    query = select(Funnel).where(Funnel.site_id == site.id).order_by(Funnel.name, Funnel.id)
    return list(session.scalars(query))


def find_funnel(session: Session, site: Site, name: str) -> Funnel | None:
    funnels = list_funnels(session, site)
    name = name.strip()
    exact = next((f for f in funnels if f.name == name), None)
    return exact or next((f for f in funnels if f.name.lower() == name.lower()), None)


def get_funnel(session: Session, site: Site, funnel_id: int) -> Funnel | None:
    funnel = session.get(Funnel, funnel_id)
    return funnel if funnel is not None and funnel.site_id == site.id else None


def _check_steps(session: Session, site: Site, steps: Sequence[int]) -> list[int]:
    steps = list(steps)
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise GoalError(
            "steps",
            f"A funnel has {MIN_STEPS} to {MAX_STEPS} steps (got {len(steps)}).",
        )
    known = {g.id for g in list_goals(session, site)}
    for number, goal_id in enumerate(steps, 1):
        if goal_id not in known:
            raise GoalError("steps", f"Step {number} is not one of this site's goals.")
        if number > 1 and goal_id == steps[number - 2]:
            raise GoalError(
                "steps", f"Steps {number - 1} and {number} are the same goal: remove one."
            )
    return steps


def add_funnel(session: Session, site: Site, *, name: str, steps: Sequence[int]) -> Funnel:
    """Add a funnel of goal ids, in order; GoalError (nothing added) on bad input."""
    name = _check_name(session, Funnel, site, name, what="funnel")
    checked = _check_steps(session, site, steps)
    funnel = Funnel(site_id=site.id, name=name, steps=checked)
    session.add(funnel)
    session.flush()
    return funnel


def update_funnel(
    session: Session, site: Site, funnel: Funnel, *, name: str, steps: Sequence[int]
) -> None:
    """Rename a funnel and replace its steps (how a broken funnel is fixed)."""
    name = _check_name(session, Funnel, site, name, what="funnel", exclude_id=funnel.id)
    checked = _check_steps(session, site, steps)
    funnel.name = name
    funnel.steps = checked


def delete_funnel(session: Session, funnel: Funnel) -> None:
    session.delete(funnel)
    session.flush()


def funnel_problems(session: Session, funnel: Funnel) -> list[str]:
    """What makes a funnel unusable, one sentence per problem; [] when it is fine."""
    site = session.get(Site, funnel.site_id)
    goals = {g.id for g in list_goals(session, site)} if site is not None else set()
    steps = list(funnel.steps or [])
    problems = [
        f"Step {number}: its goal was deleted."
        for number, goal_id in enumerate(steps, 1)
        if goal_id not in goals
    ]
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        problems.append(f"It has {len(steps)} steps; a funnel needs {MIN_STEPS} to {MAX_STEPS}.")
    return problems


def funnel_step_names(session: Session, funnel: Funnel) -> list[str | None]:
    """Each step's goal name, None for a deleted goal."""
    site = session.get(Site, funnel.site_id)
    names = {g.id: g.name for g in list_goals(session, site)} if site is not None else {}
    return [names.get(goal_id) for goal_id in funnel.steps or []]


# Suggestions


@dataclass(frozen=True)
class Suggestion:
    """A goal the site's recent data suggests: a custom event or a page no goal covers."""

    kind: str  # "event" or "page"
    name: str  # the goal name it would get (unique on the site)
    value: str  # the event name or the page path
    count: int  # events (custom events) or pageviews (pages), last 30 days


def _unused_name(name: str, taken: set[str]) -> str:
    candidate, number = name[:MAX_NAME], 2
    while candidate.lower() in taken:
        suffix = f" ({number})"
        candidate, number = name[: MAX_NAME - len(suffix)] + suffix, number + 1
    return candidate


def _usable(text: str, limit: int) -> bool:
    return bool(text.strip()) and len(text) <= limit and not has_control(text)


def suggest_goals(
    db: Database, site: Site, goals: Sequence[Goal], limit: int = 5
) -> list[Suggestion]:
    """The most frequent custom event names and pages of the last 30 days that no goal
    covers yet, read through the stats layer (`parse_query` + `run`). The home page is
    left out: reaching it is not a result."""
    base = {"period": "30d", "limit": "50"}
    named = run(db, parse_query(site, {**base, "dimension": "event:name", "metrics": "events"}))
    # event:name holds clicks ("Outbound Link", "File Download") as well as custom events;
    # any click has a target, so this second query counts the clicks of each name.
    clicks = run(
        db,
        parse_query(site, {**base, "dimension": "event:name", "metrics": "events", "target": "*"}),
    )
    click_counts = {row["event:name"]: row["events"] or 0 for row in clicks.rows}
    event_goals = {g.event_name for g in goals if g.kind == "event"}
    page_goals = [g.pattern for g in goals if g.kind == "page"]
    taken = {g.name.lower() for g in goals}
    suggestions: list[Suggestion] = []
    events = [
        (row["event:name"], (row["events"] or 0) - click_counts.get(row["event:name"], 0))
        for row in named.rows
    ]
    events.sort(key=lambda item: -item[1])
    for name, count in events:
        if len([s for s in suggestions if s.kind == "event"]) >= limit:
            break
        if count > 0 and name not in event_goals and _usable(name or "", MAX_EVENT_NAME):
            suggestion = Suggestion("event", _unused_name(name, taken), name, count)
            taken.add(suggestion.name.lower())
            suggestions.append(suggestion)
    pages = run(db, parse_query(site, {**base, "dimension": "event:page", "metrics": "pageviews"}))
    found = 0
    for row in pages.rows:
        path, count = row["event:page"] or "", row["pageviews"] or 0
        if found >= limit:
            break
        if (
            count > 0
            and path != "/"
            and path.startswith("/")
            and _usable(path, MAX_PATTERN)
            and "*" not in path
            and "\\" not in path
            and "?" not in path
            and not any(pattern_matches(p, path) for p in page_goals)
        ):
            suggestion = Suggestion("page", _unused_name(f"Visit {path}", taken), path, count)
            taken.add(suggestion.name.lower())
            suggestions.append(suggestion)
            found += 1
    return suggestions
