"""GET /healthz: whether this server keeps and stores events, and what is wrong if not.

503 while events are lost or not stored: the database does not answer; the spool cannot
be written (a full disk: the collector answers 503 too, rather than 202); or, under
`tracker serve`, no spool writer process runs for this data directory (beacons are still
kept in the spool and answered 202, but nothing reaches the database until the supervisor
has started a new writer: tracker.supervisor). A GeoIP file that cannot be read is shown
but answers 200: events are stored, only without places.

    {"status": "ok", "database": "ok", "spool": "ok", "writer": "ok", "geoip": "off"}
    {"status": "error", "error": "spool writer down: ...", ..., "writer": "down"}
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from tracker.ingest.pipeline import Pipeline
from tracker.storage.drain import writer_running
from tracker.storage.spool import write_problem
from tracker.web.context import get_db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    pipeline: Pipeline = current_app.extensions["tracker.ingest"]
    database = get_db().ping()
    spool = write_problem(pipeline.writer.spool.directory)
    writer = _writer(pipeline)
    checks = {
        "database": "ok" if database else "unreachable",
        "spool": spool or "ok",
        "writer": writer,
        "geoip": pipeline.geo.status(),
    }
    problems = [
        *(["database unreachable"] if not database else []),
        *([f"spool not writable: {spool}"] if spool else []),
        *(["spool writer down: events are kept but not stored"] if writer == "down" else []),
    ]
    if problems:
        return jsonify(status="error", error="; ".join(problems), **checks), 503
    return jsonify(status="ok", **checks)


def _writer(pipeline: Pipeline) -> str:
    """ "ok" while a writer process stores the spool (under `tracker serve`), "down" while
    none does, "in process" when this process stores its own (tests, imports)."""
    if not pipeline.writer.host_drain:
        return "in process"
    return "ok" if writer_running(pipeline.writer.spool.directory) else "down"
