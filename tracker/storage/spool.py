"""The spool: every accepted event is appended here, on local disk, before its 202; the
drain (tracker.storage.drain) stores it in the database moments later.

Why not answer after the database commit? A request that waits for a shared commit is
handed between threads twice, and under load those hand-offs cost more CPU than the event
itself. Appending a line costs microseconds and survives kill -9 of the server (the bytes
are in the kernel once `write` returns); the drain fdatasyncs a segment before storing
from it, so a power cut loses at most the events of the last moments, as SQLite's WAL at
synchronous=NORMAL does. No raw IP address or user agent is in a line: hits are enriched
before they are spooled.

Segments: each process appends to its own `<time>-<uuid>.open` file, holding an exclusive
flock on it; the drain stores the lines in order, recording in `spool_offsets`, in the same
transaction, how many bytes of the segment are stored (`advance_offset`). A full segment is
released (its lock goes) and a new one begun. An `.open` file nobody holds is nobody's any
more (released, or its process died): once stored through its last complete line (a torn
last line was never acknowledged), the drain deletes it. `.full` and `.jsonl` files are
released segments of earlier versions; they are stored the same way.
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
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar, cast, get_type_hints

from sqlalchemy import Connection, Table, select

from tracker.db.models import SpoolOffset
from tracker.enrich.device import DeviceInfo
from tracker.enrich.geo import Place
from tracker.enrich.source import Attribution
from tracker.ingest.drops import DropKey, DropReason
from tracker.ingest.parse import Payload
from tracker.storage.store import upsert_into
from tracker.storage.visits import PAYLOAD_FIELDS, Hit

log = logging.getLogger(__name__)
T = TypeVar("T")

SEGMENT_BYTES = 16 * 1024 * 1024  # then a new segment; a stored one is deleted
CHUNK_BYTES = 1024 * 1024  # lines stored per transaction (about 1,400 events)
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


@dataclass(frozen=True)
class Ticket:
    """Where a line ends: it is stored once its segment is stored through `offset`."""

    segment: str
    offset: int


@dataclass(eq=False)
class Segment:
    """The segment this process appends to."""

    path: Path
    fd: int  # opened for appending, flocked
    written: int = 0

    @property
    def name(self) -> str:
        return self.path.stem


class Spool:
    """One process's spool (thread-safe): request threads append lines to its segment.

    The drain (tracker.storage.drain) stores them; a segment this process released (full,
    or closed when idle) is nobody's any more, and the drain deletes it once stored."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._segment: Segment | None = None
        self.last: Ticket | None = None  # the last line appended

    def append(self, hits: list[Hit], drops: Counter[DropKey]) -> Ticket:
        """Write a batch, or raise OSError; the ticket says when it is stored."""
        line = encode_batch(hits, drops)
        with self._lock:
            segment = self._writable()
            try:
                _write_all(segment.fd, line)
            except OSError:
                # A partly written line must not be followed by others: cut it off, else
                # release the segment. (Releasing it always made a new segment, and under
                # `tracker serve` kept its file open, for every refused event on a full disk.)
                if not _truncate(segment):
                    self._release()
                raise
            segment.written += len(line)
            self.last = Ticket(segment.name, segment.written)
            if segment.written >= self.segment_bytes:
                self._release()
            return self.last

    def segment_path(self, name: str) -> Path:
        return self.directory / f"{name}.open"

    @property
    def is_open(self) -> bool:
        """Whether this process holds a segment (the next line goes there)."""
        return self._segment is not None

    def close(self) -> None:
        """Release the segment: the next line starts a new one."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._segment is not None:
            os.close(self._segment.fd)  # its lock goes with it
            self._segment = None

    def _writable(self) -> Segment:
        if self._segment is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.segment_path(f"{time.time_ns():020d}-{uuid.uuid4().hex}")
            # Locked before it is named `.open`: an `.open` segment nobody locks is a dead
            # process's, and the drain deletes it once stored. Created under its name, a new
            # segment seen between open and flock was deleted, and every event then appended
            # to it was lost (answered 202).
            fresh = path.with_suffix(".new")
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(fresh, path)
            _fsync_directory(self.directory)
            self._segment = Segment(path, fd)
        return self._segment


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


def pending_segments(directory: Path) -> list[Path]:
    """Every segment file, oldest first (those being appended to included)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".jsonl", ".open", ".full"))
