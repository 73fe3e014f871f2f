"""Keeping readers off parts that no longer match the database, and the locks for it.

Code that rewrites stored visits or events in place, or deletes them (`tracker reclassify`,
deleting a site), calls `invalidate` or `forget` right after its change is committed, in
the same code path: from then on readers read those days from the database of record, and
the builder's next refresh writes them again.

Manifests are only written under `manifest_lock` (short: one read, one write). A builder
notes the manifest file it started from (`identity`) and publishes only if it is still the
one there, so a build that read the database before a change never replaces the
invalidation written after it. Only one builder runs per store (`build_lock`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from tracker.columnar.layout import (
    DAY_MS,
    MANIFEST,
    Manifest,
    read_manifest,
    site_dir,
    write_manifest,
)

MANIFEST_LOCK = ".manifest.lock"
BUILD_LOCK = ".build.lock"


@contextmanager
def _flock(path: Path, *, wait: bool) -> Iterator[bool]:
    """Holds an exclusive lock on `path` for the block; yields False (not held) when
    `wait` is False and another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def manifest_lock(root: Path) -> AbstractContextManager[bool]:
    return _flock(root / MANIFEST_LOCK, wait=True)


def build_lock(root: Path, *, wait: bool) -> AbstractContextManager[bool]:
    """The one builder of this store; the jobs process does not wait (a rebuild from the
    command line has it), the command line waits for the job's run to end."""
    return _flock(root / BUILD_LOCK, wait=wait)


def identity(root: Path, site_id: int) -> tuple[int, int, int] | None:
    """Which manifest file is there: `os.replace` gives every new one another inode."""
    try:
        stat = (site_dir(root, site_id) / MANIFEST).stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)


def retire(directory: Path, names: Iterable[str], now_ms: int | None = None) -> None:
    """Mark files a manifest is about to stop naming: their modification time is when
    they were retired, and the builder deletes them RETIRED_AFTER_S after that (a reader
    that read the old manifest may still be reading them). Done before the manifest is
    replaced, so no sweep ever sees them unnamed with an older time."""
    moment = (time.time() * 1000 if now_ms is None else now_ms) / 1000
    for name in names:
        try:
            os.utime(directory / name, (moment, moment))
        except FileNotFoundError:
            pass


def invalidate(root: Path | None, site_id: int, from_ms: int = 0) -> None:
    """Readers no longer take the site's visits that started from `from_ms` (0: all) from
    the store: the parts holding any are dropped and `complete_until_ms` goes back to the
    first visit they held. No-op without a store (`root` None)."""
    if root is None:
        return
    with manifest_lock(root):
        old = read_manifest(root, site_id) or Manifest(site_id=site_id)
        until = min(old.complete_until_ms, from_ms - from_ms % DAY_MS)
        dropped = [p for p in old.parts if p.end_ms > until]
        until = min([until, *(p.start_ms for p in dropped)])
        kept = tuple(p for p in old.parts if p not in dropped)
        retire(site_dir(root, site_id), [n for p in dropped for n in (p.visits, p.events)])
        # Written even when nothing changes: a build running now must see another file.
        write_manifest(
            root,
            Manifest(
                site_id=site_id,
                complete_until_ms=max(until, 0),
                event_id=old.event_id,
                built_ms=old.built_ms,
                parts=kept,
                recent_events=old.recent_events,
                paths=old.paths,
            ),
        )


def forget(root: Path | None, site_id: int) -> None:
    """Delete the site's store: for a deleted site (its id may be given to a new one)."""
    if root is None:
        return
    with manifest_lock(root):
        shutil.rmtree(site_dir(root, site_id), ignore_errors=True)


def invalidate_all(root: Path) -> None:
    """Every site's store, after a migration: it may have rewritten stored rows, or
    changed the columns parts must have."""
    for directory in root.glob("site-*") if root.is_dir() else ():
        site_id = directory.name.removeprefix("site-")
        if site_id.isdigit():
            invalidate(root, int(site_id))
