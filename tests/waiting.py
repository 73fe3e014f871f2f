"""Waiting on a condition, never on the clock alone: a loaded machine (CI beside other work)
is slower than any fixed sleep assumes, and a condition met ends the wait at once. Also what
a server's processes and port hold, read from /proc, for waits on a real server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

DEADLINE_SECONDS = 60
T = TypeVar("T")

_LISTEN, _ESTABLISHED = "0A", "01"  # socket states in /proc/net/tcp


def wait_until(check: Callable[[], T], what: str, seconds: float = DEADLINE_SECONDS) -> T:
    """Poll until `check()` is truthy and return its value; fail, naming `what`, after
    `seconds`."""
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)
    return value


def _sockets(port: int) -> Iterator[tuple[str, int]]:
    """(state, bytes queued to be read) of each IPv4 TCP socket whose local port is `port`;
    for a listening socket, the second is how many connections wait to be accepted."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            yield fields[3], int(fields[4].split(":")[1], 16)


def connections_accepted(port: int) -> int:
    """Open connections the server on `port` has accepted (its requests are its to answer,
    even when it is told to stop); 0 while any connection waits to be accepted."""
    sockets = list(_sockets(port))
    if any(state == _LISTEN and waiting for state, waiting in sockets):
        return 0
    return sum(state == _ESTABLISHED for state, _ in sockets)


def processes() -> Iterator[tuple[Path, str, int, int]]:
    """Each process's /proc folder, state, parent and process group (one that ends while
    they are read is left out)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the name in parentheses: the state, the parent, the process group.
            state, parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        yield stat.parent, state, int(parent), int(group)


def group_alive(group: int) -> bool:
    """Whether a process of process group `group` still runs (a zombie has closed its files,
    and so let go of its locks)."""
    return any(state != "Z" and of == group for _, state, _, of in processes())


def signal_pending(group: int, signum: int) -> bool:
    """Whether a process of process group `group` has not yet taken signal `signum`."""
    bit = 1 << (signum - 1)
    for folder, _state, _parent, of in processes():
        if of != group:
            continue
        try:
            status = (folder / "status").read_text().splitlines()
        except OSError:
            continue  # it ended meanwhile
        masks = (line.split()[1] for line in status if line.startswith(("SigPnd", "ShdPnd")))
        if any(int(mask, 16) & bit for mask in masks):
            return True
    return False
