"""The maintained referrer spam list: `tracker spam update`, its job, and the collector
reading `<data_dir>/spam_hosts.txt` beside the bundled list (real files, a real HTTP server)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.helpers import DEFAULT_USER_AGENT
from tracker.cli import cli
from tracker.config import Settings
from tracker.db import Database
from tracker.db.models import DropCount, Event
from tracker.ingest import spam
from tracker.ingest.spam import (
    SpamList,
    bundled_hosts,
    normalise_host,
    parse_hosts,
    spam_hosts_path,
    update,
)
from tracker.jobs import find_job
from tracker.sites import add_site

LIST = """\
# A maintained list: comments, blank lines, capitals, an internationalised name.

Spam-Host-One.example
spam-two.example   # the second
semalt.com
пример-спам.рф
not a host
"""


class ListServer(ThreadingHTTPServer):
    """Serves `routes` (path -> status, content type, body) and counts the requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.requests = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: ListServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.requests += 1
        status, content_type, body = self.server.routes.get(
            self.path, (404, "text/plain", b"not found")
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def list_server() -> Iterator[ListServer]:
    server = ListServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def free_port_url() -> str:
    """A URL on a local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/spammers.txt"


def run_update(data_dir: Path, *args: str, **env: str) -> Result:
    environ = {"TRACKER_DATA_DIR": str(data_dir), **env}
    return CliRunner().invoke(cli, ["spam", "update", *args], env=environ)


def hosts_in(path: Path) -> list[str]:
    return [line for line in path.read_text("utf-8").splitlines() if not line.startswith("#")]


# --- the list's lines ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "host"),
    [
        ("semalt.com", "semalt.com"),
        ("  Best-SEO-Offer.COM. ", "best-seo-offer.com"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"),
        ("a.b.c.example.org", "a.b.c.example.org"),
        ("localhost", None),
        ("1.2.3.4", None),
        ("https://semalt.com/", None),
        ("semalt.com/page", None),
        ("two words.com", None),
        ("-bad.com", None),
        ("bad-.com", None),
        ("a..b.com", None),
        ("under_score.com", None),
        ("<html>", None),
        ("x" * 64 + ".com", None),
    ],
)
def test_lines_are_host_names_or_refused(line: str, host: str | None) -> None:
    assert normalise_host(line) == host


def test_a_list_is_parsed_without_comments_and_blank_lines() -> None:
    hosts, refused = parse_hosts(LIST)
    assert hosts == {
        "spam-host-one.example",
        "spam-two.example",
        "semalt.com",
        normalise_host("пример-спам.рф"),
    }
    assert refused == ["not a host"]


def test_bundled_hosts_are_normalised_like_downloaded_ones() -> None:
    hosts = bundled_hosts()
    assert len(hosts) > 50
    assert all(normalise_host(host) == host for host in hosts)
    assert "xn--80aagddcgkbcqbad7amllnejg6dya.xn--p1ai" in hosts


# --- tracker spam update -------------------------------------------------------------------


def test_update_from_a_file(tmp_path: Path) -> None:
    source = tmp_path / "spammers.txt"
    source.write_text(LIST, "utf-8")
    data_dir = tmp_path / "data"  # made by the update
    result = run_update(data_dir, "--from", str(source))
    assert result.exit_code == 0, result.output
    path = spam_hosts_path(data_dir)
    assert hosts_in(path) == sorted(parse_hosts(LIST)[0])
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in data_dir.iterdir()] == ["spam_hosts.txt"]  # no temporary file left
    assert result.output.splitlines() == [
        f"Loaded 4 spam hosts from {source} into {path}: 3 new, 1 already in the bundled list. "
        "1 lines refused, not host names: 'not a host'.",
        "A running server counts it within 30 seconds.",
    ]


def test_update_from_the_url_setting_and_from_a_url(
    tmp_path: Path, list_server: ListServer
) -> None:
    list_server.routes["/spammers.txt"] = (200, "text/plain", LIST.encode())
    list_server.routes["/other.txt"] = (200, "text/plain; charset=utf-8", b"other-spam.example\n")
    data_dir = tmp_path / "data"
    setting = list_server.url("/spammers.txt")
    result = run_update(data_dir, TRACKER_SPAM_LIST_URL=setting)  # no --from: the setting
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Loaded 4 spam hosts from {setting} into ")
    assert len(hosts_in(spam_hosts_path(data_dir))) == 4

    other = list_server.url("/other.txt")
    result = run_update(data_dir, "--from", other, TRACKER_SPAM_LIST_URL=setting)
    assert result.exit_code == 0, result.output
    assert hosts_in(spam_hosts_path(data_dir)) == ["other-spam.example"]  # replaced whole


def test_an_empty_setting_without_from_is_an_error(tmp_path: Path) -> None:
    result = run_update(tmp_path, TRACKER_SPAM_LIST_URL="")
    assert result.exit_code == 1
    assert result.output == ("Error: no list to read: setting spam_list_url is empty; use --from\n")


@pytest.mark.parametrize(
    ("route", "error"),
    [
        ("/page.html", "an HTML page, not a list of hosts"),
        ("/html-as-text.txt", "an HTML page, not a list of hosts"),
        ("/empty.txt", "no host names in it"),
        ("/comments.txt", "no host names in it"),
        ("/prose.txt", "mostly not host names (3 lines refused, such as 'This is not"),
        ("/binary.bin", "not a text file (not UTF-8)"),
        ("/missing.txt", "HTTP 404 Not Found"),
        ("/broken.txt", "HTTP 500 Internal Server Error"),
    ],
)
def test_bad_lists_are_refused_and_the_old_file_kept(
    tmp_path: Path, list_server: ListServer, route: str, error: str
) -> None:
    list_server.routes.update(
        {
            "/good.txt": (200, "text/plain", b"good-spam.example\n"),
            "/page.html": (200, "text/html", b"good-spam.example\nspam.example\n"),
            "/html-as-text.txt": (200, "text/plain", b"\n<!DOCTYPE html><title>Login</title>"),
            "/empty.txt": (200, "text/plain", b""),
            "/comments.txt": (200, "text/plain", b"# nothing\n\n# here\n"),
            "/prose.txt": (200, "text/plain", b"This is not\na list.\nof hosts at all\nsemalt.com"),
            "/binary.bin": (200, "application/octet-stream", b"\x89PNG\r\n\x1a\n\xff\xfe"),
            "/broken.txt": (500, "text/plain", b"oops"),
        }
    )
    data_dir = tmp_path / "data"
    assert run_update(data_dir, "--from", list_server.url("/good.txt")).exit_code == 0
    before = spam_hosts_path(data_dir).read_bytes()
    result = run_update(data_dir, "--from", list_server.url(route))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {list_server.url(route)}: {error}")
    assert len(result.output.splitlines()) == 1
    assert spam_hosts_path(data_dir).read_bytes() == before
    assert [p.name for p in data_dir.iterdir()] == ["spam_hosts.txt"]


def test_unreachable_missing_and_oversized_sources_are_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    spam_hosts_path(data_dir).write_text("kept.example\n")
    big = tmp_path / "big.txt"
    big.write_bytes(b"spam.example\n" * (spam.MAX_BYTES // 13 + 1))
    url = free_port_url()
    cases = [
        (url, f"Error: {url}: unreachable ("),
        (str(tmp_path / "nope.txt"), f"Error: {tmp_path / 'nope.txt'}: No such file or directory"),
        (str(big), f"Error: {big}: larger than 5 MB, not a host list"),
        ("ftp://example.com/list.txt", "Error: ftp://example.com/list.txt: not an http(s) URL"),
    ]
    for source, error in cases:
        result = run_update(data_dir, "--from", source)
        assert result.exit_code == 1, source
        assert result.output.startswith(error), result.output
        assert len(result.output.splitlines()) == 1
    assert spam_hosts_path(data_dir).read_text() == "kept.example\n"


# --- the collector ---------------------------------------------------------------------------


def post(client: FlaskClient, referrer: str) -> None:
    body = {
        "site": "example.com",
        "type": "pageview",
        "url": "https://example.com/",
        "referrer": referrer,
    }
    response = client.post(
        "/api/event",
        data=json.dumps(body),
        content_type="text/plain",
        headers={"User-Agent": DEFAULT_USER_AGENT},
    )
    assert response.status_code == 202


def stored_and_dropped(db: Database) -> tuple[int, int]:
    with db.session() as session:
        stored = session.scalar(select(func.count()).select_from(Event)) or 0
        spam_drops = session.scalar(
            select(func.sum(DropCount.count)).where(DropCount.reason == "spam")
        )
    return stored, spam_drops or 0


@pytest.fixture
def site_app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app()
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        add_site(session, "example.com")
    return app


def data_dir_of(app: Flask) -> Path:
    settings: Settings = app.extensions["tracker.settings"]
    return Path(settings.data_dir)


def test_bundled_hosts_are_dropped_without_a_data_dir_list(site_app: Flask) -> None:
    assert not spam_hosts_path(data_dir_of(site_app)).exists()
    client, db = site_app.test_client(), site_app.extensions["tracker.db"]
    post(client, "https://www.semalt.com/")
    post(client, "http://best.buttons-for-website.com/")
    post(client, "https://spam-two.example/")  # on no list yet
    assert stored_and_dropped(db) == (1, 2)


def test_events_from_downloaded_hosts_are_dropped_as_spam(
    make_app: Callable[..., Flask], tmp_path: Path, list_server: ListServer
) -> None:
    list_server.routes["/spammers.txt"] = (200, "text/plain", LIST.encode())
    data_dir = tmp_path / "data"
    update(list_server.url("/spammers.txt"), data_dir)
    app = make_app(data_dir=str(data_dir))  # a server started with the list in place
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        add_site(session, "example.com")
    client = app.test_client()
    post(client, "https://spam-two.example/offer?x=1")
    post(client, "https://www.spam-host-one.example/")  # a subdomain of a listed host
    post(client, "https://deep.sub.spam-host-one.example/")
    post(client, "https://notspam-two.example/")  # not listed (only ends like one): kept
    post(client, "https://пример-спам.рф/")  # the Unicode form of a listed IDNA host
    post(client, "https://semalt.com/")  # bundled, still dropped
    post(client, "https://www.google.com/")
    assert stored_and_dropped(db) == (2, 5)


def test_a_replaced_list_is_read_without_a_restart(
    site_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = 0.0
    real_monotonic = time.monotonic
    monkeypatch.setattr(spam, "monotonic", lambda: real_monotonic() + later)
    client, db = site_app.test_client(), site_app.extensions["tracker.db"]
    data_dir = data_dir_of(site_app)
    post(client, "https://fresh-spam.example/")  # not spam yet, and remembered so
    assert stored_and_dropped(db) == (1, 0)

    source = tmp_path / "new.txt"
    source.write_text("fresh-spam.example\n")
    update(str(source), data_dir)
    post(client, "https://fresh-spam.example/")  # the file is looked at every 30 s, no more
    assert stored_and_dropped(db) == (2, 0)

    later = spam.CHECK_SECONDS + 1
    post(client, "https://fresh-spam.example/")  # the same referrer: no stale cached answer
    post(client, "https://semalt.com/")  # the bundled list still counts
    assert stored_and_dropped(db) == (2, 2)

    later += spam.CHECK_SECONDS + 1
    source.write_text("other-spam.example\n")
    update(str(source), data_dir)  # replaced again: fresh-spam.example is off the list
    later += spam.CHECK_SECONDS + 1
    post(client, "https://fresh-spam.example/")
    assert stored_and_dropped(db) == (3, 2)

    os.unlink(spam_hosts_path(data_dir))  # removed: the bundled list alone
    later += spam.CHECK_SECONDS + 1
    post(client, "https://other-spam.example/")
    post(client, "https://semalt.com/")
    assert stored_and_dropped(db) == (4, 3)


def test_an_unreadable_list_keeps_the_one_in_use(tmp_path: Path, caplog) -> None:
    path = tmp_path / "spam_hosts.txt"
    path.write_text("listed.example\n")
    hosts = SpamList(path, check_seconds=0)
    assert hosts.is_spam("https://listed.example/")
    path.write_bytes(b"listed.example\n\xff\xfe broken\n")  # not UTF-8
    with caplog.at_level(logging.WARNING):
        assert hosts.is_spam("https://listed.example/")
    assert f"referrer spam list {path} unreadable" in caplog.text


# --- the job ---------------------------------------------------------------------------------


def test_the_job_updates_a_missing_or_week_old_list(
    tmp_path: Path, list_server: ListServer, caplog
) -> None:
    list_server.routes["/spammers.txt"] = (200, "text/plain", LIST.encode())
    url = list_server.url("/spammers.txt")
    settings = Settings(data_dir=str(tmp_path / "data"), spam_list_url=url)
    job = find_job("update_spam_list")
    path = spam_hosts_path(settings.data_dir)
    job.func(None, settings)  # type: ignore[arg-type]  # the job needs no database
    assert len(hosts_in(path)) == 4
    assert list_server.requests == 1

    job.func(None, settings)  # type: ignore[arg-type]
    assert list_server.requests == 1  # fresh: not fetched again

    week_ago = time.time() - 7 * 86400
    os.utime(path, (week_ago, week_ago))
    list_server.routes["/spammers.txt"] = (200, "text/plain", b"newer-spam.example\n")
    job.func(None, settings)  # type: ignore[arg-type]
    assert list_server.requests == 2
    assert hosts_in(path) == ["newer-spam.example"]

    os.utime(path, (week_ago, week_ago))
    broken = settings.with_overrides(spam_list_url=free_port_url())
    with caplog.at_level(logging.WARNING, logger="tracker.jobs"):
        job.func(None, broken)  # type: ignore[arg-type]  # logs, raises nothing
    warnings = [r for r in caplog.records if r.name == "tracker.jobs"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].getMessage().startswith("referrer spam list not updated: http://127.0.0.1:")
    assert hosts_in(path) == ["newer-spam.example"]  # kept


def test_the_job_does_nothing_without_a_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), spam_list_url="")
    find_job("update_spam_list").func(None, settings)  # type: ignore[arg-type]
    assert not spam_hosts_path(settings.data_dir).exists()
