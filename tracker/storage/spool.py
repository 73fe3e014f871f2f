"""The spool: every accepted event is appended here, on local disk, before its 202; the
writer (tracker.storage.writer) stores it in the database moments later.

Why not answer after the database commit? A request that waits for a shared commit is
handed between threads twice, and under load those hand-offs cost more CPU than the event
itself. Appending a line costs microseconds and survives kill -9 of the server (the bytes
are in the kernel once `write` returns); the writer fdatasyncs a segment before storing
from it, so a power cut loses at most the events of the last moments, as SQLite's WAL at
synchronous=NORMAL does. No raw IP address or user agent is in a line: hits are enriched
before they are spooled.

Segments: each process appends to its own `<time>-<uuid>.open` file, holding an exclusive
flock on it, and its writer stores the lines in order, recording in `spool_offsets`, in
the same transaction, how many bytes of the segment are stored. A full segment is replaced
by a new one and deleted once stored. An `.open` file nobody holds belongs to a process
that died: the `replay_spool` job stores its lines past the recorded offset (a torn last
line was never acknowledged), so each line is stored exactly once. `.jsonl` files are
closed segments of earlier versions; they replay the same way.
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
from dataclasses import dataclass, fields, is_dataclass
from datetime import date
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar, cast, get_type_hints

from sqlalchemy import Connection, Table, delete, select
from sqlalchemy.exc import OperationalError

from tracker.db import Database
from tracker.db.models import SpoolOffset
from tracker.enrich.geo import Place
from tracker.enrich.source import Attribution
from tracker.enrich.useragent import DeviceInfo
from tracker.ingest.drops import DropKey, DropReason
from tracker.ingest.parse import Payload
from tracker.storage.store import (
    WriterFileLock,
    merge_batches,
    store_transaction,
    upsert_into,
)
from tracker.storage.visits import PAYLOAD_FIELDS, Hit

log = logging.getLogger(__name__)
T = TypeVar("T")

SEGMENT_BYTES = 16 * 1024 * 1024  # then a new segment; a stored one is deleted
CHUNK_BYTES = 1024 * 1024  # lines stored per transaction (about 1,400 events)
OFFSET_KEEP_MS = 3_600_000  # offsets of deleted segments are forgotten after an hour
offsets_t = cast(Table, SpoolOffset.__table__)

Batch = tuple[list[Hit], Counter[DropKey]]


# --- lines: a batch of hits and drop counts as one line of JSON --------------------------

# Version 2 holds a hit's payload as one nested array; version 1 (lines without "version")
# held its fields among the hit's own.
LINE_VERSION = 2

_HIT_FIELDS = tuple(f.name for f in fields(Hit))
_hit_values = attrgetter(*_HIT_FIELDS)
# Nested values (the payload, attribution, device, place) travel as arrays of their fields,
# rebuilt by position.
_NESTED = {
    index: (cls, attrgetter(*(f.name for f in fields(cls))))
    for index, cls in enumerate(get_type_hints(Hit).values())
    if isinstance(cls, type) and is_dataclass(cls)
}
_VISITOR_IDS = _HIT_FIELDS.index("visitor_ids")


def _encode_hit(hit: Hit) -> list[Any]:
    values = list(_hit_values(hit))
    for index, (_cls, get) in _NESTED.items():
        values[index] = get(values[index])
    return values


def _decode_hit(item: list[Any]) -> Hit:
    """A hit of a spool line; lines written before a field was added (last, with a default)
    hold fewer values, and the missing ones take their defaults."""
    for index, (cls, _get) in _NESTED.items():
        item[index] = cls(*item[index])
    item[_VISITOR_IDS] = tuple(item[_VISITOR_IDS])
    return Hit(*item)


# A hit of a version 1 line: these fields, in this order, the last two missing from lines
# written before revenue; in older segments an object of the same names, nested values too.
# Fixed: it is what files left by earlier versions hold.
_FLAT_FIELDS = (
    "site_id", "visitor_ids", "timestamp_ms", "kind", "hostname", "path", "query",
    "attribution", "device", "place", "screen", "title", "referrer", "name", "target",
    "props", "engaged_ms", "scroll", "pageview_id", "revenue_minor", "revenue_currency",
)  # fmt: skip


def _decode_flat_hit(item: list[Any] | dict[str, Any]) -> Hit:
    named = dict(zip(_FLAT_FIELDS, item, strict=False)) if isinstance(item, list) else item
    return Hit(
        site_id=named["site_id"],
        visitor_ids=tuple(named["visitor_ids"]),
        timestamp_ms=named["timestamp_ms"],
        payload=Payload(**{name: named[name] for name in PAYLOAD_FIELDS if name in named}),
        attribution=_nested(Attribution, named["attribution"]),
        device=_nested(DeviceInfo, named["device"]),
        place=_nested(Place, named["place"]),
        screen=named["screen"],
        referrer=named["referrer"],
    )


def _nested(cls: type[T], value: list[Any] | dict[str, Any]) -> T:
    return cls(**value) if isinstance(value, dict) else cls(*value)


def encode_batch(hits: list[Hit], drops: Counter[DropKey]) -> bytes:
    """One spool line: a batch's hits and drop counts as JSON."""
    line = {
        "version": LINE_VERSION,
        "hits": [_encode_hit(hit) for hit in hits],
        "drops": [[site, day.isoformat(), reason, n] for (site, day, reason), n in drops.items()],
    }
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def decode_batch(line: bytes) -> Batch:
    data = json.loads(line)
    decode = _decode_hit if data.get("version") == LINE_VERSION else _decode_flat_hit
    hits = [decode(item) for item in data["hits"]]
    drops: Counter[DropKey] = Counter(
        {
            (site, date.fromisoformat(day), DropReason(reason)): n
            for site, day, reason, n in data["drops"]
        }
    )
    return hits, drops


