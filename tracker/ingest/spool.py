"""The spool: events the database could not take, kept on local disk until it can.

When the writer's transaction fails because the database is unreachable or locked beyond
its timeout, the batch goes to a spool segment in <data_dir>/spool and is fsynced before
the requests get their 202, so "accepted" still means "survives kill -9". The
`replay_spool` job (every few seconds) stores closed segments, oldest first, through the
same visit assignment as live traffic (batches are processed in timestamp order).

Segments: a writer appends to its own `<id>.open` file, holding an exclusive flock on it,
and closes it (renamed to `<id>.jsonl`) when it is full or the database is back. An
`.open` file nobody holds belongs to a process that died: its complete lines are replayed
too (a torn last line was never acknowledged). Each replay records the segment's id in
`spool_replays` in the same transaction as its events, so a segment replayed twice (a
crash between commit and unlink, two replayers) is stored once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date
from functools import partial
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import Connection, Table, insert, select

from tracker.db import Database
from tracker.db.models import SpoolReplay
from tracker.enrich.geo import Place
from tracker.enrich.source import Attribution
from tracker.enrich.useragent import DeviceInfo
from tracker.ingest.store import DropKey, WriterFileLock, merge_batches, store_transaction
from tracker.sessions import Hit

log = logging.getLogger(__name__)

SEGMENT_EVENTS = 2000  # events per segment: one replay transaction each
replays_t = cast(Table, SpoolReplay.__table__)


def encode_batch(hits: list[Hit], drops: Counter[DropKey]) -> bytes:
    """One spool line: a batch's hits and drop counts as JSON."""
    line = {
        "hits": [asdict(hit) for hit in hits],
        "drops": [[site, day.isoformat(), reason, n] for (site, day, reason), n in drops.items()],
    }
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def decode_batch(line: bytes) -> tuple[list[Hit], Counter[DropKey]]:
    data = json.loads(line)
    hits = [_hit(item) for item in data["hits"]]
    drops: Counter[DropKey] = Counter(
        {(site, date.fromisoformat(day), reason): n for site, day, reason, n in data["drops"]}
    )
    return hits, drops


def _hit(item: dict[str, Any]) -> Hit:
    return Hit(
        **{
            **item,
            "visitor_ids": tuple(item["visitor_ids"]),
            "attribution": Attribution(**item["attribution"]),
            "device": DeviceInfo(**item["device"]),
            "place": Place(**item["place"]),
        }
    )


class Spool:
    """One process's writing end of the spool directory (thread-safe)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._events = 0

    def append(self, hits: list[Hit], drops: Counter[DropKey]) -> None:
        """Append a batch durably (written and fsynced), or raise OSError."""
        line = encode_batch(hits, drops)
        with self._lock:
            file = self._file or self._open()
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
            self._events += len(hits)
            if self._events >= SEGMENT_EVENTS:
                self._close()

    def close_segment(self) -> None:
        """Hand the current segment to the replayer (the database is back)."""
        with self._lock:
            if self._file is not None:
                self._close()

    @property
    def holding(self) -> bool:
        return self._file is not None

    def _open(self) -> IO[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._path = self.directory / f"{time.time_ns():020d}-{uuid.uuid4().hex}.open"
        self._file = self._path.open("ab")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        _fsync_directory(self.directory)
        return self._file

    def _close(self) -> None:
        assert self._file is not None and self._path is not None
        self._path.rename(self._path.with_suffix(".jsonl"))
        _fsync_directory(self.directory)
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file, self._path, self._events = None, None, 0


def _fsync_directory(directory: Path) -> None:
    """Make a created or renamed file's name durable, not only its content."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pending_segments(directory: Path) -> list[Path]:
    """Closed segments and orphaned open ones, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".jsonl", ".open"))


def _claimed(path: Path) -> Iterator[IO[bytes]]:
    """The segment opened and flocked for replay; nothing when a live writer holds it."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return  # replayed meanwhile by another process
    with file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        yield file


def read_segment(file: IO[bytes]) -> list[tuple[list[Hit], Counter[DropKey]]]:
    batches = []
    for number, line in enumerate(file.read().split(b"\n"), start=1):
        if not line:
            continue
        try:
            batches.append(decode_batch(line))
        except (ValueError, KeyError, TypeError):
            # Only a torn last line (a crash mid-write, never acknowledged) is expected here.
            log.warning("spool %s: line %d is incomplete; skipped", file.name, number)
    return batches


def spool_directory(data_dir: str) -> Path:
    return Path(data_dir) / "spool"


def replay(db: Database, directory: Path, timeout_ms: int) -> int:
    """Store every replayable segment; returns the number of events stored.

    A database still unavailable raises (OperationalError) and leaves the rest for later.
    """
    stored = 0
    lock = WriterFileLock.for_database(db)
    try:
        for path in pending_segments(directory):
            for file in _claimed(path):
                hits, drops = merge_batches(read_segment(file))
                with db.engine.connect() as conn:
                    claim = partial(_mark, segment=path.stem)
                    done = store_transaction(db, conn, lock, hits, drops, timeout_ms, claim)
                path.unlink()
                if done:
                    stored += len(hits)
                    log.info("spool: replayed %d events from %s", len(hits), path.name)
    finally:
        lock.close()
    return stored


def _mark(conn: Connection, segment: str) -> bool:
    """Record the segment as replayed; False when it already was."""
    if conn.execute(select(replays_t.c.segment).where(replays_t.c.segment == segment)).first():
        return False
    conn.execute(insert(replays_t).values(segment=segment, replayed_ms=time.time_ns() // 10**6))
    return True
