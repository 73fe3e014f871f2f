"""`tracker import logs`: access logs stored as visits, hand-counted, on both databases."""

from __future__ import annotations

import gc
import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from tracker.accesslog import load
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import DailySalt, Event, LogFile, Visit
from tracker.ingest.parse import EventError, trusted_ip
from tracker.sites import add_site
from tracker.stats import SiteRef, parse_query
from tracker.stats import run as run_query
from tracker.stats.rollups import refresh

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX_QUOTED = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 \\"beta\\"'
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
LONG = CHROME + " " + "x" * 9000  # a line of over 8 KB


def clf(
    ip: str, time: str, request: str, status: int = 200, ref: str = "-", ua: str = CHROME
) -> bytes:
    return f'{ip} - - [{time}] "{request}" {status} 512 "{ref}" "{ua}"\n'.encode()


# Hand count: A has two visits (/ then /pricing 5 min later; /docs 45 min after that, a
# bounce), B one bounce, C one visit across midnight (2 pages), D one bounce: 7 pages,
# 5 visits, 3 bounces. Skipped: asset, method, status, bot, endpoint, malformed, one each.
LINES = [
    clf("198.51.100.1", "02/Mar/2026:09:00:00 +0000", "GET /?utm_source=news HTTP/1.1"),
    clf("198.51.100.1", "02/Mar/2026:09:00:01 +0000", "GET /static/app.css HTTP/1.1"),
    clf(
        "198.51.100.1",
        "02/Mar/2026:09:05:00 +0000",
        "GET /pricing HTTP/1.1",
        ref="https://example.com/",
    ),
    clf(
        "2001:db8::1",
        "02/Mar/2026:10:10:00 +0100",
        "GET / HTTP/1.1",
        ref="https://www.google.com/",
        ua=FIREFOX_QUOTED,
    ),
    clf("2001:db8::1", "02/Mar/2026:09:10:30 +0000", "POST /contact HTTP/1.1", ua=FIREFOX_QUOTED),
    clf("2001:db8::1", "02/Mar/2026:09:11:00 +0000", "GET /missing HTTP/1.1", 404),
    clf("66.249.66.1", "02/Mar/2026:09:12:00 +0000", "GET / HTTP/1.1", ua=BOT),
    clf("10.0.0.1", "02/Mar/2026:09:13:00 +0000", "GET /healthz HTTP/1.1"),
    b"this is not a log line\n",
    clf("198.51.100.1", "02/Mar/2026:09:50:00 +0000", "GET /docs HTTP/1.1"),
    # A Latin-1 byte, not UTF-8: stored as U+FFFD.
    clf("203.0.113.5", "02/Mar/2026:23:50:00 +0000", "GET /caf\xe9 HTTP/1.1").replace(
        "é".encode(), b"\xe9"
    ),
    clf("203.0.113.5", "03/Mar/2026:00:10:00 +0000", "GET /next HTTP/1.1"),
    clf("192.0.2.44", "03/Mar/2026:08:00:00 +0000", "GET /long HTTP/1.1", ua=LONG),
]


# The visits LINES make, counted by hand: entry page, pageviews, bounce, source, exit page.
LINES_VISITS = [
    ("/", 2, False, "news", "/pricing"),
    ("/", 1, True, "Google", "/"),
    ("/docs", 1, True, "Direct / None", "/docs"),
    ("/caf\ufffd", 2, False, "Direct / None", "/next"),
    ("/long", 1, True, "Direct / None", "/long"),
]


def setup_site(database_url: str) -> Database:
    db = Database(database_url)
    with db.session() as session:
        add_site(session, "example.com")
    return db


def run(database_url: str, tmp_path: Path, *args: str, stdin: bytes | None = None) -> Result:
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "d")}
    return CliRunner().invoke(
        cli, ["import", "logs", "--site", "example.com", *args], env=env, input=stdin
    )


def visits(db: Database) -> list[tuple[str, int, bool, str, str]]:
    with db.session() as session:
        rows = session.scalars(select(Visit).order_by(Visit.started_ms)).all()
        return [(v.entry_page, v.pageviews, v.is_bounce, v.source, v.exit_page) for v in rows]


