"""The writer: one thread per process stores what its spool took, a chunk per transaction.

A request appends its hits to the spool (tracker.storage.spool) and is answered 202 at
once: the events are on disk. The writer takes every line appended since its last
transaction (about a megabyte at most), stores them in one transaction through the same
visit assignment as everything else, with the segment's new offset, then takes the next.
So under load a thousand events share a commit, and no request waits on another thread.
Trusted batches and imports may `wait` for their events to be in the database, which also
slows a fast sender down to what the database takes.

When the database is unreachable or locked beyond its timeout, the writer keeps the lines
and retries every BACKOFF_SECONDS; requests still get their 202 as long as the spool can
be written. Only when it cannot (a full disk) do they get a 503.

The thread starts on the first event and stops after a few idle seconds with everything
stored, deleting its segment (nothing runs at import or fork time, nothing lingers in
tests). On SIGTERM gunicorn lets in-flight requests finish and then `flush` stores the
rest and stops the writer (so do imports); whatever a crash leaves is the replay job's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from tracker.db import Database
from tracker.ingest.drops import DropKey
from tracker.storage.spool import Chunk, Spool, advance_offset, stored_offset
from tracker.storage.store import WriterFileLock, merge_batches, store_transaction
from tracker.storage.visits import Hit

log = logging.getLogger(__name__)

IDLE_SECONDS = 5.0
BACKOFF_SECONDS = 1.0  # between attempts while the database is unavailable
HOST_POLL_SECONDS = 0.005


class StoreUnavailable(Exception):
    """The events could not be kept (the spool cannot be written); retry later."""


class SpoolWriter:
    def __init__(self, db: Database, spool: Spool, timeout_ms: int) -> None:
        self.db = db
        self.spool = spool
        self.timeout_ms = timeout_ms
        self._work = threading.Event()  # set when lines were appended
        self._stop = threading.Event()  # set by flush: stop once all is stored
        self._stored = threading.Condition()  # notified after each commit
        self._waiting = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.chunks = ChunkStore(db, timeout_ms)
        self.host_writer = False
        self.refusing = False  # the spool could not be written: said once, not per event

    def use_host_writer(self) -> None:
        """Under `tracker serve`: the host's writer process (tracker.storage.drainer) stores
        the spool; this process only appends, and waits by reading segment offsets."""
        self.host_writer = True
        self.spool.hand_over_full = True

    def submit(
        self, hits: list[Hit], drops: Counter[DropKey] | None = None, wait_seconds: float = 0
    ) -> bool:
        """Keep hits and drop counts durably, or raise StoreUnavailable. With `wait_seconds`,
        wait that long at most for them to be in the database; returns whether they are."""
        try:
            ticket = self.spool.append(hits, drops or Counter())
        except OSError as exc:
            if not self.refusing:
                self.refusing = True
                log.error("could not write the spool; events refused with 503: %s", exc)
            raise StoreUnavailable("the events could not be kept") from None
        if self.refusing:
            self.refusing = False
            log.warning("the spool takes events again")
        if not self.host_writer:
            self._wake()
        return self.wait(ticket, wait_seconds) if wait_seconds else False

    def wait(self, ticket: int, seconds: float) -> bool:
        """Wait until this process's spool is stored through `ticket`."""
        if self.host_writer:
            return self._wait_for_host(ticket, seconds)
        with self._stored:
            self._waiting += 1
            try:
                return self._stored.wait_for(
                    lambda: self.spool.stored_through() >= ticket, timeout=seconds
                )
            finally:
                self._waiting -= 1

    def flush(self, seconds: float) -> bool:
        """Store what is spooled (at most `seconds`), then stop the writer until the next
        event and delete the stored segments; True when all of it is stored."""
        if self.host_writer:
            return not self.spool.appended or self.wait(self.spool.appended, seconds)
        with self._lock:
            thread = self._thread
        if thread is not None:
            if not self.wait(self.spool.appended, seconds):
                return False
            self._stop.set()
            self._work.set()
            thread.join(seconds)
        return self.spool.release()

    def _wait_for_host(self, ticket: int, seconds: float) -> bool:
        segment, offset = self.spool.position(ticket)
        deadline = time.monotonic() + seconds
        try:
            with self.db.engine.connect() as conn:
                while stored_offset(conn, segment) < offset:
                    if time.monotonic() > deadline:
                        return False
                    conn.rollback()  # the next read sees what was committed since
                    time.sleep(HOST_POLL_SECONDS)
        except OperationalError:
            return False  # the events are in the spool all the same
        return True

    def _wake(self) -> None:
        if not self._work.is_set():
            self._work.set()
        # Under the lock: a writer stopping now either sees these lines or is gone.
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="tracker-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                chunk = self._next_chunk()
                if chunk is None:
                    return
                self.chunks.store(chunk)
                self._stored_through(chunk)
        except Exception:  # noqa: BLE001 - the next event starts a new writer
            log.exception("the spool writer stopped")
            with self._lock:
                self._thread = None
        finally:
            self.chunks.disconnect()

    def _next_chunk(self) -> Chunk | None:
        """The next lines to store; None when idle long enough to stop."""
        while True:
            self._work.clear()
            chunk = self.spool.take()
            if chunk is not None:
                return chunk
            if self._stop.is_set() or not self._work.wait(IDLE_SECONDS):
                with self._lock:
                    if self.spool.release():
                        self._thread = None
                        return None

    def _stored_through(self, chunk: Chunk) -> None:
        self.spool.mark_stored(chunk)
        if self._waiting:
            with self._stored:
                self._stored.notify_all()


