"""Durability: a 202 means kept on disk (kill -9 right after loses nothing), SIGTERM
stores what was accepted, and an event that cannot be kept gets 503 + Retry-After instead
of silent loss (a locked or lost database, and the spool, in test_ingest_spool)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, text

from tests.helpers import DEFAULT_USER_AGENT
from tests.served import (
    event_body,
    free_port,
    post_event,
    prepare_data_dir,
    stored_rows,
)
from tests.waiting import connections_accepted, group_alive, signal_pending, wait_until
from tracker.cli import cli
from tracker.storage.spool import pending_segments


def post(client, path: str):
    return client.post(
        "/api/event",
        data=event_body(path),
        content_type="text/plain",
        headers={"User-Agent": DEFAULT_USER_AGENT},
    )


@contextmanager
def write_locked(database_url: str) -> Iterator[None]:
    """Another client holds the database's write lock (SQLite) or the visits table (PG)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(database_url)
    with engine.connect() as conn:
        conn.execute(text("LOCK TABLE visits IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            conn.rollback()
    engine.dispose()


def test_unreachable_database_gets_503(make_app: Callable[..., Flask]) -> None:
    app = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = post(app.test_client(), "/")
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert "nobody" not in response.get_data(as_text=True)  # no internals in answers


# --- a real `tracker serve` in a subprocess -------------------------------------------------


class Server:
    def __init__(self, tmp_path: Path, sqlite_template: Path, **settings: object) -> None:
        self.db_path = prepare_data_dir(tmp_path / "data", sqlite_template)
        self.port = free_port()
        self.env = {
            **os.environ,
            "TRACKER_DATA_DIR": str(tmp_path / "data"),
            "TRACKER_DATABASE_URL": "",
            "TRACKER_PORT": str(self.port),
            "TRACKER_WORKERS": "2",
            "TRACKER_SECRET_KEY": "durability-test",
            "TRACKER_SCHEDULER_ENABLED": "false",
            "TRACKER_LOG_LEVEL": "WARNING",
            "TRACKER_INGEST_RATE_LIMIT": "0",  # thousands of events from one address
            **{f"TRACKER_{name.upper()}": str(value) for name, value in settings.items()},
        }
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("tracker")), "serve"],
            env=self.env,
            start_new_session=True,  # its own process group: kill -9 reaches the workers too
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._healthy, "tracker serve answers /healthz")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                return True
        except OSError:
            assert self.proc.poll() is None, "tracker serve exited"
            return False

    def post(self, path: str) -> int:
        return post_event(self.port, path)

    def stored_rows(self) -> list[str]:
        return stored_rows(self.db_path)

    def stored_paths(self) -> set[str]:
        return set(self.stored_rows())

    def run_cli(self, *args: str) -> None:
        """`tracker ARGS...` on this server's settings; it must succeed. Run in this process:
        a `tracker` process would import the app first (about 1.5 s of CPU)."""
        done = CliRunner().invoke(cli, list(args), env=self.env)
        assert done.exit_code == 0, (done.output, done.exception)

    def stop(self) -> None:
        """kill -9 of every process of the server (its own process group), once all are
        gone: with them their locks on spool segments, which the replay would skip."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        wait_until(lambda: not group_alive(self.proc.pid), "every process of the server gone")


@pytest.fixture
def server(tmp_path: Path, sqlite_template: Path) -> Iterator[Server]:
    srv = Server(tmp_path, sqlite_template)
    yield srv
    srv.stop()


def send_many(
    server: Server, paths: list[str], threads: int, statuses: dict[str, int] | None = None
) -> dict[str, int]:
    """Path -> answer status; `statuses`, when given, is filled as the answers come."""
    statuses = {} if statuses is None else statuses
    lock = threading.Lock()
    queue = list(reversed(paths))

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                path = queue.pop()
            status = server.post(path)
            with lock:
                statuses[path] = status

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


@pytest.mark.slow
def test_every_202_survives_kill_minus_9(server: Server) -> None:
    paths = [f"/e/{i}" for i in range(2000)]
    statuses: dict[str, int] = {}

    def kill_when_busy() -> None:
        # Kill once a few hundred events are answered, while requests are in flight.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(statuses) < 300:
            time.sleep(0.005)
        os.killpg(server.proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    send_many(server, paths, threads=16, statuses=statuses)
    killer.join()
    server.stop()  # once every killed process is gone
    accepted = {path for path, status in statuses.items() if status == 202}
    assert len(accepted) >= 100
    assert len(accepted) < len(paths)  # the kill really happened mid-stream
    # What the killed workers had not stored yet is in their spool segments: the replay job
    # (run at the next start, and every few seconds) stores it.
    server.run_cli("jobs", "run", "replay_spool")
    # Some stored events were never answered (killed first); that is allowed, the reverse not.
    rows = server.stored_rows()
    assert accepted <= set(rows)
    assert len(rows) == len(set(rows))  # and none twice


@pytest.mark.slow
def test_sigterm_drains_requests_in_flight(server: Server) -> None:
    paths = [f"/d/{i}" for i in range(12)]
    result: dict[str, int] = {}
    with write_locked(f"sqlite:///{server.db_path}"):
        sender = threading.Thread(target=send_many, args=(server, paths, 12, result))
        sender.start()
        wait_until(
            lambda: connections_accepted(server.port) == len(paths),
            "every request taken by the server, where it waits for the database",
        )
        os.killpg(server.proc.pid, signal.SIGTERM)
        wait_until(
            lambda: not signal_pending(server.proc.pid, signal.SIGTERM),
            "every process of the server takes the SIGTERM while the requests wait",
        )
    sender.join(timeout=60)
    assert server.proc.wait(timeout=60) == 0
    assert result == {path: 202 for path in paths}
    assert server.stored_paths() == set(paths)


@pytest.mark.slow
def test_the_spool_writer_and_the_jobs_run_in_processes_of_their_own(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """Beside the workers, not in one: their work would hold a worker's GIL."""
    server = Server(tmp_path, sqlite_template, scheduler_enabled="true", workers=1)
    try:
        master = server.proc.pid
        children = Path(f"/proc/{master}/task/{master}/children")
        wait_until(lambda: len(children.read_text().split()) >= 3, "the server's three children")
        roles = {
            Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2]: int(pid)
            for pid in children.read_text().split()
        }
        assert set(roles) == {b"serve", b"writer", b"jobs"}  # one worker, and the two
        assert server.post("/seen") == 202
        wait_until(lambda: "/seen" in server.stored_paths(), "stored by the writer process")
        wait_until(  # rotate_salts runs at start
            lambda: (
                sqlite3.connect(server.db_path).execute("SELECT day FROM daily_salts").fetchall()
            ),
            "the jobs process's first rotate_salts",
        )
        os.kill(master, signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
        for pid in (roles[b"writer"], roles[b"jobs"]):
            assert not Path(f"/proc/{pid}").exists()  # stopped with the server, and reaped
        assert pending_segments(tmp_path / "data" / "spool") == []
    finally:
        server.stop()
