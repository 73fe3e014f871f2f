"""The columnar store's builder: each site's closed UTC days copied into Parquet parts.

See docs/ARCHITECTURE.md, "Columnar store". In short:

- Closing. UTC day D is closed once now >= end of D + CLOSE_AFTER_MS, a day and two hours.
  A visit keeps the visitor id of the UTC day it started on, which only hits of that day
  and the next carry (tracker/enrich/visitor.py), so nothing the browser sends after the
  day after D reaches a visit of D; the two hours cover the writer's lag. It must be that
  long because engagement beacons change a stored pageview (time on page, scroll) and its
  visit (duration) without storing an event: no event id tells of them.
- Parts. A closed day with visits becomes a day part; a calendar month once closed as a
  whole becomes one month part (day parts merged by writing the month again), so years
  of data stay ~12 parts a year. `complete_until_ms` moves to the end of the last closed
  day, across days without visits (they get no part).
- Provisional parts. Once every closed day is written, each day after them that ended
  COMMIT_WITHIN_MS ago (yesterday, from 00:10) becomes a provisional day part, and
  `provisional_until_ms` moves to its end. Its visits may still change: the writer records
  those it changes (tracker.storage.changes) and readers take them from the database
  (tracker.columnar.engine). It is written again only when events dated on its day come
  after it (`late_provisional`), and is replaced by the day's part for good once closed.
- Late events. The manifest keeps `event_id`, the largest event id the parts account for.
  An event with a larger id dated before `complete_until_ms` + a day makes its day and the
  day before stale (the parts holding them are written again, a month part as a month):
  an import, a trusted batch with old timestamps, a writer hours behind. Visits are
  changed in place only by the events and engagement beacons that come with them.
  PostgreSQL commits ids out of order; `recent_events` counts the site's events among the
  ID_MARGIN ids up to `event_id`, so one committed there later is noticed too.
- Idle. With no new event and no newly closed day, a refresh is one query reading the
  ids above the lowest watermark less ID_MARGIN (one index range), and no file is written.
- Bounds. Only reads: parts are written from a read snapshot (no SQLite write lock, ever).
  A run starts new parts for BUDGET_SECONDS at most (at least one per site), and carries
  on next time; stale parts are always rewritten in the run that finds them.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import func, select

from tracker.clock import now_ms as clock_now_ms
from tracker.columnar.export import EPOCH, events, visits, write_part
from tracker.columnar.invalidate import build_lock, forget, identity, manifest_lock, retire
from tracker.columnar.layout import (
    DAY_MS,
    RETIRED_AFTER_S,
    Manifest,
    Part,
    read_manifest,
    site_dir,
    write_manifest,
)
from tracker.columnar.paths import PathDictionary
from tracker.db import Database
from tracker.db.models import Site
from tracker.storage import changes

log = logging.getLogger(__name__)

CLOSE_AFTER_MS = DAY_MS + 2 * 3_600_000
# Event ids are not committed in order on PostgreSQL (as in tracker.stats.rollups).
ID_MARGIN = 10_000
# A site with nothing to rebuild keeps its manifest, and its watermark, until the ids
# after it are this many: the idle query's range stays short without a write a minute.
WATERMARK_LAG = 100_000
BUDGET_SECONDS = 30.0
SITE_DIR_RE = re.compile(r"site-(\d+)")

Unit = tuple[int, int]  # first and last UTC day number of a part to write
Reached = Callable[[int], None]  # told the day a build has reached (exclusive)


@dataclass(frozen=True)
class SiteKey:
    """A site as the builder found it: a deleted site's id may be given to a new one."""

    id: int
    created_at: Any


def closed_until_ms(now_ms: int) -> int:
    """The end of the last closed UTC day at `now_ms`."""
    return (now_ms - CLOSE_AFTER_MS) // DAY_MS * DAY_MS


