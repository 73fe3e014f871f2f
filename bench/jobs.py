"""The jobs process (issue 16): what building the analytical stores costs, how long it keeps
ingest from writing, and what the jobs cost when nothing happens.

Build: the stats dataset's report rollups rebuilt from scratch (`refresh(full=True)`, what a
first start or a changed time zone costs) and its columnar store built in a fresh
directory, each timed, on SQLite. The longest write lock the build held is measured from
each transaction's first write to a table of the database (temporary tables are the
connection's own) to its end. Meanwhile a prober process asks for SQLite's write lock every
PROBE_EVERY_S (`BEGIN IMMEDIATE`, then rollback: ingest's writer takes the same lock) and
records the longest wait: what ingest would see, CPU scheduling on a busy machine and
SQLite's busy handler (it sleeps in growing steps, up to 100 ms, while the lock is taken)
included.

Idle: a fresh data directory whose site got a day of the wide dataset's traffic today (its
pages spread over WIDE_PAGES paths), the job table running in this process as `tracker
serve`'s jobs process runs it; once both jobs have caught up, this process's CPU time over
IDLE_SECONDS of no new events.
"""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event

from bench import datagen
from bench.common import Figure, Options
from tracker.app import create_app
from tracker.columnar.build import refresh as refresh_columnar
from tracker.config import Settings
from tracker.db import Database
from tracker.db.migrate import upgrade
from tracker.db.models import Base
from tracker.jobs import stop_scheduler
from tracker.stats.rollups import refresh as refresh_rollups

PROBE_EVERY_S = 0.02
IDLE_SECONDS = 120
# Events of the idle run's day (the wide generator: ~1 distinct page per 4 events here).
IDLE_EVENTS = 400_000
IDLE_TARGET_CPU = 0.02  # "~0%": a fiftieth of a core
# After catching up, both minute jobs run their "nothing changed" check once before the
# idle window starts.
SETTLE_SECONDS = 65


class LockProbe:
    """A process (not a thread: this one's GIL would add its waits) taking and dropping
    SQLite's write lock every PROBE_EVERY_S; `longest` is the longest it waited."""

    def __init__(self, path: Path) -> None:
        context = multiprocessing.get_context("fork")
        self._stop = context.Event()
        self._longest = context.Value("d", 0.0)
        self._probes = context.Value("q", 0)
        self._process = context.Process(
            target=_probe, args=(path, self._stop, self._longest, self._probes), daemon=True
        )

    @property
    def longest(self) -> float:
        return float(self._longest.value)

    @property
    def probes(self) -> int:
        return int(self._probes.value)

    @contextmanager
    def running(self) -> Iterator[LockProbe]:
        self._process.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._process.join()


def _probe(path: Path, stop: Any, longest: Any, probes: Any) -> None:
    conn = sqlite3.connect(path, timeout=600, isolation_level=None)
    try:
        while not stop.wait(PROBE_EVERY_S):
            began = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            waited = time.perf_counter() - began
            conn.execute("ROLLBACK")
            longest.value = max(longest.value, waited)
            probes.value += 1
    finally:
        conn.close()


