"""The host's spool writer: under `tracker serve`, one process stores every worker's spool.

In a worker, the writer thread took ~150 us of CPU per event under load for ~40 us of its
own work: the rest was the worker's request threads and the writer taking turns on one
GIL. Here it has a process (and a GIL) of its own; workers only append to their segments
(tracker.storage.spool) and, when they must wait for the database, read the segment's
offset in `spool_offsets`.

It reads each segment from its stored offset and stores the next chunk of complete lines of
every segment in one transaction, so events spooled by different workers meet visit
assignment in time order (each offset moved by a compare-and-set in that transaction, so
the replay job may run beside it); it deletes a segment once it is stored to the end and nobody
appends to it any more: its worker handed it over full (`.full`) or is gone (no lock on
`.open`). Lines of processes that died are stored the same way, exactly once.

While it runs it holds a shared lock on the spool's `writer.lock`, which /healthz reads
(`writer_running`): workers answer 202 whether or not anyone stores the spool, so a dead
writer was invisible but for events that stopped appearing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import OperationalError

from tracker.db import Database
from tracker.storage.spool import Chunk, next_chunk, pending_segments, stored_offset
from tracker.storage.writer import ChunkStore

log = logging.getLogger(__name__)

PASS_SECONDS = 0.02  # at most 50 transactions a second; events wait that long at most
BACKOFF_SECONDS = 1.0
CHECKPOINT_SECONDS = 10.0
WRITER_LOCK = "writer.lock"  # held (shared) by every running writer of the spool
PROBE_LOCK = "writer.probe"  # taken by a health check for its look at WRITER_LOCK


@dataclass
class Reading:
    """A segment being stored: its open file and how far it is stored."""

    fd: int
    stored: int


class HostWriter:
    def __init__(self, db: Database, directory: Path, timeout_ms: int) -> None:
        self.db = db
        self.directory = directory
        self.lock_fd = hold_writer_lock(directory)
        self.chunks = ChunkStore(db, timeout_ms)
        self.readings: dict[str, Reading] = {}

    def run(self, stopping: Callable[[], bool]) -> None:
        """Store until `stopping()`, and then until a pass finds nothing left."""
        checkpointed = time.monotonic()
        while True:
            if self.db.is_sqlite and time.monotonic() - checkpointed > CHECKPOINT_SECONDS:
                self.checkpoint()
                checkpointed = time.monotonic()
            started = time.monotonic()
            try:
                busy = self.store_pass()
            except OperationalError as exc:  # reading a segment's offset
                log.warning("database unavailable; the spool keeps the events: %s", exc)
                time.sleep(BACKOFF_SECONDS)
                continue
            if not busy and stopping():
                return
            # A transaction costs the same for 10 events or 100: let some gather.
            time.sleep(max(0.0, PASS_SECONDS - (time.monotonic() - started)))

    def checkpoint(self) -> None:
        """Copy SQLite's WAL into the database and empty it. Its automatic checkpoints could
        not keep up: with readers always somewhere in it (workers, the rollup refresh), the
        WAL grew to 530 MB beside a 56 MB database in 90 s of load, and every read walked
        it. TRUNCATE waits for those readers (the busy timeout at most); only this process
        writes events, and requests do not wait for it."""
        try:
            with self.db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except OperationalError as exc:
            log.warning("WAL checkpoint failed: %s", exc)

    def store_pass(self) -> bool:
        """The next chunk of every segment, in one transaction; True if anything was done."""
        paths = pending_segments(self.directory)
        taken: list[tuple[Reading, Chunk]] = []
        finished = False
        for path in paths:
            reading = self.readings.get(path.stem) or self._open(path)
            if reading is None:
                continue
            size = os.fstat(reading.fd).st_size
            chunk = (
                next_chunk(path.stem, reading.fd, reading.stored, size)
                if size > reading.stored
                else None
            )
            if chunk is not None:
                taken.append((reading, chunk))
            elif path.suffix != ".open" or _abandoned(path, size):
                # Stored to the end (but for a torn line of a crash), and nobody appends.
                path.unlink(missing_ok=True)
                os.close(self.readings.pop(path.stem).fd)
                finished = True
        for gone in set(self.readings) - {path.stem for path in paths}:
            os.close(self.readings.pop(gone).fd)  # replayed and deleted by the replay job
        if taken:
            self._store(taken)
        return finished or bool(taken)

    def _store(self, taken: list[tuple[Reading, Chunk]]) -> None:
        if self.chunks.store_together([chunk for _reading, chunk in taken]):
            for reading, chunk in taken:
                reading.stored = chunk.end
            return
        with self.db.engine.connect() as conn:  # the replay job stored some: read again
            for reading, chunk in taken:
                reading.stored = stored_offset(conn, chunk.segment)

    def _open(self, path: Path) -> Reading | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with self.db.engine.connect() as conn:
            reading = Reading(fd, stored_offset(conn, path.stem))
        self.readings[path.stem] = reading
        return reading

    def close(self) -> None:
        for reading in self.readings.values():
            os.close(reading.fd)
        self.readings.clear()
        self.chunks.disconnect()
        os.close(self.lock_fd)


def _abandoned(path: Path, size: int) -> bool:
    """Nobody holds the segment's lock (its process stopped or died) and, checked under that
    lock, nothing was appended since it was `size` bytes long."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return os.fstat(fd).st_size == size
    finally:
        os.close(fd)


def hold_writer_lock(directory: Path) -> int:
    """WRITER_LOCK, shared (servers sharing a data dir each run a writer), for as long as
    the returned descriptor is open; the kernel lets it go when the process dies."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def writer_running(directory: Path) -> bool:
    """Whether a writer process stores this spool: some process holds WRITER_LOCK."""
    try:
        fd = os.open(directory / WRITER_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        with _probing(directory):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
    finally:
        os.close(fd)


@contextmanager
def _probing(directory: Path) -> Iterator[None]:
    """One health check at a time looks at WRITER_LOCK: two at once would each find it
    held, by the other."""
    fd = os.open(directory / PROBE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
