"""Background jobs, declared as a table: name, function, schedule (GoatCounter's cron/).

Each job is a plain, idempotent function of (database, settings): tests and
`tracker jobs run NAME` call it directly; `start_scheduler` runs the table with
APScheduler in one process per data directory (`tracker serve`'s jobs process, through
`run_scheduler`). Running a job twice, or in two processes at once, must be harmless. To
add a job, append a row to JOBS.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from tracker.accesslog.uploads import import_uploads
from tracker.alerts import check_alerts
from tracker.columnar.build import refresh as refresh_columnar
from tracker.config import Settings
from tracker.db import Database
from tracker.enrich.visitor import rotate_salts
from tracker.ingest.spam import SpamListError, spam_hosts_path
from tracker.ingest.spam import update as update_spam_hosts
from tracker.mail import drain as drain_outbox
from tracker.report_schedule import send_due_reports
from tracker.stats.rollups import refresh as refresh_rollups
from tracker.storage.changes import prune as prune_visit_changes
from tracker.storage.drain import replay
from tracker.storage.spool import spool_directory

log = logging.getLogger(__name__)
# A standby jobs process tries the lock (an open and a flock) this often: within a second of
# the holder stopping, the jobs go on.
CLAIM_RETRY_SECONDS = 1.0
SPAM_LIST_MAX_AGE = timedelta(days=7) - timedelta(hours=1)  # weekly, whatever the run's minute

# The scheduler locks this process holds, by lock file: referenced here for as long as their
# scheduler runs, whatever becomes of the app that started it. A lock kept only by its app
# was closed when the app was garbage collected (the jobs process dropped it at once), and
# a second `tracker serve` on the data dir then started a second scheduler.
_held_locks: dict[Path, IO[bytes]] = {}


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[Database, Settings], None]
    trigger: str  # an APScheduler trigger: "interval" or "cron"
    schedule: dict[str, Any] = field(default_factory=dict)  # the trigger's arguments
    run_at_start: bool = False


def stats_rollups_job(db: Database, settings: Settings) -> None:
    """Every site's report rollups cover its days through today (see tracker.stats.rollups)."""
    refresh_rollups(db)


def columnar_store_job(db: Database, settings: Settings) -> None:
    """Every site's closed days are in the columnar store (see tracker.columnar.build)."""
    if db.columnar_root is not None:
        refresh_columnar(db, db.columnar_root)


def replay_spool_job(db: Database, settings: Settings) -> None:
    """Events spooled while the database was unavailable are stored (tracker.storage.drain)."""
    timeout_ms = settings.visit_timeout_minutes * 60_000
    replay(db, spool_directory(settings.data_dir), timeout_ms)


def rotate_salts_job(db: Database, settings: Settings) -> None:
    """Today's visitor-id salt exists; salts older than yesterday are gone."""
    rotate_salts(db, datetime.now(UTC).date())


def prune_visit_changes_job(db: Database, settings: Settings) -> None:
    """Changes to past days' visits no reader can need any more are gone (a week old)."""
    prune_visit_changes(db)


def update_spam_list_job(db: Database, settings: Settings) -> None:
    """Referrer spam hosts from spam_list_url, read again once the last read is a week old."""
    if not settings.spam_list_url:
        return
    path = spam_hosts_path(settings.data_dir)
    try:
        age = datetime.now(UTC) - datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        age = None
    if age is not None and age < SPAM_LIST_MAX_AGE:
        return
    try:
        result = update_spam_hosts(settings.spam_list_url, settings.data_dir)
    except SpamListError as exc:
        log.warning("referrer spam list not updated: %s", exc)
        return
    log.info("%s", result.summary())


def send_mail_job(db: Database, settings: Settings) -> None:
    """Due mails of the outbox are sent, failures retried later (tracker.mail)."""
    result = drain_outbox(db, settings)
    if result.failed:
        log.warning("mail: %d sent, %d failed (retried later)", result.sent, result.failed)


def email_reports_job(db: Database, settings: Settings) -> None:
    """Each site's due weekly and monthly reports are queued, once (tracker.report_schedule)."""
    queued = send_due_reports(db, settings)
    if queued:
        log.info("reports: %d mails queued", queued)


def alerts_job(db: Database, settings: Settings) -> None:
    """Every alert rule checked: fired, notified unless cooling down, or cleared."""
    for event in check_alerts(db, settings):
        log.info("alert: %s", event.message)


def import_uploaded_logs_job(db: Database, settings: Settings) -> None:
    """Access logs uploaded on the settings page are imported (tracker.accesslog.uploads)."""
    imported = import_uploads(db, settings)
    if imported:
        log.info("access logs: %d uploads imported", imported)


