"""Access logs uploaded on the settings page: kept in the data directory until the jobs
process imports them (`import_uploads`, the `import_uploaded_logs` job), oldest first,
through the same `LogImport` as `tracker import logs`, each upload a run of its own.

Progress is a small file beside the upload (bytes read, lines read), replaced every second
by the import and read by the page: on SQLite the import holds the write lock for its whole
file, so it could not be written to the database meanwhile. A running import whose
progress file has not changed for STALE_SECONDS died with its process: the next run takes
the upload again (the file's transaction was rolled back, nothing of it is stored). The
files of a deleted site's uploads are deleted by the next run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update

from tracker.accesslog.files import LogFileError, open_log
from tracker.accesslog.formats import NAMES, LogFormatError, named_format
from tracker.accesslog.load import LogImport, LogImportError
from tracker.config import Settings
from tracker.db import Database, analyze
from tracker.db.models import LogUpload, Site
from tracker.storage.store import STORED_TABLES

log = logging.getLogger(__name__)

WAITING, RUNNING, DONE, FAILED = "waiting", "running", "done", "failed"
STALE_SECONDS = 600.0
ORPHAN_SECONDS = 3600.0
PROGRESS_SECONDS = 1.0
SHOWN_UPLOADS = 10
COPY_BYTES = 1 << 20


class UploadError(ValueError):
    """An upload refused; the message says why, for the page."""


class UploadTooLarge(UploadError):
    """An upload over max_log_upload_mb."""


def upload_dir(data_dir: str) -> Path:
    return Path(data_dir) / "log-uploads"


def _file(data_dir: str, upload_id: int, suffix: str) -> Path:
    return upload_dir(data_dir) / f"{upload_id}.{suffix}"


@dataclass(frozen=True)
class UploadOptions:
    """How to read an upload: the format's name, nginx's log_format text, the time zone."""

    log_format: str = "auto"
    nginx_format: str = ""
    timezone: str = "UTC"

    def check(self) -> None:
        if self.log_format not in NAMES:
            raise UploadError(f"Format: choose one of {', '.join(NAMES)}.")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UploadError(f"Time zone: {self.timezone!r} is not a time zone name.") from None
        if self.log_format != "auto":
            try:
                named_format(self.log_format, zone, self.nginx_format)
            except LogFormatError as exc:
                message = str(exc).replace("--log-format", "the log_format field")
                raise UploadError(message) from None


def save_upload(
    db: Database,
    settings: Settings,
    site: Site,
    name: str,
    stream: IO[bytes],
    options: UploadOptions,
) -> LogUpload:
    """Keep an uploaded log for the jobs process; UploadError if it is refused."""
    options.check()
    limit = settings.max_log_upload_mb * 1_000_000
    folder = upload_dir(settings.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with db.session() as session:
        upload = LogUpload(
            site_id=site.id,
            name=(name or "access.log")[-255:],
            size=0,
            log_format=options.log_format,
            nginx_format=options.nginx_format[:1000],
            timezone=options.timezone,
            status=WAITING,
        )
        session.add(upload)
        session.flush()
        path = _file(settings.data_dir, upload.id, "log")
        try:
            upload.size = _copy(stream, path, limit, settings.max_log_upload_mb)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        session.flush()
        session.expunge(upload)
    return upload


def _copy(stream: IO[bytes], path: Path, limit: int, limit_mb: int) -> int:
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(COPY_BYTES):
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(
                    f"The file is over {limit_mb:,} MB, the largest this page takes "
                    "(max_log_upload_mb); import it with `tracker import logs`."
                )
            out.write(chunk)
    if size == 0:
        raise UploadError("The file is empty.")
    return size


@dataclass(frozen=True)
class UploadState:
    """An upload as the page shows it."""

    id: int
    name: str
    size: int
    status: str
    done_bytes: int
    summary: str
    created_at: datetime

    @property
    def percent(self) -> int:
        return min(100, self.done_bytes * 100 // self.size) if self.size else 0


def recent_uploads(db: Database, data_dir: str, site_id: int) -> list[UploadState]:
    with db.session() as session:
        rows = session.scalars(
            select(LogUpload)
            .where(LogUpload.site_id == site_id)
            .order_by(LogUpload.id.desc())
            .limit(SHOWN_UPLOADS)
        ).all()
        return [
            UploadState(
                id=row.id,
                name=row.name,
                size=row.size,
                status=row.status,
                done_bytes=row.size if row.status == DONE else _done_bytes(data_dir, row.id),
                summary=row.summary,
                created_at=row.created_at,
            )
            for row in rows
        ]


def _done_bytes(data_dir: str, upload_id: int) -> int:
    try:
        return int(_file(data_dir, upload_id, "progress").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


class ProgressFile:
    """Writes (bytes read, lines read) to the progress file, once a second at most."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0.0
        self.write(0, 0)

    def __call__(self, position: int, lines: int) -> None:
        if time.monotonic() - self.written >= PROGRESS_SECONDS:
            self.write(position, lines)

    def write(self, position: int, lines: int) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(f"{position} {lines}\n")
        os.replace(partial, self.path)
        self.written = time.monotonic()


