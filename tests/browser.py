"""Real-browser test harness: Debian's chromium through Playwright, live HTTP servers.

Fixtures (a pytest plugin, loaded by conftest.py):
- `browser`: one headless chromium for the session (Debian's /usr/bin/chromium, never a
  downloaded one) that presents itself as a desktop Chrome (`USER_AGENT`); tests open their
  own context (`browser.new_context()`).
- `live_server`: the app from `make_app`, served over real HTTP in a thread.
- `test_site`: a small site on another port (so another origin than the collector) whose
  pages tests define; it also records what pages post to its `/record`.

A browser context costs chromium about a third of a CPU-second and a page load a fifth, so
tests open one context where the subject allows and start logged in (`logged_in_context`)
unless the login is what they test.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from tests.helpers import DEFAULT_USER_AGENT, log_in
from tracker.accounts import find_user
from tracker.db import Database

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A person's Chrome: the collector drops headless browsers as bots. Set for the whole browser,
# because a per-context override does not reach beacons sent while a page unloads.
USER_AGENT = DEFAULT_USER_AGENT
T = TypeVar("T")


class LiveServer:
    """A WSGI app on a free 127.0.0.1 port, served by a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # A short poll makes shutdown() quick (tests start and stop several servers each).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class TestSite:
    """Pages keyed by path (HTML or bytes), plus `/record`, which keeps POSTed JSON bodies."""

    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, str]] = {}
        self.recorded: list[Any] = []
        self.server = LiveServer(self._wsgi)
        self.url = self.server.url

    def page(self, path: str, body: str | bytes, mimetype: str = "text/html") -> str:
        """Serve `body` at `path`; returns the page's full URL."""
        data = body.encode() if isinstance(body, str) else body
        self.pages[path] = (data, mimetype)
        return self.url + path

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.path == "/record" and request.method == "POST":
            self.recorded.append(json.loads(request.get_data(as_text=True)))
            return Response(status=204)(environ, start_response)
        page = self.pages.get(request.path)
        if page is None:
            return Response("not found", status=404)(environ, start_response)
        return Response(page[0], mimetype=page[1])(environ, start_response)


def log_in_page(page: Any, base: str, email: str, password: str) -> None:
    """Log a browser page in through the login form of the server at `base`."""
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")


def logged_in_context(browser: Any, server: LiveServer, email: str, **options: Any) -> Any:
    """A new browser context (`options` as for `browser.new_context`) holding the session
    cookie of `email`'s login on `server`, signed by the app with what the login form stores
    in the session (helpers.log_in; the last-login time is not noted): for tests whose subject
    is not the login itself (the form costs two page loads)."""
    app: Flask = server.app
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        user = find_user(session, email)
    assert user is not None, f"no user {email}"
    client = app.test_client()
    log_in(client, user)
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    context = browser.new_context(**options)
    context.add_cookies(
        [{"name": cookie.key, "value": cookie.value, "url": server.url, "httpOnly": True}]
    )
    return context


def wait_for(probe: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll until `probe()` is truthy (beacons arrive asynchronously); its last value. The
    deadline is generous: a loaded machine is slow, and a passing probe ends the wait."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} missing: `make test` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*LAUNCH_ARGS, f"--user-agent={USER_AGENT}"]
        )
        yield browser
        browser.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture
def test_site() -> Iterator[TestSite]:
    site = TestSite()
    yield site
    site.server.stop()