WRITE = re.compile(r"\s*(?:INSERT\s+INTO|DELETE\s+FROM|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


class WriteHolds:
    """How long each transaction of `engine` held SQLite's write lock: from its first write
    to a stored table to its commit or rollback."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.longest = 0.0
        self.count = 0
        self._since: dict[int, float] = {}

    def _statement(self, conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        found = WRITE.match(statement)
        key = id(conn.connection.dbapi_connection)
        if found and found.group(1) in Base.metadata.tables and key not in self._since:
            self._since[key] = time.perf_counter()

    def _end(self, conn: Connection) -> None:
        began = self._since.pop(id(conn.connection.dbapi_connection), None)
        if began is not None:
            self.longest = max(self.longest, time.perf_counter() - began)
            self.count += 1

    @contextmanager
    def watching(self) -> Iterator[WriteHolds]:
        hooks: list[tuple[str, Callable[..., None]]] = [
            ("before_cursor_execute", self._statement),
            ("commit", self._end),
            ("rollback", self._end),
        ]
        for name, hook in hooks:
            event.listen(self.engine, name, hook)
        try:
            yield self
        finally:
            for name, hook in hooks:
                event.remove(self.engine, name, hook)


def run(opts: Options) -> list[Figure]:
    return [*_build(opts), *_idle(opts)]


def _size(events: int) -> str:
    return f"{events / 1e6:g}M" if events >= 1e6 else f"{events:,}"


def _build(opts: Options) -> list[Figure]:
    data = datagen.dataset(opts.events)
    bench = f"jobs sqlite, {_size(data.events)} events"
    db = Database(data.url)
    figures: list[Figure] = []
    try:
        steps = (
            ("report rollups build", lambda: refresh_rollups(db, full=True)),
            (
                "columnar store build",
                lambda: refresh_columnar(db, opts.workdir / "jobs-store", budget_s=None),
            ),
        )
        for name, step in steps:
            with WriteHolds(db.engine).watching() as holds, LockProbe(data.path).running() as probe:
                began = time.perf_counter()
                step()
                seconds = time.perf_counter() - began
            figures.append(Figure(bench, name, seconds, "s"))
            figures.append(
                Figure(
                    bench,
                    f"{name}: longest write lock held",
                    holds.longest * 1000,
                    "ms",
                    target="<= 50",
                    passed=holds.longest <= 0.05,
                    note=f"{holds.count:,} write transactions",
                )
            )
            figures.append(
                Figure(
                    bench,
                    f"{name}: longest wait for the write lock",
                    probe.longest * 1000,
                    "ms",
                    note=f"{probe.probes:,} probes from another process, one every"
                    f" {PROBE_EVERY_S * 1000:.0f} ms",
                )
            )
    finally:
        db.dispose()
    return figures


def _idle(opts: Options) -> list[Figure]:
    events = min(IDLE_EVENTS, opts.events)
    data_dir = opts.workdir / "jobs-idle"
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=str(data_dir), secret_key="bench", scheduler_enabled=False)
    url = settings.resolved_database_url()
    upgrade(url)
    pages = _today(url, events)
    app = create_app(settings.with_overrides(scheduler_enabled=True))
    db: Database = app.extensions["tracker.db"]
    tiny = opts.events < 100_000  # --tiny: the harness's smoke run
    began = time.perf_counter()
    try:
        _caught_up(db)
        busy = time.perf_counter() - began
        time.sleep(opts.duration if tiny else SETTLE_SECONDS)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        time.sleep(opts.duration if tiny else IDLE_SECONDS)
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
    finally:
        stop_scheduler(app)
        db.dispose()
    bench = f"jobs sqlite, a day of {pages:,} pages"
    share = cpu / wall
    return [
        Figure(bench, "jobs catch up after the day", busy, "s"),
        Figure(
            bench,
            f"jobs CPU when idle ({wall:.0f} s)",
            share * 100,
            "%",
            target=f"<= {IDLE_TARGET_CPU * 100:g}",
            passed=share <= IDLE_TARGET_CPU,
            note=f"{cpu:.2f} s of CPU in {wall:.0f} s, {events:,} events stored today",
        ),
    ]


def _today(url: str, events: int) -> int:
    """Store a day of wide traffic dated today for a new site; returns its distinct pages."""
    site_id, _ = datagen.accounts(url)
    today = datetime.now(UTC).date()
    generator = datagen.Generator(site_id, today, events, wide=True)
    start = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() * 1000)
    visits, rows = generator.day(start, events)
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    with conn:
        conn.executemany(datagen.insert_statement("visits", datagen.VISIT_COLUMNS), visits)
        conn.executemany(datagen.insert_statement("events", datagen.EVENT_COLUMNS), rows)
    pages = conn.execute("SELECT count(DISTINCT path) FROM events").fetchone()[0]
    conn.close()
    return int(pages)


def _caught_up(db: Database, timeout_s: float = 3600) -> None:
    """Wait until the rollup job's state has today's last event id."""
    deadline = time.monotonic() + timeout_s
    with db.engine.connect() as conn:
        last_id = conn.exec_driver_sql("SELECT max(id) FROM events").scalar()
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            built = conn.exec_driver_sql(
                "SELECT last_event_id FROM stats_rollup_state LIMIT 1"
            ).scalar()
        if built == last_id:
            return
        time.sleep(1)
    raise RuntimeError("the jobs did not catch up")
