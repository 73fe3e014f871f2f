"""Keeps `tracker serve`'s background processes (the spool writer, the jobs) running.

gunicorn restarts a worker that dies, but it knows nothing of the processes started beside
the workers. A killed writer (kill -9, the OOM killer, a crash) left beacons answered 202
and spooled but stored by nobody until the server was restarted by hand. Here a thread of
the arbiter checks each process twice a second and starts a new one in place of a dead
one, at once the first time and after a growing pause when it keeps dying young (a
setting or a database that stops it at start would otherwise restart it in a tight loop).
`/healthz` says "down" for the writer meanwhile (tracker.web.health).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.5
YOUNG_SECONDS = 30.0  # a process that dies younger than this is restarted after a pause
MAX_PAUSE_SECONDS = 30.0
STOP_SECONDS = 30

Start = Callable[[str], "subprocess.Popen[bytes]"]


@dataclass
class Child:
    role: str  # "writer" or "jobs"
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    young_deaths: int = 0  # deaths in a row before YOUNG_SECONDS of life
    restart_at: float | None = None  # when a dead one is started again


class Supervisor:
    def __init__(self, start: Start) -> None:
        self.start = start  # a fresh process for a role
        self.children: list[Child] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the children, between the watcher and stop()
        self._thread: threading.Thread | None = None

    def run(self, roles: list[str]) -> None:
        """Start a process per role, and the thread that keeps them running."""
        self.children = [Child(role, self.start(role)) for role in roles]
        self._thread = threading.Thread(target=self._watch, name="tracker-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No more restarts; then each process is asked to stop (its standard input closes:
        see tracker.server) and waited for, STOP_SECONDS at most, else killed."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for child in self.children:
                if child.process.stdin is not None:
                    child.process.stdin.close()
            for child in self.children:
                try:
                    child.process.wait(STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    child.process.kill()  # what is left in the spool is stored at the next start

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_SECONDS):
            with self._lock:
                for child in self.children:
                    self._check(child)

    def _check(self, child: Child) -> None:
        now = time.monotonic()
        if child.restart_at is None:
            # poll() also sees a child the arbiter reaped (its waitpid(-1) takes any child):
            # the status is lost then, and poll() says 0.
            if child.process.poll() is None:
                return
            if child.process.stdin is not None:
                child.process.stdin.close()
            young = now - child.started < YOUNG_SECONDS
            child.young_deaths = child.young_deaths + 1 if young else 0
            # At once after a long life; 1, 2, 4... s (MAX_PAUSE_SECONDS at most) else.
            pause = min(MAX_PAUSE_SECONDS, 2.0 ** (child.young_deaths - 1)) if young else 0.0
            child.restart_at = now + pause
            log.error(
                "the %s process (pid %d) stopped (exit status %s); starting a new one%s",
                child.role,
                child.process.pid,
                child.process.returncode,
                f" in {pause:.0f} s" if pause else "",
            )
        if now < child.restart_at:
            return
        try:
            child.process = self.start(child.role)
        except OSError as exc:  # no memory, no process slot: try again later
            log.error("could not start the %s process: %s", child.role, exc)
            child.restart_at = now + MAX_PAUSE_SECONDS
            return
        child.started, child.restart_at = now, None
        log.warning("started a new %s process (pid %d)", child.role, child.process.pid)
