"""GET /healthz: 200 when the database answers, 503 when it does not.

`geoip` says whether the GeoIP file is read ("ok", "off" when none is set, else what is
wrong with it); a bad one is no reason for a 503: events are stored, without places.
"""

from flask import Blueprint, current_app, jsonify

from tracker.web.context import get_db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    geoip = current_app.extensions["tracker.ingest"].geo.status()
    if get_db().ping():
        return jsonify(status="ok", geoip=geoip)
    return jsonify(status="error", error="database unreachable", geoip=geoip), 503
