"""Background jobs, declared as a table: name, function, schedule (GoatCounter's cron/).

Each job is a plain, idempotent function of (database, settings): tests and
`tracker jobs run NAME` call it directly; `start_scheduler` runs the table with
APScheduler in one server process per host when `scheduler_enabled` is set. Running a job
twice, or in two processes at once, must be harmless. To add a job, append a row to JOBS.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from tracker.config import Settings
from tracker.db import Database
from tracker.enrich.visitor import rotate_salts
from tracker.ingest.spool import replay, spool_directory
from tracker.stats.rollups import refresh as refresh_rollups

log = logging.getLogger(__name__)


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


def replay_spool_job(db: Database, settings: Settings) -> None:
    """Events spooled while the database was unavailable are stored (tracker.ingest.spool)."""
    timeout_ms = settings.visit_timeout_minutes * 60_000
    replay(db, spool_directory(settings.data_dir), timeout_ms)


def rotate_salts_job(db: Database, settings: Settings) -> None:
    """Today's visitor-id salt exists; salts older than yesterday are gone."""
    rotate_salts(db, datetime.now(UTC).date())


JOBS: list[Job] = [
    # Hourly rather than once at midnight, so a server that was down at midnight catches up.
    Job("rotate_salts", rotate_salts_job, "cron", {"minute": 0}, run_at_start=True),
    # Each run rebuilds today (and any day late events touched): pages lag by up to a minute.
    Job("stats_rollups", stats_rollups_job, "interval", {"minutes": 1}, run_at_start=True),
    # Cheap when the spool is empty (one directory listing); a retry every few seconds else.
    Job("replay_spool", replay_spool_job, "interval", {"seconds": 5}, run_at_start=True),
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


def _claim_scheduler(settings: Settings) -> IO[bytes] | None:
    """One scheduler per host: the process that holds this lock file runs the jobs.

    gunicorn starts several workers from one app factory; without this each ran every job,
    and on SQLite their writes fought over the lock. The lock dies with its process, so a
    restarted worker takes it over.
    """
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "scheduler.lock", "wb")  # held open for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def start_scheduler(app: Flask) -> BackgroundScheduler | None:
    """Run the job table in this process, unless another process on this host already does."""
    db: Database = app.extensions["tracker.db"]
    settings: Settings = app.extensions["tracker.settings"]
    lock = _claim_scheduler(settings)
    if lock is None:
        log.info("jobs run in another process on this host")
        return None
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
