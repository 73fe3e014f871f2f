"""How pages and the Stats API meet the database: a 503 that says so while it is
unavailable, and a statement timeout for reads on PostgreSQL.

Unavailable: a refused or lost connection, a lock not granted in time (SQLite), a full
connection pool, a statement cancelled by the timeout below, or a report the columnar
store stopped at its time or memory limit (columnar_timeout_seconds and
columnar_memory_limit; its sentence says which). Pages answered 500 (the generic error
page) for all of them; now 503 with Retry-After and a page saying the database is
unavailable, or the limit (JSON under /api/). The collector has its own answers
(tracker.ingest.views). The page does not extend base.html: its header asks the database
who is logged in.

Timeout: GET requests (pages, reports, the Stats API, CSV downloads) run their
transactions with `SET LOCAL statement_timeout` (`query_timeout_seconds`), so an export
or report nobody waits for any more stops instead of holding a connection and the CPU
for good. Other requests write (settings, imports, deleting a site) and may take long.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tracker.columnar.engine import StoreLimit
from tracker.db.engine import statement_timeout_ms
from tracker.web.context import get_db, get_settings

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement the timeout cancelled
READS = ("GET", "HEAD")


def init_database(app: Flask) -> None:
    app.register_error_handler(OperationalError, _unavailable)
    app.register_error_handler(PoolTimeout, _unavailable)
    app.register_error_handler(StoreLimit, _unavailable)
    app.before_request(_start_timeout)
    app.teardown_request(_end_timeout)


def _start_timeout() -> None:
    seconds = get_settings().query_timeout_seconds
    reading = request.method in READS and seconds > 0 and not get_db().is_sqlite
    statement_timeout_ms.set(seconds * 1000 if reading else 0)


def _end_timeout(_exc: BaseException | None) -> None:
    # After the response is sent: streamed downloads (stream_with_context) end first.
    statement_timeout_ms.set(0)


def _unavailable(exc: Exception) -> Response:
    cancelled = _cancelled(exc)
    title = ""
    if isinstance(exc, StoreLimit):
        title, message = "Report stopped", str(exc)
    elif cancelled:
        seconds = get_settings().query_timeout_seconds
        message = f"This took longer than {seconds} seconds and was stopped; try a shorter period."
    else:
        message = "The database is unavailable right now; try again in a moment."
    log.warning("%s %s: %s", request.method, request.path, str(exc).splitlines()[0])
    if request.path.startswith("/api/"):
        response = jsonify(error=message)
    else:
        response = Response(render_template("unavailable.html", message=message, title=title))
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _cancelled(exc: Exception) -> bool:
    original = exc.orig if isinstance(exc, DBAPIError) else None
    return getattr(original, "sqlstate", None) == QUERY_CANCELED
