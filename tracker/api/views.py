"""The Stats API endpoints (thin views over tracker.stats), shaped like Plausible's v1,
the listing and management of a site's goals and funnels (over tracker.goals), of its
chart annotations (over tracker.annotations) and of its ad spend (over tracker.costs).

Every /api/v1/stats/ request needs `Authorization: Bearer <API key>` (401 otherwise), is
counted against the key's hourly allowance (429 with Retry-After above it), and names a
site its key's user is a member of (`site_id` is the domain; 404 otherwise, the same
answer as for a site that does not exist). Reading needs any role; adding or deleting
goals, annotations and costs needs admin or owner (403 for a viewer) and a key of the
write scope (403 for a read key). Changes are written
to the audit log as the key's user. Bad parameters answer 400 with a sentence naming them.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC
from decimal import Decimal
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    TooManyRequests,
    Unauthorized,
)

from tracker import audit
from tracker.accounts import READ_ONLY_KEY, hash_api_key
from tracker.annotations import (
    AnnotationError,
    add_annotation,
    delete_annotation,
    list_annotations,
)
from tracker.api.openapi import openapi_document
from tracker.api.params import (
    breakdown_paging,
    breakdown_property,
    interval_dimension,
    property_key,
    stats_query,
)
from tracker.api.ratelimit import RateLimiter
from tracker.costs import (
    MAX_API_ROWS,
    CostError,
    list_costs,
    parse_cost_json,
    parse_period,
    store_costs,
)
from tracker.db.models import AdCost, Goal, Site
from tracker.goals import (
    GoalError,
    add_goal,
    delete_goal,
    funnel_problems,
    funnel_step_names,
    get_goal,
    goal_label,
    list_funnels,
    list_goals,
)
from tracker.members import ADMIN, VIEWER
from tracker.money import format_minor
from tracker.sites import site_today
from tracker.stats import Note, QueryError, current_visitors, first_day, funnel, run
from tracker.stats.filters import tagged_only
from tracker.web.access import BEARER_HELP, api_site, bearer_caller, bearer_key
from tracker.web.context import get_db

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_COST_BODY = 8_000_000  # bytes: MAX_API_ROWS rows with room to spare
READING = {"GET", "HEAD", "OPTIONS"}  # what a read-scope key may send


def init_api(app: Flask) -> None:
    settings = app.extensions["tracker.settings"]
    app.extensions["tracker.api.limiter"] = RateLimiter(
        app.extensions["tracker.db"], settings.api_rate_limit
    )
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)  # authenticated by the Bearer key alone, never by a cookie
    app.register_blueprint(bp)


@bp.errorhandler(QueryError)
def _bad_parameter(error: QueryError) -> ResponseReturnValue:
    return jsonify(error=str(error)), 400


# Forbidden too: Flask looks up handlers of a status code (the web's 403 page) before
# those of a class.
@bp.errorhandler(Forbidden)
@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> ResponseReturnValue:
    response = error.get_response()
    response.set_data(jsonify(error=error.description).get_data())
    response.mimetype = "application/json"
    return response


@bp.before_request
def _authenticate() -> None:
    if request.endpoint == "api.openapi":
        return
    caller = bearer_caller()
    if caller is None:
        raise Unauthorized(
            f"Authorization: {BEARER_HELP}.", www_authenticate=WWWAuthenticate("bearer")
        )
    if request.method not in READING and not caller.may_write:
        raise Forbidden(READ_ONLY_KEY)
    g.api_user = caller.user
    limiter: RateLimiter = current_app.extensions["tracker.api.limiter"]
    wait = limiter.take(hash_api_key(bearer_key() or ""))
    if wait:
        raise TooManyRequests(
            f"This API key made too many requests; retry in {wait} s.", retry_after=wait
        )


def _site(need: str = VIEWER, domain: str | None = None) -> Site:
    """The site `site_id` names (or `domain`), when the key's user's role reaches `need`."""
    domain = (request.args.get("site_id", "") if domain is None else domain).strip()
    return api_site(domain, g.api_user, need)


def _body_and_site(body: Any) -> tuple[dict[str, Any], Site]:
    """A POST's decoded JSON body, which must be an object (400 otherwise), and the site
    it names: `site_id` in the query string or else in the body."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object (Content-Type: application/json).")
    site_id = request.args.get("site_id") or body.get("site_id")
    return body, _site(ADMIN, site_id if isinstance(site_id, str) else "")


@bp.get("/openapi.json", endpoint="openapi")
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document())


@bp.get("/stats/realtime/visitors")
def realtime_visitors() -> ResponseReturnValue:
    return jsonify(current_visitors(get_db(), _site()))


