"""GET /tracker.js: the beacon (static/tracker.js, built from static/src/tracker.js).

Every tracked site loads it on every page, so it is read and compressed once when the app
starts, answered gzipped to clients that accept it, cached for a day and revalidated by ETag
(a 304 costs no body), and loadable from any origin. A fetch from a page on localhost is
noted (tracker.web.local_pages): the beacon stays silent there, and the empty state says so.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, request

from tracker.web.context import get_settings
from tracker.web.local_pages import local_origin, note_local_page

BEACON_PATH = Path(__file__).resolve().parents[2] / "static" / "tracker.js"
# The URL carries no version, so a day bounds how long a visitor's browser keeps an old copy
# after an upgrade; past that, revalidation is a 304 while the file is unchanged.
CACHE_SECONDS = 86_400

bp = Blueprint("beacon", __name__)


@dataclass(frozen=True)
class Beacon:
    body: bytes
    gzipped: bytes
    etag: str


def load_beacon(path: Path = BEACON_PATH) -> Beacon:
    body = path.read_bytes()
    return Beacon(
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        # From the content, so every collector behind a load balancer answers the same ETag.
        etag=hashlib.sha256(body).hexdigest()[:20],
    )


def init_beacon(app: Flask) -> None:
    app.extensions["tracker.beacon"] = load_beacon()
    app.register_blueprint(bp)


@bp.get("/tracker.js")
def tracker_js() -> Response:
    beacon: Beacon = current_app.extensions["tracker.beacon"]
    origin = local_origin(request.referrer)
    if origin is not None:
        note_local_page(get_settings().data_dir, origin)
    gzipped = "gzip" in request.accept_encodings
    response = Response(
        beacon.gzipped if gzipped else beacon.body, mimetype="application/javascript"
    )
    if gzipped:
        response.content_encoding = "gzip"
    response.vary.add("Accept-Encoding")
    # A strong ETag names exact bytes, so each encoding has its own.
    response.set_etag(beacon.etag + ("-gz" if gzipped else ""))
    response.cache_control.public = True
    response.cache_control.max_age = CACHE_SECONDS
    response.access_control_allow_origin = "*"
    # Pages that isolate themselves (Cross-Origin-Embedder-Policy) may still load it.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.make_conditional(request)  # 304 when If-None-Match names this ETag
    return response
