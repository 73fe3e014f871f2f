"""Raw CSV downloads of a site's events and visits (thin views over tracker.export).

`?from=YYYY-MM-DD&to=YYYY-MM-DD` (or any stats `period=`) and any stats filter parameter
(`source=Google`, `page=~/blog`...) select the rows, exactly as on the stats page.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, request, stream_with_context
from flask.typing import ResponseReturnValue

from tracker.db.models import Site
from tracker.export import TABLES, export_csv, export_filename
from tracker.stats import Query, QueryError, first_day, parse_query
from tracker.web.access import exportable_site, shared_exportable_site
from tracker.web.context import get_db

bp = Blueprint("export", __name__)


def export_query(site: Site, args: Mapping[str, str]) -> Query:
    """The Query of an export URL: from/to mean a custom period; else as on the page."""
    params = dict(args)
    if params.get("from") or params.get("to"):
        params["period"] = "custom"
    return parse_query(site, params, first_day=first_day(get_db(), site))


def _download(site: Site, table: str) -> ResponseReturnValue:
    spec = TABLES[table]
    try:
        query = export_query(site, request.args)
    except QueryError as error:
        return Response(f"{error}\n", 400, mimetype="text/plain")
    # The generator reads the database batch by batch while the response is sent.
    chunks = stream_with_context(export_csv(get_db(), query, spec))
    response = Response(chunks, mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment", filename=export_filename(query, spec))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/sites/<domain>/export/events.csv", defaults={"table": "events"})
@bp.get("/sites/<domain>/export/visits.csv", defaults={"table": "visits"})
def site_export(domain: str, table: str) -> ResponseReturnValue:
    return _download(exportable_site(domain), table)


@bp.get("/share/<token>/export/events.csv", defaults={"table": "events"})
@bp.get("/share/<token>/export/visits.csv", defaults={"table": "visits"})
def shared_export(token: str, table: str) -> ResponseReturnValue:
    return _download(shared_exportable_site(token), table)