@dataclass(frozen=True)
class Chunk:
    """Complete lines of a segment, bytes `start` to `end`: one transaction's worth."""

    segment: str  # the segment's id, its file name without suffix
    start: int
    end: int
    batches: list[tuple[int, Batch]]  # each line's batch and the offset after the line


def read_chunk(segment: str, data: bytes, start: int) -> Chunk:
    """The lines of `data` (read at offset `start`, cut after a newline) as a Chunk.

    A line that does not decode is logged and skipped: only a torn last line of a crashed
    process, never acknowledged, is expected."""
    batches: list[tuple[int, Batch]] = []
    offset = start
    for line in data.splitlines(keepends=True):
        offset += len(line)
        if line.strip():
            try:
                batches.append((offset, decode_batch(line)))
            except (ValueError, KeyError, TypeError, IndexError):
                log.warning("spool %s: the line ending at byte %d is incomplete", segment, offset)
    return Chunk(segment, start, offset, batches)


def chunks_of(segment: str, data: bytes, start: int, base: int = 0) -> Iterator[Chunk]:
    """`data[start:]` cut into chunks of whole lines, about CHUNK_BYTES each; `data` was
    read at offset `base` of the segment."""
    while start < len(data):
        cut = data.rfind(b"\n", start, start + CHUNK_BYTES) + 1
        if cut <= start:  # one line longer than a chunk, or a torn last line
            cut = data.find(b"\n", start) + 1 or len(data)
        yield read_chunk(segment, data[start:cut], base + start)
        start = cut


def next_chunk(segment: str, fd: int, start: int, end: int) -> Chunk | None:
    """The complete lines of the segment open as `fd` from byte `start` (about CHUNK_BYTES
    of them, `end` being its size), synced to disk first; None when there is none (a line
    being written, or torn by a crash)."""
    data = os.pread(fd, min(end - start, CHUNK_BYTES), start)
    if b"\n" not in data:  # one line longer than a chunk
        data = os.pread(fd, end - start, start)
    cut = data.rfind(b"\n") + 1
    if cut == 0:
        return None
    os.fdatasync(fd)  # a power cut now loses nothing before these lines
    return next(chunks_of(segment, data[:cut], 0, base=start))


