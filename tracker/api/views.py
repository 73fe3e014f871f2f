"""The Stats API endpoints (thin views over tracker.stats), shaped like Plausible's v1.

Every /api/v1/stats/ request needs `Authorization: Bearer <API key>` (401 otherwise), is
counted against the key's hourly allowance (429 with Retry-After above it), and names a
site its key's owner may see (`site_id` is the domain; 404 otherwise, the same answer as
for a site that does not exist). Bad parameters answer 400 with a sentence naming them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import HTTPException, NotFound, TooManyRequests, Unauthorized

from tracker.accounts import hash_api_key
from tracker.api.openapi import openapi_document
from tracker.api.params import (
    breakdown_paging,
    breakdown_property,
    interval_dimension,
    property_key,
    stats_query,
)
from tracker.api.ratelimit import RateLimiter
from tracker.db.models import Site
from tracker.sites import can_manage, find_site
from tracker.stats import QueryError, current_visitors, first_day, run
from tracker.web.access import BEARER_HELP, bearer_key, bearer_user
from tracker.web.context import get_db

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def init_api(app: Flask) -> None:
    settings = app.extensions["tracker.settings"]
    app.extensions["tracker.api.limiter"] = RateLimiter(
        app.extensions["tracker.db"], settings.api_rate_limit
    )
    app.register_blueprint(bp)


@bp.errorhandler(QueryError)
def _bad_parameter(error: QueryError) -> ResponseReturnValue:
    return jsonify(error=str(error)), 400


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
    user = bearer_user()
    if user is None:
        raise Unauthorized(
            f"Authorization: {BEARER_HELP}.", www_authenticate=WWWAuthenticate("bearer")
        )
    g.api_user = user
    limiter: RateLimiter = current_app.extensions["tracker.api.limiter"]
    wait = limiter.take(hash_api_key(bearer_key() or ""))
    if wait:
        raise TooManyRequests(
            f"This API key made too many requests; retry in {wait} s.", retry_after=wait
        )


def _site() -> Site:
    domain = request.args.get("site_id", "").strip()
    with get_db().session() as session:
        site = find_site(session, domain) if domain else None
    if site is None or not can_manage(g.api_user, site):
        raise NotFound(f"site_id: no site {domain!r} that this API key can read.")
    return site


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
    rows = run(get_db(), query).rows
    return jsonify(results=[{key: row[prop], **{m: row[m] for m in query.metrics}} for row in rows])
