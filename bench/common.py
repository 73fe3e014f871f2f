"""What every benchmark shares: figures, medians, servers started as subprocesses, PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BENCH_DIR = REPO / "bench"
CACHE_DIR = BENCH_DIR / "cache"
PG_ADMIN_URL = os.environ.get(
    "TRACKER_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BENCH_SITE = "bench.example"


class Unavailable(Exception):
    """A benchmark cannot run here (a missing service or tool); the table says why."""


@dataclass
class Figure:
    """One line of the table: a measured value, its same-run baseline, and the target."""

    bench: str
    metric: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    passed: bool | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not self.baseline:
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def parse_count(text: str) -> int:
    """'1M', '10M', '250k' or '5000' -> an integer."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    number = text[:-1] if scale > 1 else text
    try:
        return int(float(number) * scale)
    except ValueError:
        raise ValueError(f"{text!r} is not a count like 5000, 250k or 1M") from None


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def server_env(
    data_dir: Path,
    database_url: str,
    port: int,
    workers: int = 2,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """`tracker serve` settings for a benchmark: production defaults, its own data and port,
    then `extra` (TRACKER_* settings a benchmark changes).

    Loopback is a trusted proxy so the load generator can vary client addresses through
    X-Forwarded-For, as a reverse proxy in front of a real deployment does.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update(
        TRACKER_DATA_DIR=str(data_dir),
        TRACKER_DATABASE_URL=database_url,
        TRACKER_PORT=str(port),
        TRACKER_WORKERS=str(workers),
        TRACKER_SECRET_KEY="bench-secret",
        TRACKER_LOG_LEVEL="WARNING",
        TRACKER_TRUSTED_PROXIES="127.0.0.1",
    )
    env.update(extra or {})
    return env


class Server:
    """A gunicorn server run as a subprocess (its own process group), until stop()."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=self._log, stderr=self._log, start_new_session=True
        )

    def wait_ready(self, path: str = "/healthz", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.flush()
                tail = Path(self._log.name).read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"server exited with {self.proc.returncode}: " + "\n".join(tail))
            try:
                status, _ = http("GET", self.base + path, timeout=2)
                if status < 500 and len(self.worker_pids()) > 0:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout:.0f} s; see {self._log.name}")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server's processes, master included."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in [self.proc.pid, *self.worker_pids()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return total

    def worker_rss_mb(self) -> list[float]:
        return [rss_mb(pid) for pid in self.worker_pids()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory since it started."""
    return _status_kb(pid, "VmHWM") / 1024


@contextmanager
def serving(argv: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[Server]:
    server = Server(argv, env, port, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextmanager
def tracker_serve(
    data_dir: Path,
    database_url: str,
    *,
    workers: int = 2,
    log_name: str = "server.log",
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`tracker serve` on its own port, data directory and database; `env`: settings."""
    port = free_port()
    env = server_env(data_dir, database_url, port, workers, env)
    data_dir.mkdir(parents=True, exist_ok=True)
    with serving([str(BIN / "tracker"), "serve"], env, port, data_dir / log_name) as server:
        yield server


def tracker_cli(data_dir: Path, database_url: str, *args: str) -> str:
    """Run a `tracker` command on the benchmark's database; its output, or an error."""
    env = server_env(data_dir, database_url, 0)
    done = subprocess.run(
        [str(BIN / "tracker"), *args], env=env, cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"tracker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def postgres_database(name: str, *, fresh: bool) -> str:
    """The URL of our own PostgreSQL database `name`, created (or re-created when fresh)."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists and fresh:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            if fresh or not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        raise Unavailable(f"PostgreSQL unreachable ({str(exc).splitlines()[0]})") from None
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dataclass(frozen=True)
class Options:
    """What a run measures and how long it may take (see bench/run.py for the flags)."""

    workdir: Path
    results: Path = BENCH_DIR / "results"  # where reports beside the table are written
    events: int = 1_000_000
    duration: float = 5.0
    reps: int = 3
    connections: tuple[int, ...] = (16, 64)
    databases: tuple[str, ...] = ("sqlite", "postgres")
    stats_reps: int = 3
    # Datasets of the filter matrix (bench/filters.py): "default" and/or "wide".
    filter_datasets: tuple[str, ...] = ("default", "wide")
    # The matrix's slow queries run to their end instead of being stopped (bench/filters.py).
    filter_exact: bool = False
    # The matrix's passes: "database" (rollups and raw rows) and/or "columnar" (the store).
    filter_passes: tuple[str, ...] = ("database", "columnar")
    # The matrix's columnar store kept beside the cached dataset and brought up to date
    # (minutes saved per run), instead of built anew in the run's own directory.
    filter_keep_store: bool = False


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def bytes_on_disk(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                path = Path(engine.url.database or "")
                return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
            return int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    finally:
        engine.dispose()


def count_rows(database_url: str, table: str = "events") -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    finally:
        engine.dispose()