def test_import_counts_visits_as_live_traffic(database_url: str, tmp_path: Path) -> None:
    db = setup_site(database_url)
    path = tmp_path / "access.log"
    path.write_bytes(b"".join(LINES))
    result = run(database_url, tmp_path, str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{path} (combined): 13 lines read, 7 pages, 5 visits, "
        "2026-03-02 09:00 to 2026-03-03 08:00 UTC",
        "  skipped: asset 1, bot 1, endpoint 1, malformed 1, method 1, status 1",
        "  line 9: not a combined or common log line",
    ]
    assert "Importing" in result.stderr and "lines/s" in result.stderr
    assert visits(db) == LINES_VISITS
    with db.session() as session:
        times = session.execute(
            select(Event.path, Event.time_on_page_ms).order_by(Event.timestamp_ms)
        ).all()
        assert session.scalars(select(DailySalt)).all() == []  # the run's salts: never stored
    db.dispose()
    # Time on page from the next pageview; unknown for a visit's last page.
    assert times[:2] == [("/", 300_000), ("/pricing", None)]
    assert ("/caf\ufffd", 1_200_000) in times


def test_memos_emptied_when_full_change_nothing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages, addresses and user agents are validated once each, in memos emptied when
    full: with room for two of each, the hand count is the same."""
    monkeypatch.setattr(load, "MEMO_SIZE", 2)
    db = setup_site(database_url)
    path = tmp_path / "access.log"
    path.write_bytes(b"".join(LINES))
    result = run(database_url, tmp_path, str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith(
        "13 lines read, 7 pages, 5 visits, 2026-03-02 09:00 to 2026-03-03 08:00 UTC"
    )
    assert visits(db) == LINES_VISITS
    db.dispose()


def test_an_import_leaves_the_collector_as_it_found_it(database_url: str, tmp_path: Path) -> None:
    """Objects from before the import are set aside from the garbage collector while it
    runs, then handed back; a process that froze its own (the server's workers) keeps them
    frozen."""
    db = setup_site(database_url)
    path = tmp_path / "access.log"
    path.write_bytes(b"".join(LINES))
    gc.unfreeze()  # what the suite froze between modules (tests/conftest.py)
    assert gc.get_freeze_count() == 0
    assert run(database_url, tmp_path, str(path)).exit_code == 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        path.write_bytes(b"".join(LINES[:3]) + LINES[9])  # the same start, another line
        assert run(database_url, tmp_path, "--dry-run", str(path)).exit_code == 0
        assert gc.get_freeze_count() > 0  # still frozen (some may have been freed since)
    finally:
        gc.unfreeze()
    db.dispose()


@pytest.mark.parametrize(
    "address",
    [
        "198.51.100.1",
        "0.0.0.0",
        "255.255.255.255",
        "10.0.0.01",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        " 1.2.3.4",
        "1.2.3.4 ",
        "١.2.3.4",
        "2001:DB8::1",
        "::ffff:1.2.3.4",
        "",
        "1.2.3.4\x00",
        "not an address",
    ],
)
def test_plain_ipv4_addresses_are_checked_as_the_collector_checks_them(address: str) -> None:
    """The shortcut for plain IPv4 addresses gives what the collector's check gives, and
    takes the collector's path for anything else."""
    try:
        expected: str | None = trusted_ip(address)
    except EventError:
        with pytest.raises(EventError):
            load.checked_ip(address)
        return
    assert load.checked_ip(address) == expected


def test_plain_ipv4_addresses_take_the_shortcut() -> None:
    address = "".join(["198.51.", "100.1"])  # a string of its own, as a parsed line's
    assert load.checked_ip(address) is address  # the parser would return a copy


def test_same_and_rotated_files_store_each_line_once(database_url: str, tmp_path: Path) -> None:
    db = setup_site(database_url)
    early = tmp_path / "access.log"
    early.write_bytes(b"".join(LINES[:4]))  # the log at 09:10, as first imported
    assert run(database_url, tmp_path, str(early)).exit_code == 0
    again = run(database_url, tmp_path, str(early))
    assert again.stdout.splitlines() == [
        f"{early} (combined): 4 lines read, 0 pages, 0 visits",
        "  4 lines were stored by an earlier import: skipped",
    ]
    rotated = tmp_path / "access.log.1.gz"  # the same log, a day later, rotated
    rotated.write_bytes(gzip.compress(b"".join(LINES)))
    result = run(database_url, tmp_path, str(rotated))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"{rotated} (combined): 13 lines read, 4 pages, 3 visits, "
        "2026-03-02 09:50 to 2026-03-03 08:00 UTC"
    )
    assert "4 lines were stored by an earlier import: skipped" in result.stdout
    assert [v[:3] for v in visits(db)] == [
        ("/", 2, False),
        ("/", 1, True),
        ("/docs", 1, True),
        ("/caf\ufffd", 2, False),
        ("/long", 1, True),
    ]
    with db.session() as session:
        ledger = session.scalars(select(LogFile)).one()
        assert (ledger.bytes, ledger.lines, ledger.pages) == (len(b"".join(LINES)), 13, 7)
    db.dispose()


