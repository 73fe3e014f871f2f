"""Gunicorn, embedded: `tracker serve` runs the app factory in gthread workers (that read
each request whole before a thread takes it: tracker.server_worker), and two processes
beside them: the spool's drain (tracker.storage.drain) and the jobs.

Both used to run as threads of the workers, and a worker's requests waited for its GIL
while they worked: the writer's ~40 us per event cost ~150 us there, and the rollup
refresh (seconds of CPU) tripled the p99 latency once a minute. Processes of their own
share the cores with the workers as the OS schedules them.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from gunicorn.app.base import BaseApplication

from tracker.config import Settings
from tracker.supervisor import Supervisor

log = logging.getLogger(__name__)
SETTINGS_VARIABLE = "TRACKER_SERVER_SETTINGS"  # the settings, as JSON, for its processes


class TrackerServer(BaseApplication):  # type: ignore[misc]
    background = True  # run the spool writer and the jobs beside the workers

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Restarts the writer or the jobs when one dies (tracker.supervisor).
        self.supervisor = Supervisor(lambda role: _start(role, settings))
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self.settings.host}:{self.settings.port}",
            "workers": self.settings.workers,
            "threads": self.settings.threads,
            # gthread, but a request gets a thread only once it has all arrived, within
            # the header and body timeouts: slow clients cannot hold the threads.
            "worker_class": "tracker.server_worker.BufferedThreadWorker",
            # Files are written with send, which gives up on a client that reads nothing
            # (the socket's kernel timeout); sendfile would wait for it without end.
            "sendfile": False,
            "graceful_timeout": 30,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            # One shared default socket path would clash between instances on one host.
            "control_socket_disable": True,
            "worker_exit": _store_spooled_events,
            "when_ready": self.start_background,
            "on_exit": self.stop_background,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from tracker.app import create_app

        app = create_app(self.settings.with_overrides(scheduler_enabled=False))
        app.extensions["tracker.ingest"].writer.use_host_drain()
        # Everything built so far (modules, compiled patterns, data tables, the app) lives as
        # long as the worker: out of the collector's sight, a full collection no longer
        # stops every request of the worker for ~100 ms (the p99 latency under load).
        gc.collect()
        gc.freeze()
        # Frozen objects are left out of the interpreter's last collection: DuckDB's
        # bindings would report theirs as leaks on stderr when the worker exits.
        atexit.register(gc.unfreeze)
        return app

    def start_background(self, _arbiter: Any = None) -> None:
        """The spool writer's process and, if enabled, the jobs' process."""
        if self.background:
            jobs = ["jobs"] if self.settings.scheduler_enabled else []
            self.supervisor.run(["writer", *jobs])

    def stop_background(self, _arbiter: Any = None) -> None:
        """After the workers: the writer stores what they left in the spool, then exits."""
        self.supervisor.stop()  # closes their standard input: see run_writer and run_jobs


def _start(role: str, settings: Settings) -> subprocess.Popen[bytes]:
    """A fresh interpreter (not a fork of the arbiter, with its signal handlers). Settings go
    in its environment, not on its command line, where `ps` would show the secret key. It
    stops when its standard input closes: when the server stops it, or dies."""
    env = {**os.environ, SETTINGS_VARIABLE: json.dumps(dataclasses.asdict(settings))}
    argv = [sys.executable, "-m", "tracker.server", role]
    return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE)


def _stop_event() -> threading.Event:
    """Set when standard input closes. SIGTERM and SIGINT are ignored: a signal to the whole
    process group (Ctrl-C, killpg) must not stop the writer before the workers that feed it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    return stop


def run_jobs(settings: Settings) -> None:
    """The jobs process: the app with its scheduler, until the server is gone."""
    from tracker.app import create_app
    from tracker.jobs import run_scheduler

    stop = _stop_event()
    # The scheduler waits here for its lock, held by another server on this data dir.
    run_scheduler(create_app(settings.with_overrides(scheduler_enabled=False)), stop)


def run_writer(settings: Settings) -> None:
    """The host's drain (tracker.storage.drain), holding the writer lock that /healthz
    looks for; once stopped, it stores what is left in the spool before it exits."""
    from tracker.db import open_database
    from tracker.storage.drain import PASS_SECONDS, Drain, hold_writer_lock
    from tracker.storage.spool import spool_directory

    logging.basicConfig(level=settings.log_level.upper())
    stop = _stop_event()
    directory = spool_directory(settings.data_dir)
    lock = hold_writer_lock(directory)
    timeout_ms = settings.visit_timeout_minutes * 60_000
    drain = Drain(open_database(settings), directory, timeout_ms, checkpoint=True)
    try:
        drain.run(idle=stop.is_set, pause_seconds=PASS_SECONDS)
    finally:
        drain.close()
        os.close(lock)


def _store_spooled_events(_arbiter: Any, worker: Any) -> None:
    """A stopping worker stores what it accepted (what it cannot, the replay job will)."""
    pipeline = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("tracker.ingest")
    if pipeline is not None and not pipeline.flush():
        log.warning("worker %s left events in the spool for the replay job", worker.pid)


def run_gunicorn(settings: Settings) -> None:
    TrackerServer(settings).run()


if __name__ == "__main__":
    fields: dict[str, Any] = json.loads(os.environ.pop(SETTINGS_VARIABLE))
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    {"jobs": run_jobs, "writer": run_writer}[sys.argv[1]](Settings(**fields))
