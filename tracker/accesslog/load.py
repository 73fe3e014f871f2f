"""Storing an access log: its page requests become pageviews and visits, as live traffic's.

Each line is parsed (tracker.accesslog.formats) and sorted (tracker.accesslog.pages); a page
request then takes the collector's own steps (tracker.ingest.pipeline): `gate` (the site,
its allowed hosts), `drop_reason` (bots, referrer spam: the collector's rules), `enrich`
(visitor id, source and channel from the logged referrer and UTM parameters, device,
place), and `store_hits` (tracker.storage.store: the 30-minute rule, campaigns, time on page
from the next pageview). No address or user agent is stored.

- Visitor ids hash address and user agent with the run's own salt of the day
  (`RunSalts`, never stored): a visitor of a past day is counted once per day across the
  files of one run; import the files that cover a day together.
- A file is stored in one transaction with its `log_files` row, or not at all. The row
  says how many bytes of the file are stored and hashes them: a file that begins with the
  bytes of one imported before (the same file, grown, rotated or compressed) has those
  lines skipped and only the rest stored, so each line is stored once. Only whole lines
  are read: a last line without its end of line (a log being written) waits for the next
  import.
- `dry_run` runs the same transaction and rolls it back: the numbers are what would be
  stored.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy import text as text_sql

from tracker.accesslog.files import HEAD_BYTES, LogFile, lines_with_head, recognise, sample, text
from tracker.accesslog.formats import LineError, LogFormat, Request
from tracker.accesslog.pages import Skip, skip_reason
from tracker.clock import now_ms
from tracker.config import Settings
from tracker.db import Database
from tracker.db.models import EARLIEST_DAY
from tracker.db.models import LogFile as LogFileRow
from tracker.enrich.visitor import RunSalts
from tracker.ingest.drops import DropReason
from tracker.ingest.gate import SiteInfo
from tracker.ingest.parse import (
    FUTURE_SKEW_MS,
    EventError,
    IncomingEvent,
    parse_event,
    trusted_ip,
    trusted_user_agent,
)
from tracker.ingest.pipeline import Client, Landing, Pipeline, Rejected
from tracker.ingest.spam import spam_hosts_path
from tracker.storage.spool import spool_directory
from tracker.storage.store import WriterFileLock, store_hits
from tracker.storage.visits import Hit

CHUNK = 2000  # page requests per visit assignment (memory stays constant)
SHOWN_MALFORMED = 5
MEMO_SIZE = 65_536  # distinct pages, addresses, user agents remembered (constant memory)
PROGRESS_LINES = 5000  # lines between progress reports
EARLIEST_MS = int(datetime(EARLIEST_DAY.year, 1, 1, tzinfo=UTC).timestamp() * 1000)
NO_CLIENT = Client(ip="", user_agent="")  # each line brings its own
IMPORT_LOCK = 0x1067_0000_0000  # + site id: the advisory lock key of a site's imports

K = TypeVar("K")
V = TypeVar("V")
Progress = Callable[[int, int], None]  # (bytes of the file read, lines read)


class LogImportError(Exception):
    """A file that cannot be imported; nothing of it was stored. The message names it."""


@dataclass
class FileReport:
    """What one file gave (or, on a dry run, would give)."""

    name: str
    format: str = ""
    lines: int = 0  # read, including those stored by an earlier import
    already: int = 0  # stored by an earlier import of this file
    pages: int = 0
    visits: int = 0
    skipped: Counter[Skip] = field(default_factory=Counter)
    malformed: list[tuple[int, str]] = field(default_factory=list)  # the first few
    first_ms: int | None = None
    last_ms: int | None = None
    unfinished_line: bool = False  # the last line had no end of line: not read

    def page(self, ms: int) -> None:
        self.pages += 1
        self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
        self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)

    def skip(self, reason: Skip, number: int = 0, message: str = "") -> None:
        self.skipped[reason] += 1
        if reason is Skip.MALFORMED and len(self.malformed) < SHOWN_MALFORMED:
            self.malformed.append((number, message))

    def summary(self) -> list[str]:
        """The report in sentences, first line first (the command's and the upload's)."""
        kind = f" ({self.format})" if self.format else ""
        out = [
            f"{self.name}{kind}: {self.lines:,} lines read, {self.pages:,} pages, "
            f"{self.visits:,} visits{self._period()}"
        ]
        if self.skipped:
            ranked = sorted(self.skipped.items(), key=lambda item: (-item[1], item[0]))
            out.append("  skipped: " + ", ".join(f"{r.value} {n:,}" for r, n in ranked))
        out += [f"  line {number}: {message}" for number, message in self.malformed]
        if self.already:
            out.append(f"  {self.already:,} lines were stored by an earlier import: skipped")
        if self.unfinished_line:
            out.append("  the last line has no end of line (still being written): left for later")
        return out

    def _period(self) -> str:
        if self.first_ms is None or self.last_ms is None:
            return ""
        first, last = (
            datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            for ms in (self.first_ms, self.last_ms)
        )
        return f", {first} to {last} UTC"


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class LogImport:
    """Imports access logs into one site, with one set of salts for the whole run."""

    @classmethod
    def with_settings(
        cls,
        db: Database,
        settings: Settings,
        domain: str,
        *,
        zone: tzinfo = UTC,
        log_format: LogFormat | None = None,
    ) -> LogImport:
        pipeline = Pipeline(
            db,
            visit_timeout_minutes=settings.visit_timeout_minutes,
            geoip_path=settings.geoip_path,
            spool_dir=spool_directory(settings.data_dir),
            spam_hosts_file=spam_hosts_path(settings.data_dir),
        )
        timeout_ms = settings.visit_timeout_minutes * 60_000
        return cls(pipeline, domain, timeout_ms, zone=zone, log_format=log_format)

    def __init__(
        self,
        pipeline: Pipeline,
        domain: str,
        timeout_ms: int,
        *,
        zone: tzinfo = UTC,
        log_format: LogFormat | None = None,
    ) -> None:
        site = pipeline.sites.get(domain.lower())
        if site is None:
            raise LogImportError(f"site: {domain!r} is not a site registered here")
        self.pipeline = pipeline
        self.pipeline.salts = RunSalts()
        self.site = site
        self.domain = site.domain
        self.timeout_ms = timeout_ms
        self.zone = zone
        self.log_format = log_format
        # Distinct pages, addresses and user agents, each validated once: plain dicts,
        # emptied when full (cheaper per look-up than lru_cache, and no object per entry
        # for the garbage collector to walk).
        self._pages: dict[tuple[str, str, str], _Page] = {}
        self._ips: dict[str, str | None] = {}
        self._user_agents: dict[str, str] = {}

    def run(
        self, log: LogFile, *, dry_run: bool = False, progress: Progress | None = None
    ) -> FileReport:
        """Store the page requests of `log` in one transaction (rolled back on a dry run)."""
        report = FileReport(log.name)
        head, lines = lines_with_head(log)
        if not any(line.strip() for line in head):
            return report
        fmt = self.log_format or recognise(log.name, sample(head), self.zone)
        report.format = fmt.name
        first = b"".join(head)[:HEAD_BYTES]
        with _file_transaction(self.pipeline) as conn, _older_objects_set_aside():
            known = _known_file(conn, self.site.id, first)
            stored_bytes = self._read(conn, fmt, lines, known, report, log, progress)
            if stored_bytes and not dry_run:
                _record_file(conn, self.site.id, log.name, first, stored_bytes, known, report)
            if dry_run:
                conn.rollback()
            else:
                conn.commit()
        return report

    def _read(
        self,
        conn: Connection,
        fmt: LogFormat,
        lines: Iterator[bytes],
        known: Row[Any] | None,
        report: FileReport,
        log: LogFile,
        progress: Progress | None,
    ) -> tuple[int, str] | None:
        """Store the file's new lines; (bytes read, their hash) or None if it has none.

        Most lines are not pages: they cost a parse and `skip_reason`, in this loop (a
        call per line less). Page requests go on to `_page_hit`."""
        skip_until = known.bytes if known else 0
        digest = hashlib.blake2b(digest_size=16)
        offset = 0
        number = 0
        hits: list[Hit] = []
        latest = now_ms() + FUTURE_SKEW_MS
        parse, skipped = fmt.parse, report.skipped
        for number, line in enumerate(lines, start=1):  # noqa: B007 - read after the loop
            if not line.endswith(b"\n"):
                report.unfinished_line = True
                number -= 1
                break
            offset += len(line)
            digest.update(line)
            if progress and number % PROGRESS_LINES == 0:
                progress(log.position(), number)
            if offset <= skip_until:
                report.already += 1
                if offset == skip_until:
                    _check_same(log.name, known, digest.hexdigest())
                continue
            if offset - len(line) < skip_until:
                _check_same(log.name, known, "")  # the old end falls inside a line
            try:
                request = parse(text(line))
            except LineError as exc:
                if line.strip():  # blank lines are no requests, and no format reads one
                    report.skip(Skip.MALFORMED, number, str(exc))
                continue
            ms = request.timestamp_ms
            if ms < EARLIEST_MS or ms > latest:
                problem = f"before {EARLIEST_DAY.year}" if ms < EARLIEST_MS else "in the future"
                report.skip(Skip.MALFORMED, number, f"time: {problem}")
                continue
            reason = skip_reason(request)
            if reason is not None:
                if reason is Skip.MALFORMED:
                    message = f"request target {request.target[:80]!r} is not a path"
                    report.skip(reason, number, message)
                else:
                    skipped[reason] += 1
                continue
            hit = self._page_hit(fmt, request, number, report)
            if hit is not None:
                hits.append(hit)
                if len(hits) >= CHUNK:
                    report.visits += self._store(conn, hits)
        report.lines = number
        report.visits += self._store(conn, hits)
        if progress:
            progress(log.position(), report.lines)
        if offset <= skip_until:
            return None  # nothing new: the whole file was imported before
        return offset, digest.hexdigest()

    def _page_hit(
        self, fmt: LogFormat, request: Request, number: int, report: FileReport
    ) -> Hit | None:
        """The enriched pageview of a page request, or None with the reason counted.

        It goes through the collector's steps; what depends on its page and referrer
        alone (validation, `gate`, the landing's source) is worked out once per distinct
        page (`_pages`), and addresses and user agents are validated once each."""
        ms = request.timestamp_ms
        key = (request.host, request.target, request.referrer)
        agent = request.user_agent
        try:
            page = self._pages.get(key)
            if page is None:
                page = _remember(self._pages, key, self._parse_page(*key))
            ip = self._ips.get(request.ip, "")
            if ip == "":
                ip = _remember(self._ips, request.ip, checked_ip(request.ip))
            if agent is not None and (user_agent := self._user_agents.get(agent)) is None:
                user_agent = _remember(self._user_agents, agent, trusted_user_agent(agent))
            event = IncomingEvent(
                site=page.event.site,
                url=page.event.url,
                payload=page.event.payload,
                referrer=page.event.referrer,
                screen=page.event.screen,
                timestamp_ms=ms,
                ip=ip,
                user_agent=None if agent is None else user_agent,
            )
        except EventError as exc:
            report.skip(Skip.MALFORMED, number, str(exc))
            return None
        site = page.site
        if site is None:
            report.skipped[Skip.HOST] += 1
            return None
        if fmt.logs_user_agent:
            dropped = self.pipeline.drop_reason(event, NO_CLIENT, site)
            if dropped is not None:
                report.skipped[SKIP_OF_DROP[dropped]] += 1
                return None
        report.page(ms)
        return self.pipeline.enrich(event, site, NO_CLIENT, ms, page.landing)

    def _parse_page(self, host: str, target: str, referrer: str) -> _Page:
        """A pageview of this target and referrer, from no one in particular, validated by
        the collector's parser and gated as the collector gates it; events of the page
        share its payload, which nothing changes."""
        if target.startswith("/"):
            target = f"https://{host or self.domain}{target}"
        data = {"site": self.domain, "type": "pageview", "url": target, "referrer": referrer}
        event = parse_event(data, trusted=False, now_ms=0)
        try:
            site = self.pipeline.gate(event, None)
        except Rejected:
            return _Page(event, None, None)
        return _Page(event, site, self.pipeline.landing(event, site))

    def _store(self, conn: Connection, hits: list[Hit]) -> int:
        """Store a chunk of hits inside the file's transaction; the visits they started."""
        if not hits:
            return 0
        started = store_hits(conn, hits, self.timeout_ms, Counter(), lock_visitors=False)
        hits.clear()
        return started


# The collector's verdicts as the summary's skip reasons (Skip takes their words).
SKIP_OF_DROP = {reason: Skip(reason.value) for reason in DropReason}


def _remember(memo: dict[K, V], key: K, value: V) -> V:
    """Keep `value` in `memo`, emptied first when it holds MEMO_SIZE (constant memory)."""
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


@dataclass(frozen=True, slots=True)
class _Page:
    """A distinct (host, target, referrer) of a log: its event, the site if the gate lets
    it in (None: another host's page), and what enrichment finds from it alone."""

    event: IncomingEvent
    site: SiteInfo | None
    landing: Landing | None


_PLAIN_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)