# --- the writing end -----------------------------------------------------------------


@dataclass(eq=False)
class Segment:
    """A segment this process appends to (the last one) or still stores from."""

    path: Path
    fd: int  # opened for appending, flocked
    base: int  # this process's spool bytes before this segment
    written: int = 0
    stored: int = 0
    full: bool = False  # takes no more lines; deleted once stored

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def done(self) -> bool:
        return self.stored == self.written


class Spool:
    """One process's spool (thread-safe): request threads append, its writer takes chunks."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._segments: list[Segment] = []  # oldest first; appends go to the last one
        self._appended = 0  # bytes this process has appended, over all its segments
        # Under `tracker serve` the host's writer process stores the segments: a full one is
        # handed over (renamed .full, closed) instead of kept for this process's writer.
        self.hand_over_full = False

    def append(self, hits: list[Hit], drops: Counter[DropKey]) -> int:
        """Write a batch, or raise OSError; returns its ticket for `stored_through`."""
        line = encode_batch(hits, drops)
        with self._lock:
            segment = self._writable()
            try:
                _write_all(segment.fd, line)
            except OSError:
                # A partly written line must not be followed by others: cut it off, else
                # retire the segment. (Retiring it always made a new segment, and under
                # `tracker serve` kept its file open, for every refused event on a full disk.)
                if not _truncate(segment):
                    segment.full = True
                    if self.hand_over_full:
                        _hand_over(segment)
                raise
            segment.written += len(line)
            self._appended += len(line)
            if segment.written >= self.segment_bytes:
                segment.full = True
                if self.hand_over_full:
                    _hand_over(segment)
            return self._appended

    def position(self, ticket: int) -> tuple[str, int]:
        """The segment and the offset in it that a ticket stands for."""
        with self._lock:
            segment = next(s for s in self._segments if s.base < ticket <= s.base + s.written)
            return segment.name, ticket - segment.base

    def take(self) -> Chunk | None:
        """The oldest lines not stored yet, about CHUNK_BYTES of them; None when all are."""
        with self._lock:
            self._delete_stored()
            if not self._segments or self._segments[0].done:
                return None
            segment = self._segments[0]
            start, end = segment.stored, segment.written
        return next_chunk(segment.name, segment.fd, start, end)

    def mark_stored(self, chunk: Chunk) -> None:
        with self._lock:
            segment = next(s for s in self._segments if s.name == chunk.segment)
            segment.stored = chunk.end

    @property
    def appended(self) -> int:
        """The ticket of the last line appended."""
        return self._appended

    def stored_through(self) -> int:
        """Bytes appended by this process that are stored (compare with a ticket)."""
        with self._lock:
            if not self._segments:
                return self._appended
            first = self._segments[0]
            return first.base + first.stored

    def release(self) -> bool:
        """Delete the segments once all is stored (an idle writer stops); False if not."""
        with self._lock:
            if any(not s.done for s in self._segments):
                return False
            for segment in self._segments:
                segment.full = True
            self._delete_stored()
            return True

    def _writable(self) -> Segment:
        if not self._segments or self._segments[-1].full:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{time.time_ns():020d}-{uuid.uuid4().hex}.open"
            # Locked before it is named `.open`: an `.open` segment nobody locks is a dead
            # process's, and the host's writer deletes it once stored. Created under its
            # name, a new segment seen between open and flock was deleted, and every event
            # then appended to it was lost (answered 202).
            fresh = path.with_suffix(".new")
            # Read back by pread on the same descriptor: it holds the lock.
            fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(fresh, path)
            _fsync_directory(self.directory)
            self._segments.append(Segment(path, fd, base=self._appended))
        return self._segments[-1]

    def _delete_stored(self) -> None:
        while self._segments and self._segments[0].full and self._segments[0].done:
            segment = self._segments.pop(0)
            segment.path.unlink(missing_ok=True)  # before the lock goes: no replay of it
            os.close(segment.fd)


def _hand_over(segment: Segment) -> None:
    """The segment takes no more lines: renamed .full for the host's writer, closed."""
    segment.path = segment.path.rename(segment.path.with_suffix(".full"))
    _fsync_directory(segment.path.parent)
    os.close(segment.fd)
    segment.fd = -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _truncate(segment: Segment) -> bool:
    try:
        os.ftruncate(segment.fd, segment.written)
    except OSError:
        log.exception("spool %s: could not cut a partly written line", segment.name)
        return False
    return True


