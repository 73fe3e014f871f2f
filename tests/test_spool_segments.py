"""Spool segments and the drain: a segment is never taken for a dead process's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from flask import Flask

from tracker.storage import spool as spool_module
from tracker.storage.drain import Drain
from tracker.storage.spool import Spool, pending_segments, spool_directory


def test_a_new_segment_is_locked_before_the_drain_can_see_it(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drain deletes an `.open` segment nobody locks (a dead process's). A segment was
    created under that name and then locked, and a drain pass in between deleted it: every
    event the worker then appended to it was lost."""
    app = make_app()
    db = app.extensions["tracker.db"]
    directory = spool_directory(app.extensions["tracker.settings"].data_dir)
    drain = Drain(db, directory, 30 * 60_000)
    real_flock = spool_module.fcntl.flock

    class Fcntl:  # the drain's pass runs between the segment's creation and its lock
        LOCK_EX = spool_module.fcntl.LOCK_EX

        @staticmethod
        def flock(fd: int, operation: int) -> None:
            drain.store_pass()
            real_flock(fd, operation)

    monkeypatch.setattr(spool_module, "fcntl", Fcntl)
    spool = Spool(directory)
    try:
        spool.append([], Counter())
        monkeypatch.undo()
        assert len(pending_segments(directory)) == 1  # still there, under its worker's lock
    finally:
        drain.close()
        spool.close()
