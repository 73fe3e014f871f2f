"""Which logged requests are pageviews, and why the others are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import accesslog
from bench.common import Options
from tracker.accesslog.formats import Request
from tracker.accesslog.pages import Skip, page_path, skip_reason


def request(target: str = "/", **fields: object) -> Request:
    values: dict[str, object] = {
        "ip": "198.51.100.1",
        "timestamp_ms": 1_767_225_600_000,
        "method": "GET",
        "target": target,
        "status": 200,
        **fields,
    }
    return Request(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (request("/"), None),
        (request("/pricing?utm_source=news"), None),
        (request("/blog/v1.2"), None),  # a dot in a page's name is no extension we know
        (request("/index.html", method="HEAD", status=304), None),
        (request("http://example.com/docs"), None),  # absolute form, sent through a proxy
        (request("/", method="POST"), Skip.METHOD),
        (request("\x16\x03\x01", method="", status=400), Skip.METHOD),
        (request("/missing", status=404), Skip.STATUS),
        (request("/moved", status=301), Skip.STATUS),
        (request("/video", status=206), Skip.STATUS),
        (request("*"), Skip.MALFORMED),
        (request("/healthz"), Skip.ENDPOINT),
        (request("/api/event"), Skip.ENDPOINT),
        (request("/tracker.js"), Skip.ENDPOINT),
        (request("/.well-known/acme-challenge/x"), Skip.ENDPOINT),
        (request("/static/app.CSS?v=3"), Skip.ASSET),
        (request("/favicon.ico"), Skip.ASSET),
        (request("/files/report.pdf"), Skip.ASSET),
        (request("/feed", content_type="application/rss+xml"), Skip.ASSET),
        (request("/page", content_type="text/html; charset=utf-8"), None),
        (request("/page", content_type="application/xhtml+xml"), None),
    ],
)
def test_skip_reason(req: Request, reason: Skip | None) -> None:
    assert skip_reason(req) == reason


def test_long_targets_are_sorted_as_short_ones() -> None:
    """Targets' verdicts are remembered up to a length; longer ones are read each time."""
    long = "/" + "a" * 300
    assert skip_reason(request(long + ".css")) is Skip.ASSET
    assert skip_reason(request(long + "?x=1")) is None
    assert skip_reason(request("/healthz" + "?" + "a" * 300)) is Skip.ENDPOINT


def test_page_path() -> None:
    assert page_path("/a/b?c=d") == "/a/b"
    assert page_path("https://example.com") == "/"
    assert page_path("http://[bad") is None
    assert page_path("example.com/") is None


def test_collector_reasons_keep_their_stored_names() -> None:
    assert [Skip.BOT.value, Skip.SPAM.value, Skip.DUPLICATE.value] == ["bot", "spam", "duplicate"]


def test_bench_runs_tiny(tmp_path: Path) -> None:
    figures = accesslog.run(Options(workdir=tmp_path, results=tmp_path, events=3000, reps=1))
    assert [f.metric for f in figures] == [
        "read and decode lines (floor)",
        "combined: parse",
        "combined: parse + page filter",
        "caddy JSON: parse + page filter",
        "combined: import into SQLite",
        "combined: import into SQLite, per CPU second",
    ]
    assert all(f.value > 0 for f in figures)
    assert all(f.baseline == figures[0].value for f in figures[1:])
