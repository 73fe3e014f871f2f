"""HTTP endpoints of the collector: POST /api/event, POST /api/events, GET /api/pixel.gif.

Answers: 202 accepted (bots and spam too, so they learn nothing); 400 malformed, with
{"error": "..."} naming the field; 401 bad API key; 403 unknown site or page host not
allowed; 413 body too large; 429 with Retry-After when one address sends more events than
`ingest_rate_limit`; 503 with Retry-After when the events cannot be kept.
Any origin may post (CORS, no credentials); text/plain bodies need no preflight.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from tracker.accounts import READ_ONLY_KEY, api_key_caller, bearer_token
from tracker.db.models import User
from tracker.ingest.parse import EventError, IncomingEvent, decode_json, parse_event
from tracker.ingest.pipeline import Client, Outcome, Pipeline, Rejected, now_ms
from tracker.storage.writer import StoreUnavailable
from tracker.web.security import EVERY_RESPONSE

bp = Blueprint("ingest", __name__)
INGEST_PATHS = ("/api/event", "/api/pixel.gif")  # /api/event and /api/events
# No login session on these: beacons carry no cookies, and the public, cacheable script
# must not answer `Vary: Cookie` (shared caches would keep one copy per visitor).
SESSIONLESS_PATHS = (*INGEST_PATHS, "/tracker.js")

MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 8 * 1024 * 1024
RETRY_AFTER_SECONDS = 30
ACCEPTED = b'{"status":"accepted"}\n'
CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS"),
    ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
    ("Access-Control-Max-Age", "86400"),
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class Unauthorized(Exception):
    pass


class RateLimited(Exception):
    """Too many events from one client address (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many events from this address; retry later")
        self.retry_after = retry_after


def _pipeline() -> Pipeline:
    return current_app.extensions["tracker.ingest"]


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


@bp.after_request
def _cors(response: Response) -> Response:
    response.headers.extend(CORS_HEADERS)
    return response


@bp.errorhandler(EventError)
def _bad_event(exc: EventError) -> tuple[Response, int]:
    return _error(400, str(exc))


@bp.errorhandler(Unauthorized)
def _unauthorized(exc: Unauthorized) -> tuple[Response, int]:
    return _error(401, str(exc))


@bp.errorhandler(Rejected)
def _rejected(exc: Rejected) -> tuple[Response, int]:
    return _error(403, str(exc))


@bp.errorhandler(RateLimited)
def _rate_limited(exc: RateLimited) -> Response:
    response = jsonify(error=str(exc))
    response.status_code = 429
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
    return _error(413, "body: larger than the limit of this endpoint")


@bp.errorhandler(StoreUnavailable)
@bp.errorhandler(OperationalError)  # the site or key lookup could not reach the database
def _unavailable(exc: Exception) -> Response:
    response = jsonify(error="the events cannot be kept right now; retry later")
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return _error(exc.code or 500, exc.description or exc.name)


def _client() -> Client:
    return Client.of_request(request.environ, _pipeline().trusted_proxies)


def _within_rate_limit(pipeline: Pipeline, client: Client) -> Client:
    """The client, unless its address sent more than the limit (RateLimited)."""
    retry_after = pipeline.rate_limit.take(client.ip)
    if retry_after:
        raise RateLimited(retry_after)
    return client


def _accept_event(
    pipeline: Pipeline, body: bytes, environ: dict[str, Any], user: User | None = None
) -> None:
    """POST /api/event's work, for the Flask view and its fast path alike."""
    parsed = parse_event(decode_json(body), trusted=user is not None, now_ms=now_ms())
    client = Client.of_request(environ, pipeline.trusted_proxies)
    if user is None:
        _within_rate_limit(pipeline, client)
    pipeline.accept([parsed], client, user)


def _trusted_user() -> User | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    try:
        key = bearer_token(header)
    except ValueError:
        raise Unauthorized("Authorization: expected 'Bearer <API key>'") from None
    # Read for each request (no cache): a revoked key is refused from the next one on.
    with _pipeline().db.session() as session:
        caller = api_key_caller(session, key)
    if caller is None:
        raise Unauthorized("Authorization: unknown API key")
    if not caller.may_write:
        raise Rejected(READ_ONLY_KEY)
    return caller.user


def _body(limit: int) -> bytes:
    """The body, or RequestEntityTooLarge when it is over `limit` bytes.

    A byte more than the limit is read: Werkzeug refuses a Content-Length over its maximum,
    but a chunked body (no Content-Length) it cuts at the maximum without a word, and the
    cut body could parse (NDJSON) and be stored."""
    request.max_content_length = limit + 1
    body = request.get_data(cache=False)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


@bp.post("/api/event")
def event() -> Response:
    """One event, JSON (text/plain or application/json)."""
    settings = current_app.extensions["tracker.settings"]
    body = _body(settings.max_body_bytes)
    _accept_event(_pipeline(), body, request.environ, _trusted_user())
    return Response(ACCEPTED, 202, mimetype="application/json")


@bp.post("/api/events")
def events() -> tuple[Response, int]:
    """A trusted batch: a JSON array or NDJSON, up to MAX_BATCH_EVENTS events."""
    user = _trusted_user()
    if user is None:
        raise Unauthorized("Authorization: the batch endpoint needs 'Bearer <API key>'")
    items = _batch_items(_body(MAX_BATCH_BYTES))
    received = now_ms()
    parsed: list[IncomingEvent] = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse_event(item, trusted=True, now_ms=received))
        except EventError as exc:
            raise EventError(f"events[{index}].{exc}") from None
    # Answered once stored: a backend sees its events at once, and a fast importer is slowed
    # down to what the database takes.
    outcome = _pipeline().accept(parsed, _client(), user, wait=True)
    return _summary(outcome), 202


