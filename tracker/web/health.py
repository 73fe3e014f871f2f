"""GET /healthz: 200 when the database answers, 503 when it does not."""

from flask import Blueprint, jsonify

from tracker.web.context import get_db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    if get_db().ping():
        return jsonify(status="ok")
    return jsonify(status="error", error="database unreachable"), 503