JOBS: list[Job] = [
    # Hourly rather than once at midnight, so a server that was down at midnight catches up.
    Job("rotate_salts", rotate_salts_job, "cron", {"minute": 0}, run_at_start=True),
    # Today and the days late events touched; one lookup of the newest ids when none came.
    Job("stats_rollups", stats_rollups_job, "interval", {"minutes": 1}, run_at_start=True),
    # A query when nothing changed; a day's parts once it closes, a month's when it does.
    Job("columnar_store", columnar_store_job, "interval", {"minutes": 1}, run_at_start=True),
    # A few rows a day; hourly, so a server down at some hour catches up.
    Job("prune_visit_changes", prune_visit_changes_job, "cron", {"minute": 41}),
    # Cheap when the spool is empty (one directory listing); a retry every few seconds else.
    Job("replay_spool", replay_spool_job, "interval", {"seconds": 5}, run_at_start=True),
    # Daily, fetching only when the file is a week old: a server down at that hour, a
    # download that failed or a new install catches up the next day, not the next week.
    Job("update_spam_list", update_spam_list_job, "cron", {"hour": 4, "minute": 27}),
    # One query when nothing is due; mails queued by a page go out within seconds.
    Job("send_mail", send_mail_job, "interval", {"seconds": 10}, run_at_start=True),
    # A claimed row per site and period: a run finding it claimed does nothing.
    Job("email_reports", email_reports_job, "interval", {"minutes": 10}, run_at_start=True),
    # Real time is the last 5 minutes: a spike lasting that long is seen.
    Job("alerts", alerts_job, "interval", {"minutes": 5}, run_at_start=True),
    # One query when nothing waits; an upload starts within seconds of arriving.
    Job(
        "import_uploaded_logs",
        import_uploaded_logs_job,
        "interval",
        {"seconds": 10},
        run_at_start=True,
    ),
]


def find_job(name: str) -> Job:
    for job in JOBS:
        if job.name == name:
            return job
    raise KeyError(f"no job named {name!r} (known: {', '.join(j.name for j in JOBS)})")


def _guarded(job: Job, db: Database, settings: Settings) -> Callable[[], None]:
    def run() -> None:
        try:
            job.func(db, settings)
        except Exception:  # noqa: BLE001 - a failing job must not stop the scheduler
            log.exception("job %s failed", job.name)

    return run


def _lock_path(settings: Settings) -> Path:
    return Path(settings.data_dir).resolve() / "scheduler.lock"


def _claim_scheduler(settings: Settings) -> IO[bytes] | None:
    """One scheduler per data directory: the process that holds this lock file runs the jobs.

    gunicorn starts several workers from one app factory, and two servers may share a data
    directory; without this each ran every job, and on SQLite their writes fought over the
    lock. The lock dies with its process, so another one takes it over.
    """
    path = _lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "wb")  # held open for as long as the scheduler runs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    _held_locks[path] = handle
    return handle


def start_scheduler(app: Flask) -> BackgroundScheduler | None:
    """Run the job table in this process, unless another process already does for this
    data directory."""
    lock = _claim_scheduler(app.extensions["tracker.settings"])
    if lock is None:
        log.info("jobs run in another process for this data directory")
        return None
    return _run_table(app, lock)


def run_scheduler(app: Flask, stop: threading.Event) -> None:
    """The jobs process's life: run the job table until `stop` is set. While another
    server on this data directory runs it, try again every CLAIM_RETRY_SECONDS, so the jobs
    go on soon after that server stops."""
    settings: Settings = app.extensions["tracker.settings"]
    lock = _claim_scheduler(settings)
    if lock is None:
        log.info("jobs run in another process for this data directory; taking over when it stops")
    while lock is None:
        if stop.wait(CLAIM_RETRY_SECONDS):
            return
        lock = _claim_scheduler(settings)
    log.info("running the jobs of %s", settings.data_dir)
    _run_table(app, lock)
    stop.wait()
    stop_scheduler(app)


def _run_table(app: Flask, lock: IO[bytes]) -> BackgroundScheduler:
    db: Database = app.extensions["tracker.db"]
    settings: Settings = app.extensions["tracker.settings"]
    app.extensions["tracker.scheduler_lock"] = lock
    # APScheduler logs two lines per run; with replay_spool every 5 s they drowned the
    # server's log. Failures are still logged, by _guarded.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(timezone="UTC", daemon=True)
    for job in JOBS:
        run = _guarded(job, db, settings)
        extra: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if job.run_at_start else {}
        scheduler.add_job(
            run, job.trigger, id=job.name, coalesce=True, max_instances=1, **job.schedule, **extra
        )
    scheduler.start()
    app.extensions["tracker.scheduler"] = scheduler
    return scheduler


def stop_scheduler(app: Flask) -> None:
    """Stop the app's scheduler (jobs running finish first) and give up its lock."""
    scheduler: BackgroundScheduler | None = app.extensions.pop("tracker.scheduler", None)
    if scheduler is not None:
        # Jobs out first: after shutdown() has closed its thread pool, APScheduler's loop
        # looks for due jobs once more, and one due then logged "RuntimeError: cannot
        # schedule new futures after shutdown". (Exiting without shutdown() logged the same
        # for "interpreter shutdown" when the server stopped as a job was due.)
        scheduler.remove_all_jobs()
        scheduler.shutdown(wait=True)
    lock: IO[bytes] | None = app.extensions.pop("tracker.scheduler_lock", None)
    if lock is not None:
        _held_locks.pop(Path(lock.name), None)
        lock.close()
