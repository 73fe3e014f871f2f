"""Two servers on one database, in one test: the same action run at the same moment
through two Database objects (two engines, two connection pools), each in its thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from tracker.db import Database

T = TypeVar("T")


def on_two_servers(database_url: str, action: Callable[[Database], T]) -> list[T]:
    """`action`'s results, one per server, in the order they finished."""
    servers = [Database(database_url), Database(database_url)]
    results: list[T] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(servers))

    def run(db: Database) -> None:
        barrier.wait()
        try:
            results.append(action(db))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(db,)) for db in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for db in servers:
            db.dispose()
    if errors:
        raise errors[0]
    return results
