"""The durable spool: every accepted event is on disk before its 202; the drain stores it
moments later, or when the database is back; what a dead process left, the next drain (or
the `replay_spool` job) stores, each line exactly once, in the visits live traffic would
make."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from tests.fixtures import PG_ADMIN_URL
from tests.served import SITE
from tests.test_ingest_durability import Server, post, write_locked
from tests.waiting import wait_until
from tracker.enrich.device import DeviceInfo
from tracker.enrich.geo import Place
from tracker.enrich.source import Attribution
from tracker.ingest.drops import DropReason
from tracker.ingest.parse import Payload
from tracker.sites import add_site
from tracker.storage import drain, writer
from tracker.storage.drain import Drain, replay
from tracker.storage.spool import (
    Spool,
    decode_batch,
    encode_batch,
    pending_segments,
    spool_directory,
)
from tracker.storage.visits import Hit


def a_hit(site_id: int = 3, path: str = "/cart", timestamp_ms: int = 1_764_000_000_123) -> Hit:
    """A hit with every kind of value a spool line holds."""
    return Hit(
        site_id=site_id,
        visitor_ids=(-9_100_000_000_000_000_001, 42),
        timestamp_ms=timestamp_ms,
        payload=Payload(
            kind="event",
            hostname="shop.example",
            path=path,
            query="utm_source=news&x=1",
            title='Cart "<b>" , 🛒\nline two',
            name="Add to cart",
            props={"plan": "pro", "step": "2"},
            engaged_ms=None,
            scroll=55,
            pageview_id="abc",
        ),
        attribution=Attribution(
            source="Newsletter", channel="Email", utm_source="news", utm_campaign="black friday"
        ),
        device=DeviceInfo("Firefox", "132", "Linux", "", "Desktop", False),
        place=Place("FR", "Île-de-France", "Paris"),
        screen="Desktop",
    )


def with_payload(hit: Hit, **changes: Any) -> Hit:
    return replace(hit, payload=replace(hit.payload, **changes))


def test_a_spooled_batch_decodes_to_the_same_hits_and_drops() -> None:
    drops = Counter({(3, date(2026, 12, 4), DropReason.BOT): 7})
    assert decode_batch(encode_batch([a_hit()], drops)) == ([a_hit()], drops)


# Lines as earlier versions spooled a_hit() and 7 bots: hits as one flat array of fields by
# position (with revenue, and before it), and, before that, as objects of named fields.
LINES_OF_EARLIER_VERSIONS = (
    '{"hits":[[3,[-9100000000000000001,42],1764000000123,"event","shop.example","/cart",'
    '"utm_source=news&x=1",["Newsletter","","Email","news","","black friday","","",""],'
    '["Firefox","132","Linux","","Desktop",false],["FR","\\u00cele-de-France","Paris"],'
    '"Desktop","Cart \\"<b>\\" , \\ud83d\\uded2\\nline two","","Add to cart","",'
    '{"plan":"pro","step":"2"},null,55,"abc",null,""]],"drops":[[3,"2026-12-04","bot",7]]}',
    '{"hits":[[3,[-9100000000000000001,42],1764000000123,"event","shop.example","/cart",'
    '"utm_source=news&x=1",["Newsletter","","Email","news","","black friday","","",""],'
    '["Firefox","132","Linux","","Desktop",false],["FR","\\u00cele-de-France","Paris"],'
    '"Desktop","Cart \\"<b>\\" , \\ud83d\\uded2\\nline two","","Add to cart","",'
    '{"plan":"pro","step":"2"},null,55,"abc"]],"drops":[[3,"2026-12-04","bot",7]]}',
    '{"hits":[{"site_id":3,"visitor_ids":[-9100000000000000001,42],'
    '"timestamp_ms":1764000000123,"kind":"event","hostname":"shop.example","path":"/cart",'
    '"query":"utm_source=news&x=1","attribution":{"source":"Newsletter","referrer":"",'
    '"channel":"Email","utm_source":"news","utm_medium":"","utm_campaign":"black friday",'
    '"utm_term":"","utm_content":"","click_id":""},"device":{"browser":"Firefox",'
    '"browser_version":"132","os":"Linux","os_version":"","device":"Desktop","is_bot":false},'
    '"place":{"country":"FR","region":"\\u00cele-de-France","city":"Paris"},'
    '"screen":"Desktop","title":"Cart \\"<b>\\" , \\ud83d\\uded2\\nline two",'
    '"referrer":"","name":"Add to cart","target":"","props":{"plan":"pro","step":"2"},'
    '"engaged_ms":null,"scroll":55,"pageview_id":"abc"}],'
    '"drops":[[3,"2026-12-04","bot",7]]}',
)


@pytest.mark.parametrize("line", LINES_OF_EARLIER_VERSIONS, ids=["flat", "flat-1", "named"])
def test_lines_of_earlier_versions_still_decode(line: str) -> None:
    """A dead process of an earlier version left its segment; the replay reads it."""
    hits, drops = decode_batch(line.encode())
    assert hits == [a_hit()]
    assert drops == Counter({(3, date(2026, 12, 4), DropReason.BOT): 7})


@contextmanager
def unavailable(database_url: str) -> Iterator[None]:
    """The database refuses the collector: SQLite's write lock is held elsewhere; PostgreSQL
    allows no connections and its open ones are cut."""
    if database_url.startswith("sqlite"):
        with write_locked(database_url):
            yield
        return
    name = make_url(database_url).database
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        try:
            yield
        finally:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    admin.dispose()


def stored_paths(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        paths = [row[0] for row in conn.execute(text("SELECT path FROM events ORDER BY id"))]
    engine.dispose()
    return paths


def visits(database_url: str) -> list[tuple[str, str, int]]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT entry_page, exit_page, pageviews FROM visits"))
        result = [tuple(row) for row in rows]
    engine.dispose()
    return result  # type: ignore[return-value]


def plain_client(app: Flask) -> FlaskClient:
    """A test client that does not wait for the writer after each request."""
    return FlaskClient(app, app.response_class, use_cookies=True)


def test_events_wait_in_the_spool_while_the_database_is_unavailable(
    make_app: Callable[..., Flask], database_url: str
) -> None:
    app = make_app(store_timeout_seconds=2)
    db, settings = app.extensions["tracker.db"], app.extensions["tracker.settings"]
    with db.session() as session:
        add_site(session, SITE)
    client = plain_client(app)
    spool = spool_directory(settings.data_dir)
    assert post(client, "/before").status_code == 202
    assert app.extensions["tracker.ingest"].flush()

    with unavailable(database_url):
        started = time.monotonic()
        assert post(client, "/during-1").status_code == 202  # acknowledged: on disk
        assert post(client, "/during-2").status_code == 202
        # Without waiting for the database: each post would have waited store_timeout_seconds.
        assert time.monotonic() - started < 2 * settings.store_timeout_seconds
        assert [p.suffix for p in pending_segments(spool)] == [".open"]
        time.sleep(0.5)
        assert not app.extensions["tracker.ingest"].writer.flush(0.1)  # not stored yet

    assert replay(db, spool, 30 * 60_000) == 0  # a live process's segment is its own drain's
    # The drain retries every BACKOFF_SECONDS; on a loaded machine the first retries may
    # still meet the connections PostgreSQL cut, so no time bound here, only the outcome.
    assert app.extensions["tracker.ingest"].writer.flush(30)  # the drain retries, stores them
    assert stored_paths(database_url) == ["/before", "/during-1", "/during-2"]
    # Late, but the same visit as live traffic: one visit, entered and left where it was.
    assert visits(database_url) == [("/before", "/during-2", 3)]


def test_an_idle_drain_thread_deletes_its_stored_segment(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "IDLE_SECONDS", 0.2)
    app = make_app()
    with app.extensions["tracker.db"].session() as session:
        add_site(session, SITE)
    spool = spool_directory(app.extensions["tracker.settings"].data_dir)
    assert post(plain_client(app), "/a").status_code == 202
    assert [p.suffix for p in pending_segments(spool)] == [".open"]
    wait_until(lambda: pending_segments(spool) == [], "the idle drain deletes its segment")
    assert post(app.test_client(), "/b").status_code == 202  # a new segment, a new thread
    assert stored_paths(app.extensions["tracker.db"].url) == ["/a", "/b"]
    assert pending_segments(spool) == []  # flushed: stored, the thread stopped, deleted


def test_a_dead_process_segment_is_replayed_once_from_its_stored_offset(
    make_app: Callable[..., Flask], database_url: str, tmp_path: Path
) -> None:
    app = make_app()
    db = app.extensions["tracker.db"]
    with db.session() as session:
        site_id = add_site(session, SITE).id
    directory = tmp_path / "spool"
    dead = Spool(directory)
    first = dead.append([a_hit(site_id, "/p0", 1_764_000_000_000)], Counter())
    for number in (1, 2):
        dead.append([a_hit(site_id, f"/p{number}", 1_764_000_000_000 + number)], Counter())
    # The process's drain stored its first line, then it died (its lock gone).
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO spool_offsets (segment, stored_bytes, updated_ms) VALUES (:s, :b, 0)"
            ),
            {"s": first.segment, "b": first.offset},
        )
    [segment] = pending_segments(directory)
    kept = segment.with_name("copy")
    shutil.copy(segment, kept)
    dead.close()

    assert replay(db, directory, 30 * 60_000) == 2
    assert stored_paths(database_url) == ["/p1", "/p2"]
    assert pending_segments(directory) == []

    kept.rename(segment)  # a crash between the replay's commit and its unlink
    assert replay(db, directory, 30 * 60_000) == 0
    assert stored_paths(database_url) == ["/p1", "/p2"]
    assert _open_files(f"{db.engine.url.database}.writer-lock") == 0  # closed with its drain


def _open_files(path: str) -> int:
    """This process's file descriptors open on `path`."""
    targets = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:  # the directory's own descriptor, closed by now
            continue
    return targets.count(path)