def checked_ip(value: str) -> str | None:
    """The collector's `trusted_ip`, without its cost for the plain IPv4 address most lines
    have (four decimal numbers up to 255, no leading zeros), which it returns unchanged."""
    if _PLAIN_IPV4.fullmatch(value):
        return value
    return trusted_ip(value)


def _check_same(name: str, known: Row[Any] | None, digest: str) -> None:
    if known is not None and digest != known.content_hash:
        raise LogImportError(
            f"{name}: begins as {known.name} (imported {known.imported_at:%Y-%m-%d %H:%M} UTC)"
            f" but differs from it within its first {known.bytes:,} bytes; nothing imported"
        )


@contextmanager
def _older_objects_set_aside() -> Iterator[None]:
    """Python's full garbage collections walk every object of the process, ~125,000 once
    SQLAlchemy and the user-agent parser are loaded, and the ~10 objects an import makes
    per page it stores set one off every few thousand pages: a fifth of an import's time.
    The objects that were there before are set aside (`gc.freeze`) while a file is read,
    and handed back to the collector after; the file's own objects are collected as
    usual, so memory stays bounded. A process that froze its own long-lived objects
    (tracker.server's workers) has them set aside already, and keeps them so: unfreezing
    takes back every frozen object, not only the import's."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _file_transaction(pipeline: Pipeline) -> Iterator[Connection]:
    """One transaction for a whole file, taking the writers' turn on SQLite (the collector's
    writer keeps its events in the spool meanwhile)."""
    db = pipeline.db
    lock = WriterFileLock.for_database(db)
    try:
        with db.engine.connect() as conn, lock:
            if db.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.begin()
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
    finally:
        lock.close()


def _known_file(conn: Connection, site_id: int, first: bytes) -> Row[Any] | None:
    """The imported file this one begins as (the one with most bytes stored), if any.

    On PostgreSQL, imports into one site take turns first (SQLite's write lock already
    does), so two imports of one file at once cannot both find it new."""
    if conn.dialect.name == "postgresql":
        conn.execute(text_sql("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK + site_id})
    table = LogFileRow.__table__
    rows = conn.execute(select(table).where(table.c.site_id == site_id)).all()
    matches = [
        row
        for row in rows
        if row.head_bytes <= len(first) and content_hash(first[: row.head_bytes]) == row.head_hash
    ]
    return max(matches, key=lambda row: row.bytes, default=None)


def _record_file(
    conn: Connection,
    site_id: int,
    name: str,
    first: bytes,
    stored: tuple[int, str],
    known: Row[Any] | None,
    report: FileReport,
) -> None:
    size, digest = stored
    values = {
        "name": name[-255:],
        "bytes": size,
        "content_hash": digest,
        "imported_at": datetime.now(UTC),
    }
    if known is None:
        head = first[:size]
        conn.execute(
            insert(LogFileRow).values(
                site_id=site_id,
                head_bytes=len(head),
                head_hash=content_hash(head),
                lines=report.lines,
                pages=report.pages,
                first_ms=report.first_ms,
                last_ms=report.last_ms,
                **values,
            )
        )
        return
    firsts = [ms for ms in (known.first_ms, report.first_ms) if ms is not None]
    lasts = [ms for ms in (known.last_ms, report.last_ms) if ms is not None]
    conn.execute(
        update(LogFileRow)
        .where(LogFileRow.id == known.id)
        .values(
            lines=report.lines,
            pages=known.pages + report.pages,
            first_ms=min(firsts, default=None),
            last_ms=max(lasts, default=None),
            **values,
        )
    )
