"""The writer: the collector's one call into storage. `submit` appends hits and drop counts
to this process's spool (tracker.storage.spool) and returns once they are on disk; the
drain (tracker.storage.drain) stores them moments later, a chunk per transaction, through
the same visit assignment as everything else. So under load a thousand events share a
commit, and no request waits on another thread.

Under `tracker serve` the drain runs in a process of its own (`use_host_drain`); anywhere
else (a dev server, tests, imports) in a thread of this process, which starts with the first
event and stops after IDLE_SECONDS without one, its segment released and deleted once
stored (nothing runs at import or fork time, nothing lingers in tests).

Trusted batches and imports may `wait` for their events to be in the database, which also
slows a fast sender down to what the database takes: the segment's stored offset is read
again each time the drain thread commits, or every POLL_SECONDS when the drain is another
process. When the database is unreachable or locked beyond its timeout, the drain keeps the
lines and retries; requests still get their 202 as long as the spool can be written. Only
when it cannot (a full disk) do they get a 503. On SIGTERM gunicorn lets in-flight requests
finish and then `flush` waits for the rest (so do imports); whatever a crash leaves, the
next drain stores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from tracker.db import Database
from tracker.ingest.drops import DropKey
from tracker.storage.drain import Drain
from tracker.storage.spool import Spool, Ticket, stored_offset
from tracker.storage.visits import Hit

log = logging.getLogger(__name__)

IDLE_SECONDS = 5.0
POLL_SECONDS = 0.005


class StoreUnavailable(Exception):
    """The events could not be kept (the spool cannot be written); retry later."""


class Writer:
    def __init__(self, db: Database, directory: Path, timeout_ms: int) -> None:
        self.db = db
        self.spool = Spool(directory)
        self.timeout_ms = timeout_ms
        self.host_drain = False
        self.refusing = False  # the spool could not be written: said once, not per event
        self._stored = threading.Condition()  # notified after each pass that stored
        self._work = threading.Event()  # set when lines were appended
        self._stop = threading.Event()  # set by flush: stop once all is stored
        self._lock = threading.Lock()  # the drain thread's start and stop
        self._thread: threading.Thread | None = None

    def use_host_drain(self) -> None:
        """Under `tracker serve`: the host's drain process stores the spool; this process
        only appends."""
        self.host_drain = True

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
        if not self.host_drain:
            self._wake()
        return self.wait(ticket, wait_seconds) if wait_seconds else False

    def wait(self, ticket: Ticket, seconds: float) -> bool:
        """Wait (`seconds` at most) until the spool is stored through `ticket`."""
        deadline = time.monotonic() + seconds
        try:
            with self.db.engine.connect() as conn, self._stored:
                while not self._stored_through(conn, ticket):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    conn.rollback()  # the next read sees what was committed since
                    self._stored.wait(min(remaining, POLL_SECONDS))
        except OperationalError:
            return False  # the events are in the spool all the same
        return True

    def _stored_through(self, conn: Connection, ticket: Ticket) -> bool:
        # A segment is deleted once stored to its end, and its offset forgotten an hour later.
        return (
            stored_offset(conn, ticket.segment) >= ticket.offset
            or not self.spool.segment_path(ticket.segment).exists()
        )

    def flush(self, seconds: float) -> bool:
        """Wait (`seconds` at most) until all this process spooled is stored; then release
        its segment and stop the drain thread, deleting the segment (both start again with
        the next event). True when all of it is stored."""
        last = self.spool.last
        if last is not None and not self.wait(last, seconds):
            return False
        self.spool.close()
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._stop.set()
            self._work.set()
            thread.join(seconds)
        return True

    def _wake(self) -> None:
        if not self._work.is_set():
            self._work.set()
        # Under the lock: a drain thread stopping now either sees these lines or is gone.
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="tracker-drain", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        drain = Drain(self.db, self.spool.directory, self.timeout_ms, on_stored=self._notify_stored)
        try:
            drain.run(idle=self._idle)
        except Exception:  # noqa: BLE001 - the next event starts a new drain thread
            log.exception("the spool's drain thread stopped")
            with self._lock:
                self._thread = None
        finally:
            drain.close()

    def _notify_stored(self) -> None:
        with self._stored:
            self._stored.notify_all()

    def _idle(self) -> bool:
        """After a pass with nothing to do: wait for lines (IDLE_SECONDS at most, unless
        stopping); True when the thread stops, its segment released and deleted."""
        if self._work.wait(0 if self._stop.is_set() else IDLE_SECONDS):
            self._work.clear()
            return False
        with self._lock:
            if self._work.is_set():
                return False
            if self.spool.is_open:
                self.spool.close()  # the next pass deletes it
                return False
            self._thread = None
            return True