def _fsync_directory(directory: Path) -> None:
    """Make a created file's name durable, not only its content."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_directory(data_dir: str) -> Path:
    return Path(data_dir) / "spool"


PROBE_BYTES = 4096  # a beacon's line, with room to spare


def write_problem(directory: Path) -> str | None:
    """Why the spool cannot take a line now (a full disk, a read-only or lost directory),
    tried with a file of PROBE_BYTES written and deleted; None when it can (/healthz)."""
    path = directory / f"probe-{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, b"\n" * PROBE_BYTES)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def advance_offset(conn: Connection, chunk: Chunk) -> bool:
    """Inside the transaction that stores a chunk: the segment is now stored up to its end,
    if it was stored up to its start; False (store nothing) if another writer got there.

    One compare-and-set statement, so two writers of one segment (a replay and the host's
    writer, after a crash) cannot both pass it, on PostgreSQL either."""
    stmt = upsert_into(offsets_t, conn.dialect.name).values(
        segment=chunk.segment, stored_bytes=chunk.end, updated_ms=time.time_ns() // 10**6
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[offsets_t.c.segment],
        set_={name: stmt.excluded[name] for name in ("stored_bytes", "updated_ms")},
        where=offsets_t.c.stored_bytes == chunk.start,
    ).returning(offsets_t.c.segment)
    return conn.execute(stmt).first() is not None


def stored_offset(conn: Connection, segment: str) -> int:
    query = select(offsets_t.c.stored_bytes).where(offsets_t.c.segment == segment)
    return int(conn.execute(query).scalar() or 0)


# --- replay of segments left by processes that died -------------------------------------


def pending_segments(directory: Path) -> list[Path]:
    """Every segment file, oldest first (live ones included)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".jsonl", ".open", ".full"))


def _orphan(path: Path) -> Iterator[bytes]:
    """The segment's content while this process holds its lock; nothing when a live
    process holds it (or it is gone)."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    with file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        if path.exists():  # not deleted by its writer between the listing and the lock
            yield file.read()


def replay(db: Database, directory: Path, timeout_ms: int) -> int:
    """Store the lines of dead processes' segments; returns the number of events stored.

    A database still unavailable raises (OperationalError) and leaves the rest for later.
    """
    stored = 0
    lock = WriterFileLock.for_database(db)
    try:
        for path in pending_segments(directory):
            for data in _orphan(path):
                count, complete = _replay_segment(db, lock, path.stem, data, timeout_ms)
                stored += count
                if complete:
                    path.unlink()
        _forget_offsets(db, {p.stem for p in pending_segments(directory)})
    finally:
        lock.close()
    return stored


def _replay_segment(
    db: Database, lock: WriterFileLock, segment: str, data: bytes, timeout_ms: int
) -> tuple[int, bool]:
    """Events stored, and whether the segment's complete lines are all stored now. They may
    not be: under `tracker serve` the host's writer may be storing a handed-over segment
    too, and where it got first, this replay's chunks (cut elsewhere) are declined; the
    segment is then its to finish and delete."""
    with db.engine.connect() as conn:
        start = stored_offset(conn, segment)
        conn.rollback()
        stored = 0
        for chunk in chunks_of(segment, data, start):
            hits, drops = merge_batches(batch for _end, batch in chunk.batches)

            claim = partial(advance_offset, chunk=chunk)
            if store_transaction(db, conn, lock, hits, drops, timeout_ms, claim):
                stored += len(hits)
        if stored:
            log.info("spool: replayed %d events of %s", stored, segment)
        complete = stored_offset(conn, segment) >= data.rfind(b"\n") + 1
        conn.rollback()
        return stored, complete


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