def provisional_days(now_ms: int, closed_day: int) -> range:
    """The days after the closed ones that get provisional parts at `now_ms`: ended
    COMMIT_WITHIN_MS ago (no transaction of theirs still open) and recorded by the writer
    when changed (tracker.storage.changes), by the writer's clock; none when a day between
    would be neither (a build far behind, a clock set back)."""
    clock = clock_now_ms()
    end = (min(now_ms, clock) - changes.COMMIT_WITHIN_MS) // DAY_MS
    if changes.recorded_from_ms(clock) // DAY_MS > closed_day:
        return range(closed_day, closed_day)
    return range(closed_day, max(closed_day, end))


def month_of(day: int) -> Unit:
    """The first and last day numbers of the calendar month holding `day`."""
    first = (EPOCH + timedelta(days=day)).replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return (first - EPOCH).days, (following - EPOCH).days - 1


def unit_of(day: int, closed_day: int) -> Unit:
    """The part `day` belongs in: its month once every day of it is closed, else itself."""
    month = month_of(day)
    return month if month[1] < closed_day else (day, day)


class Budget:
    """Wall-clock seconds a refresh may go on starting new parts (None: no limit)."""

    def __init__(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def left(self) -> bool:
        return self.deadline is None or time.monotonic() < self.deadline


@dataclass(frozen=True)
class Recent:
    """The events with ids above `floor`, as (id, timestamp_ms) per site; `top` is the
    largest event id of all."""

    top: int
    floor: int
    by_site: dict[int, list[tuple[int, int]]]


def _built(manifest: Manifest | None) -> Manifest | None:
    """The manifest, if anything was built (an invalidation may leave one with nothing)."""
    return manifest if manifest is not None and manifest.complete_until_ms > 0 else None


def read_recent(db: Database, manifests: Iterable[Manifest | None]) -> Recent:
    """One range of the events' primary key: from the lowest watermark less ID_MARGIN."""
    marks = [m.event_id for m in map(_built, manifests) if m is not None]
    with db.engine.connect() as conn:
        top = int(conn.scalar(select(func.max(events.c.id))) or 0)
        floor = min([top, *marks]) - ID_MARGIN
        rows = conn.execute(
            select(events.c.site_id, events.c.id, events.c.timestamp_ms).where(events.c.id > floor)
        )
        by_site: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for site_id, event_id, timestamp_ms in rows:
            by_site[site_id].append((event_id, timestamp_ms))
    return Recent(top=top, floor=floor, by_site=dict(by_site))


@dataclass(frozen=True)
class Watch:
    """What the recent events say about one site's parts."""

    event_id: int  # the watermark to save: the largest event id of all
    recent_events: int  # the site's events among the ID_MARGIN ids up to it
    late_days: frozenset[int]  # days whose parts may miss an event or its change
    save: bool  # the manifest must be written even when no part changes
    dated: frozenset[int] = frozenset()  # the days those events are dated on


def watch(recent: Recent, site_id: int, old: Manifest | None) -> Watch:
    """The site's late days: those of its events above the watermark, or above the
    window's start when the window's count changed (an event committed late in it)."""
    rows = recent.by_site.get(site_id, [])
    count = sum(1 for event_id, _ in rows if event_id > recent.top - ID_MARGIN)
    old = _built(old)
    if old is None:
        return Watch(recent.top, count, frozenset(), save=True)
    mark = old.event_id
    window = sum(1 for event_id, _ in rows if mark - ID_MARGIN < event_id <= mark)
    moved = window != old.recent_events or mark > recent.top  # SQLite reuses freed ids
    lower = recent.floor if moved else mark
    dated = {ts // DAY_MS for event_id, ts in rows if event_id > lower}
    days = dated | {day - 1 for day in dated}
    save = moved or recent.top - mark >= WATERMARK_LAG
    return Watch(recent.top, count, frozenset(days), save, frozenset(dated))


@dataclass
class _Build:
    """One site's parts being brought up to date; `written` are the new files."""

    db: Database
    directory: Path
    site_id: int
    closed_day: int
    built_ms: int
    complete_day: int = 0
    provisional_day: int = 0  # the days from complete_day to it are in provisional parts
    provisional: range = range(0)  # the days to have provisional parts
    parts: dict[Unit, Part] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    paths_file: str = ""  # the path dictionary's file the parts' path numbers are in
    paths: PathDictionary | None = None  # read when the first part is written

    def write(self, unit: Unit, *, provisional: bool = False) -> None:
        """The unit's part written anew; it replaces every part it overlaps."""
        if self.paths is None:
            self.paths = PathDictionary.read(self.directory, self.paths_file)
        part = write_part(
            self.db,
            self.directory,
            self.site_id,
            *unit,
            self.built_ms,
            self.paths,
            self.last_goals(),
            provisional=provisional,
        )
        if not provisional and unit[0] <= self.complete_day <= unit[1]:  # a closed month
            self.complete_day = unit[1] + 1
        for key in [k for k in self.parts if k[0] <= unit[1] and unit[0] <= k[1]]:
            del self.parts[key]
        if part is not None:
            self.written += [part.visits, part.events]
            self.parts[unit] = part

    def last_goals(self) -> tuple[str, ...]:
        """The goals the latest part keeps as bits: a new part keeps them at the same
        bits, so a period over both reads them."""
        if not self.parts:
            return ()
        return max(self.parts.values(), key=lambda p: p.first_day).goals

    def stale(self, days: Iterable[int]) -> set[Unit]:
        """The parts to write again for late days (those not complete yet are written
        when they are)."""
        return {unit_of(d, self.closed_day) for d in days if d < self.complete_day}

    def unmerged(self) -> set[Unit]:
        """Months closed as a whole whose days are still in day parts."""
        months = {month_of(first) for first, _ in self.parts}
        return {m for m in months if m[1] < self.closed_day and m not in self.parts}

    def next_busy_day(self, day: int) -> int | None:
        """The first day from `day` with visits, before the first open day (an index seek:
        a build's cost follows the data, not the calendar)."""
        with self.db.engine.connect() as conn:
            first = conn.scalar(
                select(func.min(visits.c.started_ms)).where(
                    visits.c.site_id == self.site_id,
                    visits.c.started_ms >= day * DAY_MS,
                    visits.c.started_ms < self.closed_day * DAY_MS,
                )
            )
        return None if first is None else int(first) // DAY_MS

    def advance(self, budget: Budget, reached: Reached, started: bool) -> None:
        """Write the days closed since the last build, up to the budget."""
        while self.complete_day < self.closed_day and (not started or budget.left()):
            day = self.next_busy_day(self.complete_day)
            if day is None:
                self.complete_day = self.closed_day
            else:
                unit = unit_of(day, self.closed_day)
                self.write(unit)
                self.complete_day = unit[1] + 1
                started = True
            reached(self.complete_day)

    def late_provisional(self, dated: Iterable[int]) -> set[int]:
        """The provisional days late events are dated on (an import, a writer behind):
        written again, so that reports do not read those events' visitors from the
        database until the day closes. (A visit of the day going on the next is not: the
        writer records it, and the next day is its events' date.)"""
        first = max(self.complete_day, self.provisional_day)
        return {d for d in dated if self.complete_day <= d < min(first, self.provisional.stop)}

    def provide(self, dated: Iterable[int]) -> None:
        """Provisional parts for the days ended since the last build and those late events
        reached, once every closed day is written (they follow on from complete_day)."""
        if self.complete_day < self.closed_day or not self.provisional:
            self.provisional_day = self.complete_day
        else:
            first = max(self.complete_day, self.provisional_day)
            for day in sorted(
                {*self.late_provisional(dated), *range(first, self.provisional.stop)}
            ):
                self.write((day, day), provisional=True)
            self.provisional_day = self.provisional.stop
        for key in [k for k in self.parts if k[0] >= self.provisional_day]:
            del self.parts[key]  # past a clock set back, or beyond closed days not written

    def needed(self, news: Watch) -> bool:
        return bool(
            news.save
            or self.stale(news.late_days)
            or self.complete_day < self.closed_day
            or self.unmerged()
            or self.provisional_day < self.provisional.stop
            or self.late_provisional(news.dated)
        )

    def run(self, news: Watch, budget: Budget, reached: Reached) -> None:
        for unit in sorted(self.stale(news.late_days)):
            self.write(unit)
        started = False
        for unit in sorted(self.unmerged()):
            if started and not budget.left():
                return
            self.write(unit)
            started = True
        self.advance(budget, reached, started)
        self.provide(news.dated)

    def save_paths(self) -> None:
        """The path dictionary written again if the parts written numbered new paths."""
        if self.paths is not None and (self.paths.grown or not self.paths_file):
            self.paths_file = self.paths.write(self.directory, self.built_ms)
            self.written.append(self.paths_file)

    def manifest(self, seen: Watch) -> Manifest:
        return Manifest(
            site_id=self.site_id,
            complete_until_ms=self.complete_day * DAY_MS,
            event_id=seen.event_id,
            built_ms=self.built_ms,
            parts=tuple(self.parts[k] for k in sorted(self.parts)),
            recent_events=seen.recent_events,
            provisional_until_ms=max(self.provisional_day, self.complete_day) * DAY_MS,
            paths=self.paths_file,
        )

    def discard(self) -> None:
        for name in self.written:
            (self.directory / name).unlink(missing_ok=True)


def _file_names(manifest: Manifest | None) -> set[str]:
    if manifest is None:
        return set()
    parts = {name for p in manifest.parts for name in (p.visits, p.events)}
    return parts | ({manifest.paths} if manifest.paths else set())


def _publish(
    db: Database,
    root: Path,
    site: SiteKey,
    seen: tuple[int, int, int] | None,
    manifest: Manifest,
    old: set[str],
) -> bool:
    """Replace the manifest, unless another was written since the build read it (an
    invalidation: the build may have read what it undid) or the site is gone."""
    with manifest_lock(root):
        if identity(root, site.id) != seen or _created_at(db, site.id) != site.created_at:
            return False
        retire(site_dir(root, site.id), old - _file_names(manifest), manifest.built_ms)
        write_manifest(root, manifest)
    return True


def _created_at(db: Database, site_id: int) -> Any:
    with db.engine.connect() as conn:
        return conn.scalar(select(Site.created_at).where(Site.id == site_id))


def refresh_site(
    db: Database,
    root: Path,
    site: SiteKey,
    recent: Recent,
    *,
    now_ms: int,
    budget: Budget,
    fresh: bool = False,
    reached: Reached = lambda day: None,
) -> Manifest | None:
    """Bring one site's parts up to date (`fresh`: write them all again, the old ones
    serving readers until the new ones replace them); returns the manifest written, None
    when there was nothing to do or another manifest was written meanwhile."""
    seen = identity(root, site.id)
    current = read_manifest(root, site.id)
    base = None if fresh else current
    news = watch(recent, site.id, base)
    build = _Build(db, site_dir(root, site.id), site.id, closed_until_ms(now_ms) // DAY_MS, now_ms)
    if base is not None:
        build.complete_day = base.complete_until_ms // DAY_MS
        build.provisional_day = base.provisional_until_ms // DAY_MS
        build.parts = {(p.first_day, p.last_day): p for p in base.parts}
        build.paths_file = base.paths
        # A clock set back must not cut a month part into days (the others would be lost).
        build.closed_day = max(build.closed_day, build.complete_day)
    build.provisional = provisional_days(now_ms, build.closed_day)
    if not build.needed(news):
        return None
    try:
        build.run(news, budget, reached)
        build.save_paths()
        manifest = build.manifest(news)
        if _publish(db, root, site, seen, manifest, _file_names(current)):
            return manifest
    except BaseException:
        build.discard()
        raise
    build.discard()
    return None


def sweep(root: Path, site_id: int, now_ms: int) -> None:
    """Delete the files no manifest names that were retired RETIRED_AFTER_S ago or more."""
    directory = site_dir(root, site_id)
    named = _file_names(read_manifest(root, site_id))
    cutoff = now_ms / 1000 - RETIRED_AFTER_S
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.endswith(".parquet") and entry.name not in named:
            if entry.stat().st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)


def _sites(db: Database) -> list[SiteKey]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(Site.id, Site.created_at).order_by(Site.id))
        return [SiteKey(id=r.id, created_at=r.created_at) for r in rows]


def _forget_deleted(root: Path, sites: list[SiteKey]) -> None:
    """Stores of sites deleted without `forget` (by hand, or before the store existed)."""
    known = {s.id for s in sites}
    for entry in root.iterdir() if root.is_dir() else ():
        match = SITE_DIR_RE.fullmatch(entry.name)
        if match and int(match.group(1)) not in known:
            forget(root, int(match.group(1)))


def refresh(
    db: Database, root: Path, *, now_ms: int | None = None, budget_s: float | None = BUDGET_SECONDS
) -> int:
    """Bring every site's parts up to date; returns how many manifests were written.
    Does nothing while another process builds this store (`tracker columnar rebuild`)."""
    now_ms = clock_now_ms() if now_ms is None else now_ms
    with build_lock(root, wait=False) as held:
        if not held:
            return 0
        sites = _sites(db)
        _forget_deleted(root, sites)
        recent = read_recent(db, [read_manifest(root, s.id) for s in sites])
        budget = Budget(budget_s)
        written = 0
        for site in sites:
            try:
                written += (
                    refresh_site(db, root, site, recent, now_ms=now_ms, budget=budget) is not None
                )
                sweep(root, site.id, now_ms)
            except Exception:  # noqa: BLE001 - one site's failure must not stop the others
                log.exception("columnar refresh failed for site %s", site.id)
        return written


def rebuild(
    db: Database,
    root: Path,
    site_id: int,
    *,
    now_ms: int | None = None,
    reached: Reached = lambda day: None,
) -> Manifest | None:
    """Write all the site's parts again (waiting for a refresh running elsewhere); the old
    parts serve readers until the new manifest replaces them. None: the site is gone, or
    its store was invalidated meanwhile (run again)."""
    now_ms = clock_now_ms() if now_ms is None else now_ms
    with build_lock(root, wait=True):
        site = next((s for s in _sites(db) if s.id == site_id), None)
        if site is None:
            return None
        recent = read_recent(db, [])
        manifest = refresh_site(
            db, root, site, recent, now_ms=now_ms, budget=Budget(None), fresh=True, reached=reached
        )
        sweep(root, site_id, now_ms)
        return manifest


def first_visit_day(db: Database, site_id: int) -> int | None:
    with db.engine.connect() as conn:
        first = conn.scalar(
            select(func.min(visits.c.started_ms)).where(visits.c.site_id == site_id)
        )
    return None if first is None else int(first) // DAY_MS


@dataclass(frozen=True)
class StoreStatus:
    """What a site's store holds, for `tracker columnar status`."""

    manifest: Manifest | None
    visits: int  # rows of the current parts
    events: int
    size_bytes: int  # every file of the site's directory, retired ones included

    @property
    def month_parts(self) -> int:
        parts = self.manifest.parts if self.manifest else ()
        return sum(1 for p in parts if (p.first_day, p.last_day) == month_of(p.first_day))


def store_status(root: Path, site_id: int) -> StoreStatus:
    manifest = read_manifest(root, site_id)
    directory = site_dir(root, site_id)
    rows = {"visits": 0, "events": 0}
    for part in manifest.parts if manifest else ():
        for kind in rows:
            rows[kind] += pq.read_metadata(directory / getattr(part, kind)).num_rows
    size = sum(f.stat().st_size for f in directory.iterdir()) if directory.is_dir() else 0
    return StoreStatus(manifest, rows["visits"], rows["events"], size)


def day_date(day: int) -> date:
    return EPOCH + timedelta(days=day)