@bp.get("/stats/aggregate")
def aggregate() -> ResponseReturnValue:
    site = _site()
    compare = request.args.get("compare") or None
    query = stats_query(site, request.args, first_day=first_day(get_db(), site), compare=compare)
    totals = run(get_db(), query).totals
    results: dict[str, dict[str, Any]] = {}
    for metric in query.metrics:
        results[metric] = {"value": totals[metric]}
        if query.compare:
            results[metric]["change"] = totals["change"][metric]
    return jsonify(results=results)


@bp.get("/stats/timeseries")
def timeseries() -> ResponseReturnValue:
    site = _site()
    dimension = interval_dimension(request.args)
    query = stats_query(
        site, request.args, first_day=first_day(get_db(), site), dimension=dimension
    )
    rows = run(get_db(), query).rows
    return jsonify(
        results=[{"date": row[dimension], **{m: row[m] for m in query.metrics}} for row in rows]
    )


@bp.get("/stats/breakdown")
def breakdown() -> ResponseReturnValue:
    site = _site()
    prop = breakdown_property(request.args)
    query = stats_query(
        site,
        request.args,
        first_day=first_day(get_db(), site),
        dimension=prop,
        **breakdown_paging(request.args),
    )
    key = property_key(prop)
    # As on the page: no row for the visits without an optional tag (no campaign...).
    query = dataclasses.replace(query, filters=(*query.filters, *tagged_only(query.dimensions)))
    rows = run(get_db(), query).rows
    return jsonify(results=[{key: row[prop], **{m: row[m] for m in query.metrics}} for row in rows])


@bp.get("/stats/funnel")
def funnel_steps() -> ResponseReturnValue:
    site = _site()
    name = request.args.get("funnel", "")
    if not name:
        raise QueryError(
            "funnel: name the funnel (funnel=Signup flow); /api/v1/funnels lists them."
        )
    query = stats_query(site, request.args, first_day=first_day(get_db(), site))
    result = funnel(get_db(), query, name)
    return jsonify(
        funnel=result.name,
        conversion_rate=result.conversion_rate,
        steps=[dataclasses.asdict(step) for step in result.steps],
    )


def _goal_json(goal: Goal) -> dict[str, Any]:
    return {
        "id": goal.id,
        "name": goal.name,
        "kind": goal.kind,
        "pattern": goal.pattern,
        "event_name": goal.event_name,
        "property": {"key": goal.prop_key, "value": goal.prop_value} if goal.prop_key else None,
        "currency": goal.currency,
        "position": goal.position,
    }


@bp.get("/goals")
def goals() -> ResponseReturnValue:
    site = _site()
    with get_db().session() as session:
        listed = [_goal_json(g) for g in list_goals(session, site)]
    return jsonify(goals=listed)


def _body_text(body: dict[str, Any], key: str, field: str | None = None) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise GoalError(field or key, f"{key} must be a JSON string.")
    return value


@bp.post("/goals")
def create_goal() -> ResponseReturnValue:
    body, site = _body_and_site(request.get_json(silent=True))
    try:
        prop = body.get("property")
        if prop is not None and not (isinstance(prop, dict) and set(prop) <= {"key", "value"}):
            raise GoalError("property", 'It must be {"key": "...", "value": "..."} or null.')
        prop = prop or {}
        with get_db().session() as session:
            goal = add_goal(
                session,
                site,
                name=_body_text(body, "name"),
                kind=_body_text(body, "kind"),
                pattern=_body_text(body, "pattern"),
                event_name=_body_text(body, "event_name"),
                prop_key=_body_text(prop, "key", "property"),
                prop_value=_body_text(prop, "value", "property"),
                currency=_body_text(body, "currency"),
            )
            created = _goal_json(goal)
            audit.record(
                session, g.api_user, site, "goal.add", f"{goal.name!r}: {goal_label(goal)}"
            )
    except GoalError as exc:
        return jsonify(error=f"{exc.field}: {exc}"), 400
    return jsonify(created), 201


@bp.delete("/goals/<int:goal_id>")
def remove_goal(goal_id: int) -> ResponseReturnValue:
    site = _site(ADMIN)
    with get_db().session() as session:
        goal = get_goal(session, site, goal_id)
        if goal is None:
            raise NotFound(f"goal: no goal {goal_id} on {site.domain}.")
        broken = delete_goal(session, site, goal)
        audit.record(session, g.api_user, site, "goal.delete", repr(goal.name))
    return jsonify(deleted=goal_id, broken_funnels=broken)


