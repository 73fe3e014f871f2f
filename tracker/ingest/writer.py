"""Group commit: one writer thread per process stores everyone's events in shared transactions.

A request hands its hits to the writer and waits; the writer takes every job queued so far
(up to MAX_BATCH events), stores them in one transaction, commits, then wakes the waiting
requests. So a 202 is only sent for committed events, and under load hundreds of events
share one commit instead of paying one each. The thread starts on the first job and stops
after a few idle seconds (nothing runs at import or fork time, nothing lingers in tests).

When the database is unreachable or locked beyond its timeout, batches go to the durable
spool (tracker.ingest.spool) instead, and the requests still get their 202; for a second
after a failure, batches go straight to the spool rather than each waiting for the
database. Only when the spool cannot be written either do requests get a 503.

Shutdown needs nothing of its own: on SIGTERM gunicorn lets in-flight requests finish, and a
request finishes only after its commit, so draining the requests drains the writer. A request
that gives up waiting (503) marks its job abandoned; if the writer had already started it,
it may still be stored, so clients that retry get at-least-once delivery.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from tracker.db import Database
from tracker.ingest.spool import Spool
from tracker.ingest.store import DropKey, WriterFileLock, merge_batches, store_transaction
from tracker.sessions import Hit

log = logging.getLogger(__name__)

MAX_BATCH = 2000  # events per transaction; bigger batches only delay the first answers
IDLE_SECONDS = 5.0
BACKOFF_SECONDS = 1.0  # after a failed transaction, spool without asking the database


class StoreUnavailable(Exception):
    """The database could not take the events in time; the client should retry later."""


class StoreFailed(Exception):
    """These events could not be stored (a bug or a vanished site); retrying will not help."""


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class Job:
    hits: list[Hit]
    drops: Counter[DropKey]
    # Released by the writer when the job is finished. A bare lock: a request waits on it,
    # and waking it costs a fraction of a threading.Event (which matters at 1,000s/s).
    done: threading.Lock = field(default_factory=_held_lock)
    error: Exception | None = None
    abandoned: bool = False  # the request gave up waiting; do not store it any more

    @property
    def size(self) -> int:
        return max(1, len(self.hits))


class GroupCommitWriter:
    def __init__(
        self, db: Database, timeout_ms: int, wait_seconds: float, spool: Spool | None = None
    ) -> None:
        self.db = db
        self.timeout_ms = timeout_ms
        self.wait_seconds = wait_seconds
        self.spool = spool
        self._down_until = 0.0
        self._queue: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._process_lock = WriterFileLock.for_database(db)

    def submit(self, hits: list[Hit], drops: Counter[DropKey] | None = None) -> None:
        """Store hits and drop counts durably, or raise StoreUnavailable / StoreFailed."""
        job = Job(hits, drops or Counter())
        with self._lock:
            self._queue.put(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tracker-writer", daemon=True
                )
                self._thread.start()
        if not job.done.acquire(timeout=self.wait_seconds):
            job.abandoned = True
            raise StoreUnavailable("the database did not answer in time")
        if job.error is not None:
            raise job.error

    def _run(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                jobs = self._take()
                if jobs is None:
                    return
                conn = self._commit(conn, jobs)
        finally:
            if conn is not None:
                conn.close()

    def _take(self) -> list[Job] | None:
        """Block for one job, then take whatever else is already queued."""
        try:
            first = self._queue.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with self._lock:
                if self._queue.empty():
                    self._thread = None
                    if self.spool is not None:
                        # No traffic: hand what was spooled to the replay job now, rather
                        # than when the next event finds the database back.
                        self.spool.close_segment()
                    return None
            first = self._queue.get()
        jobs, size = [first], first.size
        while size < MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            jobs.append(job)
            size += job.size
        return jobs

    def _commit(self, conn: Connection | None, jobs: list[Job]) -> Connection | None:
        live = [job for job in jobs if not job.abandoned]
        if live and time.monotonic() < self._down_until:
            self._spool(live)
        elif live:
            try:
                conn = conn or self.db.engine.connect()
                self._transaction(conn, live)
                if self.spool is not None and self.spool.holding:
                    self.spool.close_segment()  # the database is back: replay can start
            except Exception as exc:  # noqa: BLE001 - every failure must reach the requests
                _discard(conn)
                conn = None
                if _unavailable(exc):
                    log.warning("database unavailable for %d requests: %s", len(live), exc)
                    self._down_until = time.monotonic() + BACKOFF_SECONDS
                    self._spool(live)
                else:
                    log.warning("batch failed (%s); storing its requests one by one", exc)
                    conn = self._one_by_one(live)
        self._finish(jobs)
        return conn

    def _spool(self, jobs: list[Job]) -> None:
        """Keep the jobs in the durable spool; a 503 for them only if that fails too."""
        try:
            if self.spool is None:
                raise OSError("no spool directory")
            self.spool.append(*_merged(jobs))
        except OSError as exc:
            log.error("could not spool %d requests; they get 503: %s", len(jobs), exc)
            for job in jobs:
                job.error = StoreUnavailable("the database is unavailable")

    def _transaction(self, conn: Connection, jobs: list[Job]) -> None:
        hits, drops = _merged(jobs)
        store_transaction(self.db, conn, self._process_lock, hits, drops, self.timeout_ms)

    def _one_by_one(self, jobs: list[Job]) -> Connection | None:
        """A batch failed on bad data: store each job alone so only the bad one fails."""
        conn: Connection | None = None
        for job in jobs:
            try:
                conn = conn or self.db.engine.connect()
                self._transaction(conn, [job])
            except Exception as exc:  # noqa: BLE001
                _discard(conn)
                conn = None
                if _unavailable(exc):
                    self._spool([job])
                else:
                    log.exception("could not store %d events", len(job.hits))
                    job.error = StoreFailed("the events could not be stored")
        return conn

    def _finish(self, jobs: list[Job]) -> None:
        for job in jobs:
            job.done.release()


def _merged(jobs: list[Job]) -> tuple[list[Hit], Counter[DropKey]]:
    return merge_batches((job.hits, job.drops) for job in jobs)


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