def _batch_items(body: bytes) -> list[Any]:
    text = body.lstrip()
    if text.startswith(b"["):
        items = decode_json(text)
    else:
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(decode_json(line))
                except EventError:
                    raise EventError(f"line {number}: not valid JSON") from None
    if not isinstance(items, list) or not items:
        raise EventError("body: expected a JSON array or NDJSON of events")
    if len(items) > MAX_BATCH_EVENTS:
        raise EventError(f"body: at most {MAX_BATCH_EVENTS} events per batch")
    return items


def _summary(outcome: Outcome) -> Response:
    return jsonify(accepted=outcome.accepted, dropped=dict(outcome.dropped))


@bp.get("/api/pixel.gif")
def pixel() -> Response:
    """A pageview for clients without JavaScript; always answers the GIF."""
    response = Response(GIF, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store"
    data = {
        "site": request.args.get("site", ""),
        "type": "pageview",
        "url": request.args.get("url", ""),
        "referrer": request.args.get("referrer", ""),
    }
    try:
        parsed = parse_event(data, trusted=False, now_ms=now_ms())
        _pipeline().accept([parsed], _within_rate_limit(_pipeline(), _client()))
    except (EventError, Rejected, RateLimited, StoreUnavailable, OperationalError):
        pass  # the image is all the page wants; nothing to tell it
    return response


class BeaconFastPath:
    """POST /api/event's common case, an untrusted event accepted, answered without Flask.

    Every pageview, click and engagement beacon comes here, thousands a second at peak, and
    Flask's request and app contexts, routing and response object cost about a third of
    the CPU of such a request (bench/: ingest, Flask 204 against plain WSGI 204). This
    runs the same pipeline and gives the same answer as `event()`. Anything else (another
    path, an API key, no Content-Length, a body over the limit, a malformed or refused
    event, a client over its rate limit, a store that cannot take it) goes on to Flask,
    which answers it as always; nothing was stored then, so nothing is stored twice.
    """

    def __init__(self, app: Flask) -> None:
        self.flask = app.wsgi_app
        self.pipeline: Pipeline = app.extensions["tracker.ingest"]
        self.max_body_bytes: int = app.extensions["tracker.settings"].max_body_bytes
        self.headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(ACCEPTED))),
            *CORS_HEADERS,
            # What the app adds to every response (Flask's after_request never sees these).
            *EVERY_RESPONSE.items(),
        ]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if (
            environ.get("PATH_INFO") != "/api/event"
            or environ.get("REQUEST_METHOD") != "POST"
            or "HTTP_AUTHORIZATION" in environ
        ):
            return self.flask(environ, start_response)
        body = self._body(environ)
        if body is not None and self._accepted(body, environ):
            start_response("202 ACCEPTED", self.headers)
            return [ACCEPTED]
        if body is not None:
            environ["wsgi.input"] = io.BytesIO(body)  # Flask reads it again
        return self.flask(environ, start_response)

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self.max_body_bytes:
            return None
        body = environ["wsgi.input"].read(int(length))
        return body if len(body) == int(length) else None

    def _accepted(self, body: bytes, environ: dict[str, Any]) -> bool:
        try:
            _accept_event(self.pipeline, body, environ)
        except (EventError, Rejected, RateLimited, StoreUnavailable, OperationalError):
            return False
        return True


class _NoSessionForIngest(SessionInterface):
    """Skips the login-cookie session on SESSIONLESS_PATHS (opening the signed session also
    cost more than a quarter of an event's CPU)."""

    def __init__(self, inner: SessionInterface) -> None:
        self.inner = inner

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path.startswith(SESSIONLESS_PATHS):
            return self.make_null_session(app)
        return self.inner.open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        self.inner.save_session(app, session, response)


def register(app: Flask) -> None:
    app.session_interface = _NoSessionForIngest(app.session_interface)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)  # beacons and servers post here, not our forms
    app.register_blueprint(bp)
    # Flask's way to put WSGI middleware in front of the app.
    app.wsgi_app = BeaconFastPath(app)  # type: ignore[method-assign]