class ChunkStore:
    """Stores spool chunks, a transaction each, on a connection it keeps; retries while the
    database is unavailable, and stores line by line when a chunk's data fails."""

    def __init__(self, db: Database, timeout_ms: int) -> None:
        self.db = db
        self.timeout_ms = timeout_ms
        self.lock = WriterFileLock.for_database(db)  # the writers' turn on one SQLite file
        self.conn: Connection | None = None

    def store(self, chunk: Chunk) -> bool:
        """Store the chunk; False if another writer of its segment had already."""
        hits, drops = merge_batches(batch for _end, batch in chunk.batches)
        while True:
            try:
                return self._transaction(partial(advance_offset, chunk=chunk), hits, drops)
            except Exception as exc:  # noqa: BLE001 - the writer must go on
                self.disconnect(failed=True)
                if not _unavailable(exc):
                    log.warning("a chunk failed (%s); storing its lines one by one", exc)
                    self._line_by_line(chunk)
                    return True
                log.warning("database unavailable, %d events wait in the spool: %s", len(hits), exc)
                time.sleep(BACKOFF_SECONDS)

    def store_together(self, chunks: list[Chunk]) -> bool:
        """Chunks of several segments in one transaction, so their events meet visit
        assignment in time order (an engagement beacon spooled by one worker finds its
        pageview spooled by another); False, storing nothing, if another writer stored one
        of them meanwhile."""
        if len(chunks) == 1:
            return self.store(chunks[0])
        hits, drops = merge_batches(batch for chunk in chunks for _end, batch in chunk.batches)

        def claim(conn: Connection) -> bool:
            return all(advance_offset(conn, chunk) for chunk in chunks)

        while True:
            try:
                return self._transaction(claim, hits, drops)
            except Exception as exc:  # noqa: BLE001 - the writer must go on
                self.disconnect(failed=True)
                if not _unavailable(exc):
                    return all([self.store(chunk) for chunk in chunks])  # find the bad line
                log.warning("database unavailable, %d events wait in the spool: %s", len(hits), exc)
                time.sleep(BACKOFF_SECONDS)

    def _transaction(
        self, claim: Callable[[Connection], bool], hits: list[Hit], drops: Counter[DropKey]
    ) -> bool:
        self.conn = self.conn or self.db.engine.connect()
        return store_transaction(self.db, self.conn, self.lock, hits, drops, self.timeout_ms, claim)

    def _line_by_line(self, chunk: Chunk) -> None:
        """Each line alone, so only a bad one is lost (logged, its offset passed)."""
        start = chunk.start
        for end, (hits, drops) in chunk.batches:
            line = Chunk(chunk.segment, start, end, [])
            while True:
                try:
                    self._transaction(partial(advance_offset, chunk=line), hits, drops)
                    break
                except Exception as exc:  # noqa: BLE001
                    self.disconnect(failed=True)
                    if _unavailable(exc):
                        time.sleep(BACKOFF_SECONDS)
                    else:
                        log.exception("%d events could not be stored and are lost", len(hits))
                        hits, drops = [], Counter()  # record the offset past the line alone
            start = end

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
