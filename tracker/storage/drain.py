"""The drain: the one loop that reads the spool and stores it, in every mode.

- Under `tracker serve`, in a process of its own beside the workers (tracker.server): in a
  worker, a writer thread took ~150 us of CPU per event under load for ~40 us of its own
  work, the rest being the worker's request threads and the writer taking turns on one GIL.
- In a thread of the process that spools (a dev server, tests, imports: tracker.storage.writer),
  from its first event until it is idle.
- Once, over the segments nobody appends to any more (`replay`, the `replay_spool` job and
  `tracker jobs run replay_spool`): what a server killed with kill -9 left.

A pass reads each segment from its stored offset and stores the next chunk of complete lines
of every segment in one transaction, so events spooled by different processes meet visit
assignment in time order. Each segment's offset is moved by a compare-and-set in that
transaction (`advance_offset`), so drains may run side by side and each line is stored
exactly once: a chunk another drain stored first is declined, and the offset read again. A
segment stored to the end that nobody appends to any more (no lock on it) is deleted.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

from sqlalchemy import Connection, Table, delete, select
from sqlalchemy.exc import DBAPIError, OperationalError

from tracker.db import Database
from tracker.db.models import SpoolOffset
from tracker.ingest.drops import DropKey
from tracker.storage.spool import Chunk, advance_offset, next_chunk, pending_segments, stored_offset
from tracker.storage.store import WriterFileLock, merge_batches, store_transaction
from tracker.storage.visits import Hit

log = logging.getLogger(__name__)

PASS_SECONDS = 0.02  # in its own process: at most 50 transactions a second
BACKOFF_SECONDS = 1.0  # between attempts while the database is unavailable
CHECKPOINT_SECONDS = 10.0
OFFSET_KEEP_MS = 3_600_000  # offsets of deleted segments are forgotten after an hour
WRITER_LOCK = "writer.lock"  # held (shared) by every drain process of the spool
PROBE_LOCK = "writer.probe"  # taken by a health check for its look at WRITER_LOCK
offsets_t = cast(Table, SpoolOffset.__table__)


@dataclass
class Reading:
    """A segment being stored: its open file and how far it is stored."""

    fd: int
    stored: int


class Drain:
    def __init__(
        self,
        db: Database,
        directory: Path,
        timeout_ms: int,
        *,
        orphans_only: bool = False,
        patient: bool = True,
        checkpoint: bool = False,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """`orphans_only`: only segments nobody appends to. `patient`: wait for an
        unavailable database (else raise OperationalError). `checkpoint`: empty SQLite's WAL
        every CHECKPOINT_SECONDS. `on_stored`: called after each pass that stored."""
        self.db = db
        self.directory = directory
        self.orphans_only = orphans_only
        self.patient = patient
        self.checkpoint = checkpoint and db.is_sqlite
        self.on_stored = on_stored
        self.chunks = ChunkStore(db, timeout_ms, patient)
        self.readings: dict[str, Reading] = {}
        self.stored_events = 0

    def run(self, idle: Callable[[], bool], pause_seconds: float = 0.0) -> None:
        """Pass after pass; after a pass that found nothing to do, `idle()` waits for more
        and says whether to stop. Passes start `pause_seconds` apart at most: a transaction
        costs the same for 10 events or 100, so some may gather."""
        checkpointed = time.monotonic()
        while True:
            if self.checkpoint and time.monotonic() - checkpointed > CHECKPOINT_SECONDS:
                self.checkpoint_wal()
                checkpointed = time.monotonic()
            started = time.monotonic()
            try:
                busy = self.store_pass()
            except OperationalError as exc:  # reading a segment's offset
                if not self.patient:
                    raise
                log.warning("database unavailable; the spool keeps the events: %s", exc)
                time.sleep(BACKOFF_SECONDS)
                continue
            if busy and self.on_stored is not None:
                self.on_stored()
            if not busy and idle():
                return
            time.sleep(max(0.0, pause_seconds - (time.monotonic() - started)))

    def store_pass(self) -> bool:
        """The next chunk of every segment, in one transaction, and finished segments
        deleted; True if anything was done."""
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
            os.close(self.readings.pop(gone).fd)  # finished and deleted by another drain
        if taken:
            self._store(taken)
        return finished or bool(taken)

    def checkpoint_wal(self) -> None:
        """Copy SQLite's WAL into the database and empty it. Its automatic checkpoints could
        not keep up: with readers always somewhere in it (workers, the rollup refresh), the
        WAL grew to 530 MB beside a 56 MB database in 90 s of load, and every read walked
        it. TRUNCATE waits for those readers (the busy timeout at most); only the drain
        writes events, and requests do not wait for it."""
        try:
            with self.db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except OperationalError as exc:
            log.warning("WAL checkpoint failed: %s", exc)

    def _store(self, taken: list[tuple[Reading, Chunk]]) -> None:
        chunks = [chunk for _reading, chunk in taken]
        if self.chunks.store_together(chunks):
            for reading, chunk in taken:
                reading.stored = chunk.end
            self.stored_events += sum(len(hits) for c in chunks for _end, (hits, _) in c.batches)
            return
        with self.db.engine.connect() as conn:  # another drain stored some: read again
            for reading, chunk in taken:
                reading.stored = stored_offset(conn, chunk.segment)

    def _open(self, path: Path) -> Reading | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        if self.orphans_only and path.suffix == ".open" and _locked(fd):
            os.close(fd)  # a live process appends to it
            return None
        try:
            with self.db.engine.connect() as conn:
                reading = Reading(fd, stored_offset(conn, path.stem))
        except BaseException:
            os.close(fd)
            raise
        self.readings[path.stem] = reading
        return reading

    def close(self) -> None:
        for reading in self.readings.values():
            os.close(reading.fd)
        self.readings.clear()
        self.chunks.close()


def replay(db: Database, directory: Path, timeout_ms: int) -> int:
    """Store the segments nobody appends to any more (their process stopped or died), in
    passes until none is left; returns the number of events stored. A database still
    unavailable raises (OperationalError) and leaves the rest for the next run."""
    drain = Drain(db, directory, timeout_ms, orphans_only=True, patient=False)
    try:
        drain.run(idle=lambda: True)
    finally:
        drain.close()
    if drain.stored_events:
        log.info("spool: replayed %d events", drain.stored_events)
    _forget_offsets(db, {p.stem for p in pending_segments(directory)})
    return drain.stored_events


def _forget_offsets(db: Database, segments: set[str]) -> None:
    """Offsets of segments deleted over an hour ago (files still there are kept)."""
    cutoff = time.time_ns() // 10**6 - OFFSET_KEEP_MS
    try:
        with db.engine.begin() as conn:
            query = select(offsets_t.c.segment).where(offsets_t.c.updated_ms < cutoff)
            gone = [name for (name,) in conn.execute(query) if name not in segments]
            if gone:
                conn.execute(delete(offsets_t).where(offsets_t.c.segment.in_(gone)))
    except OperationalError:
        pass  # the database is unavailable: the next run forgets them


class ChunkStore:
    """Stores spool chunks, a transaction each, on a connection it keeps; retries while the
    database is unavailable (when patient), and stores line by line when a chunk's data
    fails."""

    def __init__(self, db: Database, timeout_ms: int, patient: bool = True) -> None:
        self.db = db
        self.timeout_ms = timeout_ms
        self.patient = patient
        self.lock = WriterFileLock.for_database(db)  # the writers' turn on one SQLite file
        self.conn: Connection | None = None

    def store(self, chunk: Chunk) -> bool:
        """Store the chunk; False if another drain had stored from its start already."""
        hits, drops = merge_batches(batch for _end, batch in chunk.batches)
        while True:
            try:
                return self._transaction(partial(advance_offset, chunk=chunk), hits, drops)
            except Exception as exc:  # noqa: BLE001 - the drain must go on
                self.disconnect(failed=True)
                if not _unavailable(exc):
                    log.warning("a chunk failed (%s); storing its lines one by one", exc)
                    return self._line_by_line(chunk)
                self._wait_for_database(exc, len(hits))

    def store_together(self, chunks: list[Chunk]) -> bool:
        """Chunks of several segments in one transaction, so their events meet visit
        assignment in time order (an engagement beacon spooled by one worker finds its
        pageview spooled by another); False, storing nothing, if another drain stored one
        of them meanwhile."""
        if len(chunks) == 1:
            return self.store(chunks[0])
        hits, drops = merge_batches(batch for chunk in chunks for _end, batch in chunk.batches)

        def claim(conn: Connection) -> bool:
            return all(advance_offset(conn, chunk) for chunk in chunks)

        while True:
            try:
                return self._transaction(claim, hits, drops)
            except Exception as exc:  # noqa: BLE001 - the drain must go on
                self.disconnect(failed=True)
                if not _unavailable(exc):
                    return all([self.store(chunk) for chunk in chunks])  # find the bad line
                self._wait_for_database(exc, len(hits))

    def _wait_for_database(self, exc: Exception, waiting: int) -> None:
        if not self.patient:
            raise exc
        log.warning("database unavailable, %d events wait in the spool: %s", waiting, exc)
        time.sleep(BACKOFF_SECONDS)

    def _transaction(
        self, claim: Callable[[Connection], bool], hits: list[Hit], drops: Counter[DropKey]
    ) -> bool:
        self.conn = self.conn or self.db.engine.connect()
        return store_transaction(self.db, self.conn, self.lock, hits, drops, self.timeout_ms, claim)

    def _line_by_line(self, chunk: Chunk) -> bool:
        """Each line alone, so only a bad one is lost (logged, its offset passed); False if
        another drain had stored from the chunk's start."""
        start = chunk.start
        for end, (hits, drops) in chunk.batches:
            line = Chunk(chunk.segment, start, end, [])
            while True:
                try:
                    if not self._transaction(partial(advance_offset, chunk=line), hits, drops):
                        return False
                    break
                except Exception as exc:  # noqa: BLE001
                    self.disconnect(failed=True)
                    if _unavailable(exc):
                        self._wait_for_database(exc, len(hits))
                    else:
                        log.exception("%d events could not be stored and are lost", len(hits))
                        hits, drops = [], Counter()  # record the offset past the line alone
            start = end
        return True

    def close(self) -> None:
        """The connection and the writers' lock file: a drain thread ends when idle and the
        replay job makes a drain each run, so a lock left open was a file descriptor lost."""
        self.disconnect()
        self.lock.close()

    def disconnect(self, failed: bool = False) -> None:
        if self.conn is not None:
            if failed:
                _discard(self.conn)
            else:
                self.conn.close()
            self.conn = None


def _unavailable(exc: Exception) -> bool:
    """Lock timeouts, refused or lost connections: worth a retry, unlike bad data."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def _discard(conn: Connection | None) -> None:
    """Roll back and close a connection after a failure."""
    if conn is not None:
        try:
            conn.rollback()
            conn.close()
        except Exception:  # noqa: BLE001 - the connection is broken anyway
            conn.invalidate()


def _locked(fd: int) -> bool:
    """Whether a process holds the lock of the file open as `fd` (then it appends to it)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _abandoned(path: Path, size: int) -> bool:
    """Nobody holds the segment's lock (its process released it, stopped or died) and,
    checked under that lock, nothing was appended since it was `size` bytes long."""
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
    """WRITER_LOCK, shared (servers sharing a data dir each run a drain process), for as
    long as the returned descriptor is open; the kernel lets it go when the process dies."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def writer_running(directory: Path) -> bool:
    """Whether a drain process stores this spool: some process holds WRITER_LOCK (/healthz;
    workers answer 202 whether or not anyone stores the spool, so a dead drain was
    invisible but for events that stopped appearing)."""
    try:
        fd = os.open(directory / WRITER_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        with _probing(directory):
            return _locked(fd)
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
