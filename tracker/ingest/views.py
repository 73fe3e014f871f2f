"""HTTP endpoints of the collector: POST /api/event, POST /api/events, GET /api/pixel.gif.

Answers: 202 accepted (bots and spam too, so they learn nothing); 400 malformed, with
{"error": "..."} naming the field; 401 bad API key; 403 unknown site or page host not
allowed; 413 body too large; 429 with Retry-After when one address sends more events than
`ingest_rate_limit`; 503 with Retry-After when the events cannot be kept.
Any origin may post (CORS, no credentials); text/plain bodies need no preflight.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_input_stream

from tracker.accounts import READ_ONLY_KEY, api_key_caller, bearer_token
from tracker.clock import now_ms
from tracker.db.models import User
from tracker.ingest.parse import EventError, IncomingEvent, decode_json, parse_event
from tracker.ingest.pipeline import Client, Outcome, Pipeline, Rejected
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


@bp.after_request
def _cors(response: Response) -> Response:
    response.headers.extend(CORS_HEADERS)
    return response


# What the collector refuses with, answered as {"error": "..."} with its status.
REFUSALS = (
    EventError,
    Unauthorized,
    Rejected,
    RateLimited,
    StoreUnavailable,
    OperationalError,  # the site or key lookup could not reach the database
    HTTPException,  # a body over the limit (413), a client gone mid-body (400), 405...
)


def refusal(exc: Exception) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    """The status, message and extra headers a refusal (one of REFUSALS) is answered with."""
    if isinstance(exc, EventError):
        return 400, str(exc), ()
    if isinstance(exc, Unauthorized):
        return 401, str(exc), ()
    if isinstance(exc, Rejected):
        return 403, str(exc), ()
    if isinstance(exc, RateLimited):
        return 429, str(exc), (("Retry-After", str(exc.retry_after)),)
    if isinstance(exc, StoreUnavailable | OperationalError):
        message = "the events cannot be kept right now; retry later"
        return 503, message, (("Retry-After", str(RETRY_AFTER_SECONDS)),)
    if isinstance(exc, RequestEntityTooLarge):
        return 413, "body: larger than the limit of this endpoint", ()
    assert isinstance(exc, HTTPException)
    return exc.code or 500, exc.description or exc.name, ()


def _refused(exc: Exception) -> Response:
    status, message, headers = refusal(exc)
    response = jsonify(error=message)
    response.status_code = status
    response.headers.extend(headers)
    return response


for _refusal_type in REFUSALS:
    bp.register_error_handler(_refusal_type, _refused)


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
    parsed = parse_event(decode_json(body), trusted=user is not None, now_ms=now_ms())
    client = Client.of_request(environ, pipeline.trusted_proxies)
    if user is None:
        _within_rate_limit(pipeline, client)
    pipeline.accept([parsed], client, user)


def _trusted_user(pipeline: Pipeline, header: str) -> User | None:
    """The API key's user for an Authorization header; None without one."""
    if not header:
        return None
    try:
        key = bearer_token(header)
    except ValueError:
        raise Unauthorized("Authorization: expected 'Bearer <API key>'") from None
    # Read for each request (no cache): a revoked key is refused from the next one on.
    with pipeline.db.session() as session:
        caller = api_key_caller(session, key)
    if caller is None:
        raise Unauthorized("Authorization: unknown API key")
    if not caller.may_write:
        raise Rejected(READ_ONLY_KEY)
    return caller.user


def _body(environ: dict[str, Any], limit: int) -> bytes:
    """The body, or RequestEntityTooLarge when it is over `limit` bytes.

    A byte more than the limit is read: Werkzeug refuses a Content-Length over its maximum,
    but a chunked body (no Content-Length) it cuts at the maximum without a word, and the
    cut body could parse (NDJSON) and be stored."""
    body = get_input_stream(environ, max_content_length=limit + 1).read()
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def answer_event(
    pipeline: Pipeline, environ: dict[str, Any], max_body_bytes: int, dumps: Callable[[Any], str]
) -> Answer:
    """POST /api/event, whole: one event, JSON (text/plain or application/json), from a
    beacon or with an API key; 202, or a refusal as {"error": "..."}."""
    try:
        body = _body(environ, max_body_bytes)
        user = _trusted_user(pipeline, environ.get("HTTP_AUTHORIZATION", ""))
        _accept_event(pipeline, body, environ, user)
    except REFUSALS as exc:
        status, message, headers = refusal(exc)
        return Answer(status, (dumps({"error": message}) + "\n").encode(), headers)
    return Answer(202, ACCEPTED)


@bp.post("/api/event")
def event() -> Response:
    """Declared for the route table and the CORS preflight; BeaconEndpoint answers POSTs in
    front of Flask, and this view gives its answer when the app runs without it."""
    settings = current_app.extensions["tracker.settings"]
    answer = answer_event(
        _pipeline(), request.environ, settings.max_body_bytes, current_app.json.dumps
    )
    return Response(answer.body, answer.status, answer.headers, mimetype="application/json")


@bp.post("/api/events")
def events() -> tuple[Response, int]:
    """A trusted batch: a JSON array or NDJSON, up to MAX_BATCH_EVENTS events."""
    user = _trusted_user(_pipeline(), request.headers.get("Authorization", ""))
    if user is None:
        raise Unauthorized("Authorization: the batch endpoint needs 'Bearer <API key>'")
    items = _batch_items(_body(request.environ, MAX_BATCH_BYTES))
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


class BeaconEndpoint:
    """POST /api/event, answered in front of Flask: the only path of the beacon's events.

    Every pageview, click and engagement beacon comes here, thousands a second at peak, and
    through Flask (its request and app contexts, routing, response object, error handlers)
    an event cost the server 1.5 to 2 times the CPU (`make bench`: ingest, with and without
    this). Everything else goes on to Flask.
    """

    def __init__(self, app: Flask) -> None:
        self.flask = app.wsgi_app
        self.pipeline: Pipeline = app.extensions["tracker.ingest"]
        self.max_body_bytes: int = app.extensions["tracker.settings"].max_body_bytes
        self.dumps = app.json.dumps
        # What the blueprint and the app add to every response (after_request never runs here).
        self.headers = [*CORS_HEADERS, *EVERY_RESPONSE.items()]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/api/event" or environ.get("REQUEST_METHOD") != "POST":
            return self.flask(environ, start_response)
        answer = answer_event(self.pipeline, environ, self.max_body_bytes, self.dumps)
        start_response(
            f"{answer.status} {HTTP_STATUS_CODES[answer.status].upper()}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(answer.body))),
                *answer.headers,
                *self.headers,
            ],
        )
        return [answer.body]


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
    app.wsgi_app = BeaconEndpoint(app)  # type: ignore[method-assign]
