"""Gunicorn, embedded: `tracker serve` runs the app factory in gthread workers, and the
background jobs in a process of their own.

Jobs used to run in one of the workers. The rollup refresh takes seconds of CPU there, and
a worker's requests wait for its GIL meanwhile: under load the p99 latency tripled once a
minute. A process of their own shares the cores with the workers instead, as the OS
schedules them.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

from gunicorn.app.base import BaseApplication

from tracker.config import Settings

log = logging.getLogger(__name__)
JOBS_SETTINGS = "TRACKER_JOBS_PROCESS_SETTINGS"  # the settings, as JSON, for the jobs process


class TrackerServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs: subprocess.Popen[bytes] | None = None
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self.settings.host}:{self.settings.port}",
            "workers": self.settings.workers,
            "threads": self.settings.threads,
            "worker_class": "gthread",
            "graceful_timeout": 30,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            # One shared default socket path would clash between instances on one host.
            "control_socket_disable": True,
            "worker_exit": _store_spooled_events,
            "when_ready": self.start_jobs,
            "on_exit": self.stop_jobs,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from tracker.app import create_app

        app = create_app(self.settings.with_overrides(scheduler_enabled=False))
        # Everything built so far (modules, compiled patterns, data tables, the app) lives as
        # long as the worker: out of the collector's sight, a full collection no longer
        # stops every request of the worker for ~100 ms (the p99 latency under load).
        gc.collect()
        gc.freeze()
        return app

    def start_jobs(self, _arbiter: Any = None) -> None:
        """A fresh interpreter (not a fork of the arbiter, with its signal handlers)."""
        if self.settings.scheduler_enabled:
            # In the environment, not the command line: `ps` would show the secret key.
            settings = json.dumps(dataclasses.asdict(self.settings))
            env = {**os.environ, JOBS_SETTINGS: settings}
            self.jobs = subprocess.Popen([sys.executable, "-m", "tracker.server"], env=env)

    def stop_jobs(self, _arbiter: Any = None) -> None:
        if self.jobs is not None:
            self.jobs.terminate()
            self.jobs.wait(10)


def run_jobs(settings: Settings) -> None:
    """The jobs process: the app with its scheduler, until the server is gone."""
    from tracker.app import create_app

    server_pid = os.getppid()
    create_app(settings)
    while os.getppid() == server_pid:  # a server killed with -9 cannot stop us
        time.sleep(1)


def _store_spooled_events(_arbiter: Any, worker: Any) -> None:
    """A stopping worker stores what it accepted (what it cannot, the replay job will)."""
    pipeline = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("tracker.ingest")
    if pipeline is not None and not pipeline.flush():
        log.warning("worker %s left events in the spool for the replay job", worker.pid)


def run_gunicorn(settings: Settings) -> None:
    TrackerServer(settings).run()


if __name__ == "__main__":
    fields: dict[str, Any] = json.loads(os.environ.pop(JOBS_SETTINGS))
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    run_jobs(Settings(**fields))