def test_a_file_that_fails_stores_nothing(database_url: str, tmp_path: Path) -> None:
    db = setup_site(database_url)
    packed = gzip.compress(b"".join(LINES * 300))
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(packed[: len(packed) // 2])  # a copy interrupted halfway
    good = tmp_path / "good.log"
    good.write_bytes(b"".join(LINES[:3]))
    result = run(database_url, tmp_path, str(cut), str(good))
    assert result.exit_code == 1
    assert "cut.log.gz: Compressed file ended before the end-of-stream marker" in result.stderr
    assert f"{good} (combined): 3 lines read, 2 pages, 1 visits" in result.stdout
    assert visits(db) == [("/", 2, False, "news", "/pricing")]
    with db.session() as session:
        assert [f.name for f in session.scalars(select(LogFile))] == [str(good)]
    db.dispose()


def test_a_file_that_begins_like_another_but_differs_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    db = setup_site(database_url)
    common = b"".join(LINES[:4]) + b"x" * 5000 + b"\n"  # the first 4 KB, which identify it
    first = tmp_path / "a.log"
    first.write_bytes(common + LINES[9])
    assert run(database_url, tmp_path, str(first)).exit_code == 0
    other = tmp_path / "b.log"
    other.write_bytes(common + b"".join(LINES[10:]))
    result = run(database_url, tmp_path, str(other))
    assert result.exit_code == 1
    assert f"{other}: begins as {first}" in result.stderr
    assert "nothing imported" in result.stderr
    assert len(visits(db)) == 3
    db.dispose()


def test_dry_run_counts_and_stores_nothing(database_url: str, tmp_path: Path) -> None:
    db = setup_site(database_url)
    path = tmp_path / "access.log"
    path.write_bytes(b"".join(LINES))
    result = run(database_url, tmp_path, "--dry-run", str(path))
    assert result.exit_code == 0, result.output
    assert "13 lines read, 7 pages, 5 visits" in result.stdout
    assert result.stdout.splitlines()[-1] == "Dry run: nothing was stored."
    assert visits(db) == []
    with db.session() as session:
        assert session.scalars(select(LogFile)).all() == []
    db.dispose()


def test_standard_input_and_a_partial_last_line(database_url: str, tmp_path: Path) -> None:
    db = setup_site(database_url)
    partial = b"".join(LINES[:3]) + LINES[3].rstrip(b"\n")
    result = run(database_url, tmp_path, "--format", "combined", "-", stdin=partial)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "standard input (combined): 3 lines read, 2 pages, 1 visits, "
        "2026-03-02 09:00 to 2026-03-02 09:05 UTC",
        "  skipped: asset 1",
        "  the last line has no end of line (still being written): left for later",
    ]
    # The same log, now complete: the waiting line is stored, the others are not again.
    result = run(database_url, tmp_path, "-", stdin=b"".join(LINES[:4]))
    assert "4 lines read, 1 pages, 1 visits" in result.stdout
    assert len(visits(db)) == 2
    db.dispose()


def test_visits_across_a_dst_change(database_url: str, tmp_path: Path) -> None:
    """Paris leaves summer time at 03:00 on 2026-10-25: 02:50 +0200 and then 02:10 +0100 are
    twenty minutes apart, one visit (read as local times they would go back 40 minutes)."""
    db = setup_site(database_url)
    path = tmp_path / "paris.log"
    path.write_bytes(
        clf("198.51.100.1", "25/Oct/2026:02:50:00 +0200", "GET /a HTTP/1.1")
        + clf("198.51.100.1", "25/Oct/2026:02:10:00 +0100", "GET /b HTTP/1.1")
        + clf("198.51.100.1", "25/Oct/2026:02:45:00 +0100", "GET /c HTTP/1.1")
    )
    result = run(database_url, tmp_path, str(path))
    assert "3 lines read, 3 pages, 2 visits" in result.stdout
    assert visits(db) == [
        ("/a", 2, False, "Direct / None", "/b"),
        ("/c", 1, True, "Direct / None", "/c"),
    ]
    db.dispose()


def test_bad_options_are_named(database_url: str, tmp_path: Path) -> None:
    setup_site(database_url).dispose()
    path = tmp_path / "access.log"
    path.write_bytes(LINES[0])
    result = run(database_url, tmp_path, "--timezone", "Mars/Olympus", str(path))
    assert result.exit_code == 2
    assert "'Mars/Olympus' is not a time zone name" in result.output
    result = run(database_url, tmp_path, "--format", "nginx", str(path))
    assert "--format nginx needs --log-format" in result.output
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "d")}
    result = CliRunner().invoke(cli, ["import", "logs", "--site", "nope.org", str(path)], env=env)
    assert "site: 'nope.org' is not a site registered here" in result.output
    result = run(database_url, tmp_path, str(tmp_path / "missing.log"))
    assert result.exit_code == 1
    assert "missing.log: No such file or directory" in result.stderr


