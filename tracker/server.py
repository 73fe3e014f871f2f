"""Gunicorn, embedded: `tracker serve` runs the app factory in gthread workers."""

from __future__ import annotations

import gc
import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from tracker.config import Settings

log = logging.getLogger(__name__)


class TrackerServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
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
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from tracker.app import create_app

        app = create_app(self.settings)
        # Everything built so far (modules, compiled patterns, data tables, the app) lives as
        # long as the worker: out of the collector's sight, a full collection no longer
        # stops every request of the worker for ~100 ms (the p99 latency under load).
        gc.collect()
        gc.freeze()
        return app


def _store_spooled_events(_arbiter: Any, worker: Any) -> None:
    """A stopping worker stores what it accepted (what it cannot, the replay job will)."""
    pipeline = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("tracker.ingest")
    if pipeline is not None and not pipeline.flush():
        log.warning("worker %s left events in the spool for the replay job", worker.pid)


def run_gunicorn(settings: Settings) -> None:
    TrackerServer(settings).run()
