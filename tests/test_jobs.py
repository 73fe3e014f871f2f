"""The job table, the scheduler start-up, and `tracker jobs`."""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.waiting import wait_until
from tracker import jobs
from tracker.app import create_app
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import DailySalt
from tracker.enrich.visitor import ensure_salt
from tracker.jobs import JOBS, find_job, run_scheduler, stop_scheduler
from tracker.server import SETTINGS_VARIABLE


def salt_days(db: Database) -> list[date]:
    with db.session() as session:
        return sorted(session.scalars(select(DailySalt.day)))


def test_rotate_salts_job_keeps_today_and_yesterday(app, db: Database) -> None:
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    for day in (date(2020, 1, 1), yesterday - timedelta(days=1), yesterday):
        ensure_salt(db, day)
    find_job("rotate_salts").func(db, app.extensions["tracker.settings"])
    assert salt_days(db) == [yesterday, today]


def test_job_names_are_unique() -> None:
    names = [job.name for job in JOBS]
    assert len(names) == len(set(names))


def test_scheduler_starts_only_when_enabled(make_app, db: Database, caplog) -> None:
    caplog.set_level(logging.INFO)
    quiet = make_app()
    assert "tracker.scheduler" not in quiet.extensions
    busy = make_app(scheduler_enabled=True)
    scheduler = busy.extensions["tracker.scheduler"]
    try:
        assert {job.id for job in scheduler.get_jobs()} == {job.name for job in JOBS}
        # rotate_salts runs at start, in the scheduler's thread
        wait_until(lambda: salt_days(db), "the scheduler's first rotate_salts")
    finally:
        scheduler.shutdown(wait=True)
    assert salt_days(db) == [datetime.now(UTC).date()]
    # Jobs that run every few seconds must not fill the log with a line per run.
    assert not [r for r in caplog.records if r.name.startswith("apscheduler.executors")]


def test_one_scheduler_per_data_dir(make_app) -> None:
    first = make_app(scheduler_enabled=True)
    try:
        second = make_app(scheduler_enabled=True)  # a second gunicorn worker on this host
        assert "tracker.scheduler" not in second.extensions
    finally:
        first.extensions["tracker.scheduler"].shutdown(wait=True)
        first.extensions["tracker.scheduler_lock"].close()
    third = make_app(scheduler_enabled=True)  # the lock died with its holder: taken over
    third.extensions["tracker.scheduler"].shutdown(wait=True)
    third.extensions["tracker.scheduler_lock"].close()


def test_cli_lists_jobs_with_schedule_and_purpose() -> None:
    result = CliRunner().invoke(cli, ["jobs", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == [job.name for job in JOBS]
    spool = next(line for line in lines if line.startswith("replay_spool"))
    assert "interval seconds=5" in spool
    assert "Events spooled while the database was unavailable are stored" in spool
    # Aligned columns: every schedule starts at the same place.
    assert len({line.index(line.split()[1]) for line in lines}) == 1


def test_cli_runs_a_job(database_url: str, tmp_path) -> None:
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    result = runner.invoke(cli, ["jobs", "run", "rotate_salts"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output == "Ran rotate_salts.\n"
    missing = runner.invoke(cli, ["jobs", "run", "nope"], env=env)
    assert missing.exit_code == 1
    assert "no job named 'nope'" in missing.output


def test_a_scheduler_keeps_its_lock_when_its_app_is_dropped(make_settings) -> None:
    """The jobs process used to drop the app it started the scheduler with; the lock closed
    with the app at the next garbage collection, and another server's scheduler started."""
    settings = make_settings(scheduler_enabled=True)
    scheduler = create_app(settings).extensions["tracker.scheduler"]  # the app is dropped
    try:
        gc.collect()
        other = create_app(settings)  # a second server on this data dir
        assert "tracker.scheduler" not in other.extensions
        other.extensions["tracker.db"].dispose()
    finally:
        scheduler.remove_all_jobs()
        scheduler.shutdown(wait=True)
        jobs._held_locks.pop(Path(settings.data_dir).resolve() / "scheduler.lock").close()


def test_run_scheduler_takes_over_when_the_holder_stops(
    make_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "CLAIM_RETRY_SECONDS", 0.05)  # not a second of the test's
    first = make_app(scheduler_enabled=True)
    second = make_app()
    stop = threading.Event()
    waiting = threading.Thread(target=run_scheduler, args=(second, stop))
    waiting.start()
    try:
        assert "tracker.scheduler" not in second.extensions  # the first one runs the jobs
        stop_scheduler(first)
        # It tries every CLAIM_RETRY_SECONDS.
        wait_until(lambda: "tracker.scheduler" in second.extensions, "the second's scheduler")
    finally:
        stop.set()
        waiting.join(60)
    assert not waiting.is_alive()
    assert "tracker.scheduler" not in second.extensions  # stopped and its lock given up
    third = make_app(scheduler_enabled=True)
    assert "tracker.scheduler" in third.extensions
    stop_scheduler(third)


@pytest.mark.slow
def test_the_jobs_process_stops_without_tracebacks(tmp_path: Path, sqlite_template: Path) -> None:
    """Stopped as its first jobs are being handed to the thread pool (a server stopped just
    after it started): it logged "RuntimeError: cannot schedule new futures after
    interpreter shutdown", and stopped by shutdown() "... after shutdown".
    The moment varies (it failed about every other time): eight at once, each on a data
    folder of its own, so that each runs its scheduler."""
    processes = []
    for run in range(8):
        data_dir = tmp_path / f"run-{run}"
        data_dir.mkdir()
        shutil.copy(sqlite_template, data_dir / "tracker.db")
        settings = {"data_dir": str(data_dir), "secret_key": "x", "log_level": "WARNING"}
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "tracker.server", "jobs"],
                env={**os.environ, SETTINGS_VARIABLE: json.dumps(settings)},
                stdin=subprocess.DEVNULL,  # "stop" at once
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