@bp.get("/funnels")
def funnels() -> ResponseReturnValue:
    site = _site()
    with get_db().session() as session:
        listed = [
            {
                "id": f.id,
                "name": f.name,
                "steps": funnel_step_names(session, f),
                "broken": bool(funnel_problems(session, f)),
            }
            for f in list_funnels(session, site)
        ]
    return jsonify(funnels=listed)


def _note_json(note: Note) -> dict[str, Any]:
    return {"id": note.id, "date": note.day.isoformat(), "text": note.text}


@bp.get("/annotations")
def annotation_list() -> ResponseReturnValue:
    """The site's notes in the period (the stats endpoints' period parameters), by day."""
    site = _site()
    period = stats_query(site, request.args, first_day=first_day(get_db(), site)).period
    notes = list_annotations(get_db(), site, period.start, period.end)
    return jsonify(annotations=[_note_json(n) for n in notes])


@bp.post("/annotations")
def create_annotation() -> ResponseReturnValue:
    body, site = _body_and_site(request.get_json(silent=True))
    try:
        for key in ("date", "text"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise AnnotationError(key, f"{key} must be a JSON string.")
        day = body.get("date")
        if day is None:
            day = site_today(site)  # as on the stats page: today in the site's time zone
        with get_db().session() as session:
            note = add_annotation(session, site, day, body.get("text"))
            audit.record(session, g.api_user, site, "annotation.add", f"{note.day}: {note.text}")
            created = _note_json(note)
    except AnnotationError as exc:
        return jsonify(error=f"{exc.field}: {exc}"), 400
    return jsonify(created), 201


@bp.delete("/annotations/<int:annotation_id>")
def remove_annotation(annotation_id: int) -> ResponseReturnValue:
    site = _site(ADMIN)
    with get_db().session() as session:
        note = delete_annotation(session, site, annotation_id)
        if note is not None:
            audit.record(session, g.api_user, site, "annotation.delete", f"{note.day}: {note.text}")
    if note is None:
        raise NotFound(f"annotation: no annotation {annotation_id} on {site.domain}.")
    return jsonify(deleted=annotation_id)


def _cost_json(row: AdCost) -> dict[str, Any]:
    # SQLite gives the stored UTC moment back without its offset.
    imported_at = row.imported_at.replace(tzinfo=row.imported_at.tzinfo or UTC)
    return {
        "date": row.day.isoformat(),
        "utm_source": row.source,
        "utm_medium": row.medium,
        "utm_campaign": row.campaign,
        "utm_term": row.term,
        "utm_content": row.content,
        "campaign_label": row.campaign_label,
        "cost": format_minor(row.cost_minor, row.currency),
        "currency": row.currency,
        "impressions": row.impressions,
        "clicks": row.clicks,
        "imported_at": imported_at.isoformat(),
    }


@bp.get("/costs")
def cost_list() -> ResponseReturnValue:
    """The site's stored cost rows from `from` to `to` (YYYY-MM-DD, both included)."""
    site = _site()
    try:
        start, end = parse_period(request.args.get("from"), request.args.get("to"))
    except CostError as exc:
        raise QueryError(str(exc)) from None
    with get_db().session() as session:
        rows = [_cost_json(r) for r in list_costs(session, site, start, end)]
    return jsonify(results=rows)


@bp.post("/costs")
def cost_import() -> ResponseReturnValue:
    """Store cost rows, all or none: 400 lists every problem by row and field."""
    if (request.content_length or 0) > MAX_COST_BODY:
        raise RequestEntityTooLarge(
            f"The body is over {MAX_COST_BODY // 1_000_000} MB: send at most "
            f"{MAX_API_ROWS:,} rows a request."
        )
    try:  # amounts as exact decimals, never floats
        body = json.loads(request.get_data(), parse_float=Decimal) if request.is_json else None
    except ValueError:
        body = None
    body, site = _body_and_site(body)
    batch = parse_cost_json(body.get("rows"))
    if batch.problems:
        problems = [{"row": p.row, "field": p.field, "message": p.message} for p in batch.problems]
        listed = "; ".join(str(p) for p in batch.problems[:3])
        more = "; ..." if len(batch.problems) > 3 else ""
        error = f"{len(problems)} problem(s), nothing was stored: {listed}{more}"
        return jsonify(error=error, problems=problems), 400
    with get_db().session() as session:
        stored = store_costs(session, site, batch.rows)
        audit.record(
            session,
            g.api_user,
            site,
            "cost.import",
            f"Imported {stored.imported:,} cost rows through the API "
            f"({stored.replaced:,} of them replaced rows already stored).",
        )
    return jsonify(imported=stored.imported, replaced=stored.replaced)
