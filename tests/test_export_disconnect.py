"""A client that leaves mid-download: closing the CSV response ends the export's database
work at once (its server-side cursor closed, its connection back in the pool, nothing of it
left running on PostgreSQL), through the test client and through a real socket."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator
from typing import Any, cast

import pytest
from flask import Flask
from sqlalchemy import Engine, Table, insert, text
from sqlalchemy.engine import make_url

from tests.browser import LiveServer, wait_for
from tests.seeds import seeded_world
from tracker.db import Database, analyze
from tracker.db.models import Event, Visit
from tracker.export import TABLES, export_csv, row_count
from tracker.sites import add_site, find_site
from tracker.stats import parse_query
from tracker.stats.rows import BATCH_ROWS

visits_t = cast(Table, Visit.__table__)
events_t = cast(Table, Event.__table__)

SITE = "big.example"
START_MS = 1_772_442_000_000  # 2026-03-02T09:00:00Z
VISITS = 1_000
EVENTS_PER_VISIT = 16  # 16,000 events: four batches, megabytes of CSV
EVENTS_URL = f"/sites/{SITE}/export/events.csv?from=2026-03-02&to=2026-03-03"
TITLE = "A page title long enough that the CSV runs to megabytes " * 4


def store_big_site(db: Database) -> None:
    """A public site with shared export (downloads need no login) and VISITS visits of
    EVENTS_PER_VISIT events each."""
    with db.session() as session:
        site = add_site(session, SITE)
        site.public = site.shared_export = True
        site_id = site.id
    visit_rows = [
        {
            "id": v + 1,
            "site_id": site_id,
            "visitor_id": v,
            "started_ms": START_MS + v * 60_000,
            "last_ms": START_MS + v * 60_000 + EVENTS_PER_VISIT,
            "hostname": SITE,
            "pageviews": EVENTS_PER_VISIT,
            "events": EVENTS_PER_VISIT,
        }
        for v in range(VISITS)
    ]
    event_rows = [
        {
            "site_id": site_id,
            "visit_id": v + 1,
            "visitor_id": v,
            "timestamp_ms": START_MS + v * 60_000 + e,
            "kind": "pageview",
            "hostname": SITE,
            "path": f"/page/{e}",
            "title": TITLE,
            "pageview_id": f"p{v}-{e}",
        }
        for v in range(VISITS)
        for e in range(EVENTS_PER_VISIT)
    ]
    with db.engine.begin() as conn:
        conn.execute(insert(visits_t), visit_rows)
        conn.execute(insert(events_t), event_rows)
    assert len(event_rows) > 3 * BATCH_ROWS


def seeded_big_site(app: Flask) -> None:
    db: Database = app.extensions["tracker.db"]
    store_big_site(db)
    # Statistics for PostgreSQL's planner, kept for the copies: without them, the export's
    # first FETCH took 3 to 10 s (a plan for empty tables), with them 0.2 s.
    analyze(db, [Visit.__table__, Event.__table__])


# The big site is stored once per module and worker on each database, each test's database
# a copy of it (tests/seeds.py): storing its 16,000 events took each test ~1 s.
variant_seeds_sqlite, variant_seeds_postgres, variant, sqlite_seed, postgres_seed, stored = (
    seeded_world("export_disconnect", seeded_big_site)
)


@pytest.fixture
def big_site(app: Flask, stored: None) -> Database:
    """The test's database, holding the big site."""
    db: Database = app.extensions["tracker.db"]
    return db


def export_backends(db: Database) -> list[tuple[str, str]]:
    """(state, query) of the other sessions of this test's PostgreSQL database that are in
    a transaction or running a statement: the export's, while it streams."""
    database = make_url(db.url).database
    engine: Engine = Database(db.url).engine
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT state, query FROM pg_stat_activity WHERE datname = :name"
                    " AND pid <> pg_backend_pid() AND state IS NOT NULL AND state <> 'idle'"
                ),
                {"name": database},
            )
            return [(row.state, row.query) for row in rows]
    finally:
        engine.dispose()


def streaming(db: Database) -> bool:
    return any("tracker_rows" in query for _, query in export_backends(db))


def test_closing_the_download_returns_the_connection(app: Flask, big_site: Database) -> None:
    client = app.test_client()
    response = client.get(EVENTS_URL, buffered=False)
    assert response.status_code == 200
    chunks = iter(cast(Iterable[bytes], response.response))
    assert next(chunks).startswith(b"timestamp_utc,")
    assert next(chunks).count(b"\r\n") == BATCH_ROWS  # the first batch: the cursor is open
    assert big_site.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    if not big_site.is_sqlite:
        assert streaming(big_site)  # its server-side cursor waits for the next FETCH
    response.close()  # what Werkzeug and gunicorn do when the client has gone
    assert big_site.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    if not big_site.is_sqlite:
        assert export_backends(big_site) == []
    assert big_site.ping()  # the connection back in the pool works


def test_closing_the_chunks_closes_the_rows_of_a_watched_export(big_site: Database) -> None:
    """`tracker export`'s progress wraps the batches in a generator of its own: closing the
    chunks still closes the rows' stream (not left to the garbage collector)."""
    with big_site.session() as session:
        site = find_site(session, SITE)
    assert site is not None
    query = parse_query(site, {"period": "custom", "from": "2026-03-02", "to": "2026-03-03"})
    kept: list[Any] = []
    counted: list[int] = []

    def watch(batches: Iterator[Any]) -> Iterator[Any]:
        kept.append(batches)  # a reference the garbage collector would have to wait for
        # As `tracker export`'s progress bar: closing this loop does not close `batches`.
        for batch in batches:
            counted.append(row_count(batch))
            yield batch

    chunks = export_csv(big_site, query, TABLES["events"], watch)
    try:
        next(chunks)
        next(chunks)
        assert counted == [BATCH_ROWS]
        assert big_site.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        chunks.close()  # type: ignore[attr-defined]
        assert big_site.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        if not big_site.is_sqlite:
            assert export_backends(big_site) == []
    finally:
        for rows in kept:  # on failure: the next test's TRUNCATE would wait for its locks
            rows.close()


def test_a_client_that_leaves_mid_download_stops_the_export(app: Flask, big_site: Database) -> None:
    server = LiveServer(app)
    try:
        sock = socket.create_connection(("127.0.0.1", server.server.server_port), timeout=10)
        # A small window: the server blocks in send with most of the export still unread.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {EVENTS_URL} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        received = b""
        while b"timestamp_utc," not in received:
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
        pool = big_site.engine.pool
        wait_for(lambda: pool.checkedout() == 1)  # type: ignore[attr-defined]
        if not big_site.is_sqlite:
            # The header leaves before the rows' cursor is declared: wait for the cursor.
            assert wait_for(lambda: streaming(big_site))
        # Gone: the connection reset (SO_LINGER 0), as a closed browser tab or a killed curl.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        wait_for(lambda: pool.checkedout() == 0)  # type: ignore[attr-defined]
        if not big_site.is_sqlite:
            assert export_backends(big_site) == []
    finally:
        server.stop()
