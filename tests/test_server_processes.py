"""`tracker serve`'s processes beside the workers: a killed spool writer is replaced and
what was sent before and after is stored; /healthz tells when no writer runs; two servers
on one data directory run one scheduler; a full disk is a 503, not a 202."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.helpers import DEFAULT_USER_AGENT
from tests.served import SITE, event_body, free_port, post_event, prepare_data_dir, stored_rows
from tests.waiting import wait_until
from tracker.sites import add_site
from tracker.storage.drain import hold_writer_lock
from tracker.storage.spool import spool_directory


class Serve:
    """`tracker serve` on a data directory (SQLite in it), its log in a file."""

    def __init__(self, data_dir: Path, log: Path, **settings: object) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / "tracker.db"
        self.port = free_port()
        self.log = log
        env = {
            **os.environ,
            "TRACKER_DATA_DIR": str(data_dir),
            "TRACKER_DATABASE_URL": "",
            "TRACKER_PORT": str(self.port),
            "TRACKER_WORKERS": "1",  # the processes beside the workers are what is tested
            "TRACKER_SECRET_KEY": "processes-test",
            "TRACKER_SCHEDULER_ENABLED": "false",
            "TRACKER_LOG_LEVEL": "INFO",
            "TRACKER_INGEST_RATE_LIMIT": "0",
            **{f"TRACKER_{name.upper()}": str(value) for name, value in settings.items()},
        }
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("tracker")), "serve"],
                env=env,
                start_new_session=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: self.health()[0] == 200, "tracker serve answers /healthz 200")

    def health(self) -> tuple[int, dict[str, str]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
                return int(r.status), json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            assert self.proc.poll() is None, f"tracker serve exited: {self.log.read_text()}"
            return 0, {}

    def post(self, path: str) -> int:
        return post_event(self.port, path)

    def stored_paths(self) -> set[str]:
        return set(stored_rows(self.db_path))

    def children(self, role: bytes) -> list[int]:
        """The server's processes of a role (b"writer", b"jobs"), started by any of its
        threads (the supervisor's thread starts the new ones)."""
        found = []
        tasks = Path(f"/proc/{self.proc.pid}/task")
        for pid in " ".join(t.joinpath("children").read_text() for t in tasks.iterdir()).split():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if argv[-2:-1] == [role]:
                found.append(int(pid))
        return found

    def stop(self) -> None:
        """As an operator stops it (SIGTERM to the arbiter): the workers, then the writer
        and the jobs, wind down."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """Every process of the server at once (its own process group); after a test that
        no longer needs it, faster than a graceful stop (about 2 s)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def serve(tmp_path: Path, sqlite_template: Path) -> Iterator[Callable[..., Serve]]:
    prepare_data_dir(tmp_path / "data", sqlite_template)
    servers: list[Serve] = []

    def start(name: str = "serve", **settings: object) -> Serve:
        server = Serve(tmp_path / "data", tmp_path / f"{name}.log", **settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.mark.slow
def test_a_killed_writer_is_replaced_and_nothing_is_lost(serve: Callable[..., Serve]) -> None:
    server = serve()
    before = [f"/before/{i}" for i in range(20)]
    assert [server.post(path) for path in before] == [202] * len(before)
    wait_until(lambda: set(before) <= server.stored_paths(), "the events before are stored")
    [writer] = server.children(b"writer")

    os.kill(writer, signal.SIGKILL)
    after = [f"/after/{i}" for i in range(20)]
    assert [server.post(path) for path in after] == [202] * len(after)  # kept in the spool

    wait_until(lambda: server.children(b"writer") not in ([], [writer]), "a new writer")
    wait_until(lambda: set(after) <= server.stored_paths(), "the events after are stored")
    status, health = server.health()
    assert (status, health["writer"]) == (200, "ok")
    log = server.log.read_text()
    assert f"the writer process (pid {writer}) stopped" in log
    assert "started a new writer process" in log


@pytest.mark.slow
def test_two_servers_on_one_data_dir_run_one_scheduler(serve: Callable[..., Serve]) -> None:
    first = serve("first", scheduler_enabled="true")
    second = serve("second", scheduler_enabled="true")
    [first_jobs] = first.children(b"jobs")
    [second_jobs] = second.children(b"jobs")
    lock = first.data_dir / "scheduler.lock"
    wait_until(
        lambda: lock.exists() and lock_holders(lock) == [first_jobs], "the first's scheduler"
    )
    wait_until(lambda: "another process" in second.log.read_text(), "the second waits its turn")
    for _ in range(2):
        wait_for_a_claim(lock, "the second tries again (jobs.CLAIM_RETRY_SECONDS)")
    assert lock_holders(lock) == [first_jobs]
    assert "running the jobs" not in second.log.read_text()

    first.stop()  # the second takes over
    wait_until(lambda: lock_holders(lock) == [second_jobs], "the second's scheduler")
    assert second.log.read_text().count("running the jobs") == 1
    # Stopped, its worker left nothing on stderr: DuckDB's bindings report their objects
    # still alive at the end as leaks, and objects frozen at start-up were (server.load).
    assert "leaked" not in first.log.read_text()


def wait_for_a_claim(lock: Path, what: str) -> None:
    """Until a process tries to take the scheduler's lock: each try opens the file anew for
    writing (jobs._claim_scheduler), which truncates it and so sets its modification time."""
    before = lock.stat().st_mtime_ns
    wait_until(lambda: lock.stat().st_mtime_ns != before, what)


def lock_holders(path: Path) -> list[int]:
    """Processes holding a flock on the file (/proc/locks names them by inode)."""
    inode = os.stat(path).st_ino
    holders = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and fields[-3].split(":")[-1] == str(inode):
            holders.append(int(fields[-4]))
    return holders


# --- /healthz and the writer, in process ---------------------------------------------------


def test_healthz_says_when_no_writer_stores_the_spool(app: Flask) -> None:
    """Under `tracker serve` the host's writer process stores the spool; none running (dead,
    being replaced) is a 503 while beacons are still answered 202."""
    app.extensions["tracker.ingest"].writer.use_host_drain()
    client = app.test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["writer"] == "down"
    assert "spool writer down" in response.get_json()["error"]
    directory = spool_directory(app.extensions["tracker.settings"].data_dir)
    held = hold_writer_lock(directory)  # what a writer process holds while it runs
    try:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.get_json()["writer"] == "ok"
    finally:
        os.close(held)
    assert client.get("/healthz").status_code == 503  # and the kernel lets go when it dies


def test_healthz_in_process(client) -> None:
    body = client.get("/healthz").get_json()
    assert body == {
        "status": "ok",
        "database": "ok",
        "spool": "ok",
        "writer": "in process",
        "geoip": "off",
    }


# --- a full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB file system (tmpfs), if this test may mount one (root, in a container that
    allows it)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(directory: Path) -> Path:
    """A file taking every free byte of the directory's file system."""
    path = directory / "filler"
    with path.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return path


def test_a_full_disk_is_a_503_and_healthz_says_why(
    make_app: Callable[..., Flask], small_disk: Path
) -> None:
    app = make_app(data_dir=str(small_disk / "data"))
    with app.extensions["tracker.db"].session() as session:
        add_site(session, SITE)
    client = app.test_client()

    def post(path: str) -> int:
        return client.post(
            "/api/event",
            data=event_body(path),
            content_type="text/plain",
            headers={"User-Agent": DEFAULT_USER_AGENT},
        ).status_code

    assert post("/room") == 202
    filler = fill(small_disk)
    assert post("/full") == 503
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["spool"] == "No space left on device"
    assert "spool not writable: No space left on device" in health.get_json()["error"]

    filler.unlink()
    assert post("/room-again") == 202
    assert client.get("/healthz").status_code == 200
    app.extensions["tracker.ingest"].flush()
    with app.extensions["tracker.db"].engine.connect() as conn:
        paths = {row[0] for row in conn.exec_driver_sql("SELECT path FROM events")}
    assert paths == {"/room", "/room-again"}
