"""The durable spool: events the database cannot take are kept on disk, acknowledged, and
stored later by the `replay_spool` job, exactly once, in the visits live traffic would make."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL
from tests.test_ingest_durability import SITE, Server, post, write_locked
from tracker.enrich.geo import Place
from tracker.enrich.source import Attribution
from tracker.enrich.useragent import DeviceInfo
from tracker.ingest import writer
from tracker.ingest.spool import decode_batch, encode_batch, pending_segments, spool_directory
from tracker.ingest.writer import BACKOFF_SECONDS
from tracker.jobs import find_job
from tracker.sessions import Hit
from tracker.sites import add_site


def test_a_spooled_batch_decodes_to_the_same_hits_and_drops() -> None:
    hit = Hit(
        site_id=3,
        visitor_ids=(-9_100_000_000_000_000_001, 42),
        timestamp_ms=1_764_000_000_123,
        kind="event",
        hostname="shop.example",
        path="/cart",
        query="utm_source=news&x=1",
        attribution=Attribution(
            source="Newsletter", channel="Email", utm_source="news", utm_campaign="black friday"
        ),
        device=DeviceInfo("Firefox", "132", "Linux", "", "Desktop", False),
        place=Place("FR", "Île-de-France", "Paris"),
        screen="Desktop",
        title='Cart "<b>" , 🛒\nline two',
        name="Add to cart",
        props={"plan": "pro", "step": "2"},
        engaged_ms=None,
        scroll=55,
        pageview_id="abc",
    )
    drops = Counter({(3, date(2026, 12, 4), "bot"): 7})
    assert decode_batch(encode_batch([hit], drops)) == ([hit], drops)


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


def test_unavailable_database_spools_then_replay_stores_once(
    make_app: Callable[..., Flask], database_url: str
) -> None:
    app = make_app(store_timeout_seconds=2)
    db, settings = app.extensions["tracker.db"], app.extensions["tracker.settings"]
    with db.session() as session:
        add_site(session, SITE)
    client = app.test_client()
    replay = find_job("replay_spool").func
    spool = spool_directory(settings.data_dir)
    assert post(client, "/before").status_code == 202

    with unavailable(database_url):
        assert post(client, "/during-1").status_code == 202  # acknowledged: on disk
        assert post(client, "/during-2").status_code == 202  # (within the back-off)
        assert [p.suffix for p in pending_segments(spool)] == [".open"]  # still being written
        replay(db, settings)  # a segment still being written is left alone
    assert stored_paths(database_url) == ["/before"]
    assert [p.suffix for p in pending_segments(spool)] == [".open"]

    time.sleep(BACKOFF_SECONDS)
    assert post(client, "/after").status_code == 202  # stored; the segment is handed over
    [segment] = pending_segments(spool)
    assert segment.suffix == ".jsonl"
    kept = segment.with_name("copy")
    shutil.copy(segment, kept)

    replay(db, settings)
    assert pending_segments(spool) == []
    assert sorted(stored_paths(database_url)) == ["/after", "/before", "/during-1", "/during-2"]
    # Late, but the same visit as live traffic: one visit, entered and left where it was.
    assert visits(database_url) == [("/before", "/after", 4)]

    kept.rename(segment)  # a crash between the replay's commit and its unlink
    replay(db, settings)
    assert pending_segments(spool) == []
    assert len(stored_paths(database_url)) == 4


def test_an_idle_writer_hands_its_segment_to_the_replay(
    make_app: Callable[..., Flask], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No event after the outage: the segment must not wait for the next one to be replayed."""
    monkeypatch.setattr(writer, "IDLE_SECONDS", 0.2)
    app = make_app(store_timeout_seconds=2)
    db, settings = app.extensions["tracker.db"], app.extensions["tracker.settings"]
    with db.session() as session:
        add_site(session, SITE)
    client = app.test_client()
    assert post(client, "/before").status_code == 202
    with unavailable(database_url):
        assert post(client, "/during").status_code == 202
    spool = spool_directory(settings.data_dir)
    for _ in range(100):
        if [p.suffix for p in pending_segments(spool)] == [".jsonl"]:
            break
        time.sleep(0.05)
    find_job("replay_spool").func(db, settings)
    assert sorted(stored_paths(database_url)) == ["/before", "/during"]


def test_locked_database_and_no_spool_gets_503(
    make_app: Callable[..., Flask], database_url: str
) -> None:
    app = make_app(store_timeout_seconds=1)
    spool = spool_directory(app.extensions["tracker.settings"].data_dir)
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_text("a file where the spool directory should be")
    with app.extensions["tracker.db"].session() as session:
        add_site(session, SITE)
    client = app.test_client()
    assert post(client, "/before").status_code == 202
    with write_locked(database_url):
        response = post(client, "/during")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json == {"error": "the database is unavailable; retry later"}
    assert post(client, "/after").status_code in (202, 503)  # 503 only within the back-off
    time.sleep(BACKOFF_SECONDS)
    assert post(client, "/later").status_code == 202
    # A 503 promises nothing either way: a hung PostgreSQL may still store it (at least once).
    assert {"/before", "/later"} <= set(stored_paths(app.extensions["tracker.db"].url))


@pytest.mark.slow
def test_spooled_events_survive_kill_minus_9(tmp_path: Path) -> None:
    """A real `tracker serve`: SQLite locked, events acknowledged from the spool, server
    killed, lock released, `tracker jobs run replay_spool` stores every one of them."""
    server = Server(tmp_path, store_timeout_seconds=2, workers=1)
    try:
        assert server.post("/warm-up") == 202  # the site and today's salt, read and cached
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
    client = app.test_client()
    assert post(client, "/warm").status_code == 202
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