def import_uploads(db: Database, settings: Settings) -> int:
    """Import every waiting upload (and any whose import died), oldest first; how many."""
    _delete_orphans(db, settings.data_dir)
    count = 0
    while (upload := _claim_next(db, settings.data_dir)) is not None:
        _run(db, settings, upload)
        count += 1
    return count


def _delete_orphans(db: Database, data_dir: str) -> None:
    """Delete the files of uploads whose row is gone (their site was deleted). Only files an
    hour old: a file is written before its row is committed."""
    folder = upload_dir(data_dir)
    if not folder.is_dir():
        return
    with db.session() as session:
        known = set(session.scalars(select(LogUpload.id)))
    for path in folder.iterdir():
        stem = path.name.partition(".")[0]
        old = time.time() - path.stat().st_mtime > ORPHAN_SECONDS
        if stem.isdigit() and int(stem) not in known and old:
            path.unlink(missing_ok=True)


def _claim_next(db: Database, data_dir: str) -> LogUpload | None:
    with db.session() as session:
        candidates = session.scalars(
            select(LogUpload).where(LogUpload.status.in_((WAITING, RUNNING))).order_by(LogUpload.id)
        ).all()
        for upload in candidates:
            if upload.status == RUNNING and not _stale(data_dir, upload.id):
                continue
            claimed = session.execute(
                update(LogUpload)
                .where(LogUpload.id == upload.id, LogUpload.status == upload.status)
                .values(status=RUNNING)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                ProgressFile(_file(data_dir, upload.id, "progress"))
                session.flush()
                session.expunge(upload)
                return upload
    return None


def _stale(data_dir: str, upload_id: int) -> bool:
    try:
        changed = _file(data_dir, upload_id, "progress").stat().st_mtime
    except FileNotFoundError:
        return True
    return time.time() - changed > STALE_SECONDS


def _run(db: Database, settings: Settings, upload: LogUpload) -> None:
    """Import one claimed upload and record how it went; the file is deleted after."""
    data_dir = settings.data_dir
    with db.session() as session:
        site = session.get(Site, upload.site_id)
        domain = site.domain if site is not None else ""
    try:
        zone = ZoneInfo(upload.timezone)
        fmt = None
        if upload.log_format != "auto":
            fmt = named_format(upload.log_format, zone, upload.nginx_format)
        job = LogImport.with_settings(db, settings, domain, zone=zone, log_format=fmt)
        logfile = open_log(str(_file(data_dir, upload.id, "log")))
        logfile.name = upload.name
        try:
            report = job.run(logfile, progress=ProgressFile(_file(data_dir, upload.id, "progress")))
        finally:
            logfile.close()
    except (LogImportError, LogFileError, LogFormatError, ZoneInfoNotFoundError) as exc:
        status, summary = FAILED, f"Nothing imported: {exc}"
    else:
        status, summary = DONE, "\n".join(report.summary())
        if report.pages:
            analyze(db, STORED_TABLES)
    with db.session() as session:
        session.execute(
            update(LogUpload)
            .where(LogUpload.id == upload.id)
            .values(status=status, summary=summary[:4000], finished_at=datetime.now(UTC))
        )
    for suffix in ("log", "progress"):
        _file(data_dir, upload.id, suffix).unlink(missing_ok=True)
    log.info("access log upload %d (%s): %s", upload.id, domain, summary.splitlines()[0])