def test_reports_read_the_imported_history(database_url: str, tmp_path: Path) -> None:
    """What a traffic manager sees: the stats layer's numbers, rollups built by the job as
    for any late events, agree with the hand count."""
    db = setup_site(database_url)
    path = tmp_path / "access.log"
    path.write_bytes(b"".join(LINES))
    assert run(database_url, tmp_path, str(path)).exit_code == 0
    refresh(db)
    site = SiteRef(1, "example.com", "UTC")
    period = {"period": "custom", "from": "2026-03-02", "to": "2026-03-03"}
    metrics = {"metrics": "visitors,visits,pageviews,bounce_rate,visit_duration"}
    totals = run_query(db, parse_query(site, {**period, **metrics})).totals
    # Visit durations: A's first visit 300 s, C's 1,200 s, the three bounces 0: 300 s mean.
    assert totals == {
        "visitors": 4,
        "visits": 5,
        "pageviews": 7,
        "bounce_rate": 60.0,
        "visit_duration": 300,
    }
    by_source = run_query(
        db, parse_query(site, {**period, "metrics": "visits", "dimension": "visit:source"})
    ).rows
    db.dispose()
    assert sorted((row["visit:source"], row["visits"]) for row in by_source) == [
        ("Direct / None", 3),
        ("Google", 1),
        ("news", 1),
    ]


def test_a_custom_nginx_format(database_url: str, tmp_path: Path) -> None:
    db = setup_site(database_url)
    path = tmp_path / "app.log"
    path.write_bytes(
        b"example.com|2026-03-02T10:00:00+01:00|198.51.100.1|GET /a?gclid=x HTTP/1.1|200|"
        b"text/html|" + CHROME.encode() + b"\n"
        b"example.com|2026-03-02T10:00:01+01:00|198.51.100.1|GET /a.js HTTP/1.1|200|"
        b"application/javascript|" + CHROME.encode() + b"\n"
        b"shop.example|2026-03-02T10:01:00+01:00|198.51.100.1|GET /b HTTP/1.1|200|"
        b"text/html|" + CHROME.encode() + b"\n"
    )
    fmt = (
        "$host|$time_iso8601|$remote_addr|$request|$status|$sent_http_content_type|$http_user_agent"
    )
    result = run(database_url, tmp_path, "--log-format", fmt, str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{path} (nginx): 3 lines read, 1 pages, 1 visits, "
        "2026-03-02 09:00 to 2026-03-02 09:00 UTC",
        "  skipped: asset 1, host 1",
    ]
    with db.session() as session:
        visit = session.scalars(select(Visit)).one()
        # A Google Ads click id in the logged URL: the channel, as for live traffic.
        assert (visit.entry_page, visit.source, visit.channel) == ("/a", "Google", "Paid Search")
    db.dispose()