def test_an_unwritable_spool_gets_503(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    spool = spool_directory(app.extensions["tracker.settings"].data_dir)
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_text("a file where the spool directory should be")
    with app.extensions["tracker.db"].session() as session:
        add_site(session, SITE)
    response = post(app.test_client(), "/lost")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json == {"error": "the events cannot be kept right now; retry later"}
    assert stored_paths(app.extensions["tracker.db"].url) == []


@pytest.mark.slow
def test_spooled_events_survive_kill_minus_9(tmp_path: Path, sqlite_template: Path) -> None:
    """A real `tracker serve`: SQLite locked, events acknowledged from the spool, server
    killed, lock released, `tracker jobs run replay_spool` stores every one of them."""
    server = Server(tmp_path, sqlite_template, store_timeout_seconds=2, workers=1)
    try:
        assert server.post("/warm-up") == 202  # the site and today's salt, read and cached
        wait_until(lambda: server.stored_paths() == {"/warm-up"}, "the warm-up event stored")
        with write_locked(f"sqlite:///{server.db_path}"):
            statuses = {path: server.post(path) for path in ("/s/1", "/s/2", "/s/3")}
            server.stop()  # kill -9 of the whole process group
        assert statuses == {"/s/1": 202, "/s/2": 202, "/s/3": 202}
        assert server.stored_paths() == {"/warm-up"}
        server.run_cli("jobs", "run", "replay_spool")
        assert server.stored_paths() == {"/warm-up", "/s/1", "/s/2", "/s/3"}
        assert pending_segments(tmp_path / "data" / "spool") == []
    finally:
        server.stop()


def test_the_spool_keeps_no_address_or_user_agent(
    make_app: Callable[..., Flask], database_url: str
) -> None:
    app = make_app(store_timeout_seconds=2)
    with app.extensions["tracker.db"].session() as session:
        add_site(session, SITE)
    client = plain_client(app)
    assert post(client, "/warm").status_code == 202
    assert app.extensions["tracker.ingest"].flush()
    with unavailable(database_url):
        response = client.post(
            "/api/event",
            data=b'{"site": "example.com", "type": "pageview", "url": "https://example.com/x"}',
            content_type="text/plain",
            headers={
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 "
                "Firefox/132.0",
                "X-Forwarded-For": "81.2.69.160",
            },
            environ_base={"REMOTE_ADDR": "81.2.69.160"},
        )
        assert response.status_code == 202
        spooled = b"".join(
            p.read_bytes()
            for p in pending_segments(spool_directory(app.extensions["tracker.settings"].data_dir))
        )
    assert b"/x" in spooled
    assert b"81.2.69.160" not in spooled
    assert b"Gecko/20100101" not in spooled


def test_offsets_of_long_deleted_segments_are_forgotten(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    db = make_app().extensions["tracker.db"]
    now_ms = int(time.time() * 1000)
    with db.engine.begin() as conn:
        for segment, updated_ms in (("old", now_ms - 2 * 3_600_000), ("recent", now_ms)):
            conn.execute(
                text("INSERT INTO spool_offsets VALUES (:s, 10, :u)"),
                {"s": segment, "u": updated_ms},
            )
    replay(db, tmp_path / "spool", 30 * 60_000)
    with db.engine.connect() as conn:
        kept = conn.execute(text("SELECT segment FROM spool_offsets")).scalars().all()
    assert kept == ["recent"]  # a live writer may still be storing it


def test_the_drain_stores_every_segment_once_and_deletes_finished_ones(
    make_app: Callable[..., Flask], database_url: str, tmp_path: Path
) -> None:
    """Under `tracker serve` one drain process stores the workers' segments: a live one as it
    grows, one released full, one of a process that died (torn last line included); a
    replay beside it stores nothing twice."""
    db = make_app().extensions["tracker.db"]
    with db.session() as session:
        site_id = add_site(session, SITE).id
    directory = tmp_path / "spool"
    live, dead = Spool(directory, segment_bytes=10**9), Spool(directory, segment_bytes=10**9)
    for owner, name in ((live, "live"), (dead, "dead")):
        owner.append([a_hit(site_id, f"/{name}-1", 1_764_000_000_000)], Counter())
    assert dead.last is not None
    with dead.segment_path(dead.last.segment).open("ab") as file:
        file.write(b'{"hits": [[')  # a crash in the middle of a line
    dead.close()  # the process dies: its lock goes
    host = Drain(db, directory, 30 * 60_000)
    try:
        while host.store_pass():
            pass
        assert sorted(stored_paths(database_url)) == ["/dead-1", "/live-1"]
        assert len(pending_segments(directory)) == 1  # the live one
        live.append([a_hit(site_id, "/live-2", 1_764_000_000_001)], Counter())
        live.segment_bytes = 1  # the next line fills it: released
        live.append([a_hit(site_id, "/live-3", 1_764_000_000_002)], Counter())
        assert not live.is_open
        assert replay(db, directory, 30 * 60_000) == 2  # the replay job got there first
        while host.store_pass():
            pass
    finally:
        host.close()
        live.close()
    assert sorted(stored_paths(database_url)) == ["/dead-1", "/live-1", "/live-2", "/live-3"]
    assert pending_segments(directory) == []


def test_a_chunk_another_drain_stored_first_is_declined_and_the_rest_stored_once(
    make_app: Callable[..., Flask],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The replay read a segment's offset just before the host's drain stored its first
    line: its chunk (both lines) is declined, it reads the offset again and stores the
    second line alone."""
    db = make_app().extensions["tracker.db"]
    with db.session() as session:
        site_id = add_site(session, SITE).id
    directory = tmp_path / "spool"
    worker = Spool(directory)
    worker.append([a_hit(site_id, "/1", 1_764_000_000_000)], Counter())
    host = Drain(db, directory, 30 * 60_000)
    try:
        assert host.store_pass()  # line 1, while the worker lives
    finally:
        host.close()
    worker.append([a_hit(site_id, "/2", 1_764_000_000_001)], Counter())
    worker.close()  # and dies
    real = drain.stored_offset
    stale = [0]  # the offset as the replay read it, before the host's commit

    def stored_offset(conn: Connection, segment: str) -> int:
        return stale.pop() if stale else real(conn, segment)

    monkeypatch.setattr(drain, "stored_offset", stored_offset)
    assert replay(db, directory, 30 * 60_000) == 1
    assert stored_paths(database_url) == ["/1", "/2"]
    assert pending_segments(directory) == []
