"""A real browser (Debian's chromium via Playwright) posts events cross-origin.

`browser` is the shared session browser (tests/browser.py): one Playwright per session.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.browser import LiveServer
from tests.helpers import DEFAULT_USER_AGENT
from tracker.db.models import Event
from tracker.sites import add_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGE = """<!doctype html><title>Shop</title><script>
const collector = new URLSearchParams(location.search).get("collector");
const event = (type, name) => JSON.stringify(
  {site: "localhost", type, name, url: location.href, referrer: "https://www.bing.com/"});
window.results = Promise.all([
  fetch(collector + "/api/event", {method: "POST", body: event("pageview"),
        headers: {"Content-Type": "text/plain"}}).then(r => r.status),
  fetch(collector + "/api/event", {method: "POST", body: event("event", "Signup"),
        headers: {"Content-Type": "application/json"}}).then(r => r.status),
  Promise.resolve(navigator.sendBeacon(collector + "/api/event", event("click", "Buy"))),
]);
</script>"""


@pytest.fixture
def collector(app: Flask) -> Iterator[str]:
    server = LiveServer(app)
    yield server.url
    server.stop()


@pytest.fixture
def page_origin() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll makes shutdown() quick (the default half second was each test's teardown).
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://localhost:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_browser_posts_cross_origin(
    app: Flask, collector: str, page_origin: str, browser: Any
) -> None:
    db = app.extensions["tracker.db"]
    with db.session() as session:
        add_site(session, "localhost")
    # A headless browser's own user agent is (rightly) treated as a bot.
    context = browser.new_context(user_agent=DEFAULT_USER_AGENT)
    try:
        page = context.new_page()
        page.goto(f"{page_origin}/shop?collector={collector}")
        assert page.evaluate("window.results") == [202, 202, True]
    finally:
        context.close()
    # sendBeacon returns before its request is done; wait for the rows, bounded, each look
    # in a session of its own (a fresh snapshot).
    stored: list[tuple[str, str, str]] = []
    for _ in range(100):
        with db.session() as session:
            stored = sorted((e.kind, e.name, e.path) for e in session.scalars(select(Event)))
        if len(stored) == 3:
            break
        threading.Event().wait(0.05)
    assert stored == [
        ("click", "Buy", "/shop"),
        ("event", "Signup", "/shop"),
        ("pageview", "", "/shop"),
    ]
