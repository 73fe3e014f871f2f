"""Where the columnar store keeps a site's closed days, and the manifest that lists them.

A site's directory (`<data_dir>/columnar/site-<id>/`) holds immutable Parquet parts, each
the visits that started in a run of whole UTC days and those visits' events, and
`manifest.json`, which says which parts are current. Parts are never changed: the builder
writes new files, then replaces the manifest in one `os.replace`, so a reader sees either
the old set of parts or the new one, never half of each. Files the manifest no longer
names are deleted later (`RETIRED_AFTER_S`), after any reader that opened the old manifest
is done with them.

`complete_until_ms` is the promise readers rely on: every visit that started before it is
in the parts, with all its events as the database held them when the part was written.
Visits from then on to `provisional_until_ms` are in provisional parts, as they were at the
part's snapshot; those changed since are listed by the writer (tracker.storage.changes).
Visits from then on are read from the database of record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DAY_MS = 86_400_000
MANIFEST = "manifest.json"
# Bumped when the parts' columns change: a manifest of another version reads as none, so
# the builder writes every part again.
FORMAT_VERSION = 10
RETIRED_AFTER_S = 600
TABLES = ("visits", "events")
# A part's fields kept as lists in the manifest's JSON.
_TUPLES = ("goals", "visitor_constant")


@dataclass(frozen=True)
class Part:
    """The visits that started on UTC days `first_day`..`last_day` (day numbers since
    1970-01-01, inclusive) and their events, as two Parquet files."""

    first_day: int
    last_day: int
    visits: str
    events: str
    # The goals its visits' `goals` bits hold, bit i the i-th (tracker.stats.goals.goal_key;
    # "": none at that bit): a goal added later is matched on its events.
    goals: tuple[str, ...] = ()
    # The visit columns the same for all of a visitor's visits of a UTC day in the part
    # (tracker.columnar.export.visitor_constant).
    visitor_constant: tuple[str, ...] = ()
    # A provisional part's time (writer's clock, ms), taken before its snapshot: its day
    # was not closed, and its visits changed since are read from the database
    # (tracker.storage.changes). 0: a part of closed days, which never change.
    snapshot_ms: int = 0

    @property
    def provisional(self) -> bool:
        return self.snapshot_ms > 0

    @property
    def start_ms(self) -> int:
        return self.first_day * DAY_MS

    @property
    def end_ms(self) -> int:
        return (self.last_day + 1) * DAY_MS


@dataclass(frozen=True)
class Manifest:
    """A site's current parts; `complete_until_ms` is 0 for a site with nothing built."""

    site_id: int
    complete_until_ms: int = 0
    # Builder bookkeeping: the largest event id the parts account for, and when.
    event_id: int = 0
    built_ms: int = 0
    parts: tuple[Part, ...] = field(default_factory=tuple)
    version: int = FORMAT_VERSION
    # Builder bookkeeping: how many of the site's events had ids in the ID_MARGIN ids up
    # to `event_id` (tracker.columnar.build): one more later is an event committed late.
    recent_events: int = 0
    # Visits started from `complete_until_ms` to this are in provisional day parts as their
    # snapshots saw them (0, or complete_until_ms: none), but for those the writer changed
    # since (a day without a part had no visits then).
    provisional_until_ms: int = 0
    # The file of the site's path dictionary, numbering every path of the parts' events
    # (tracker.columnar.paths); "" before any part.
    paths: str = ""

    @property
    def has_provisional(self) -> bool:
        """Whether provisional parts hold days after the closed ones."""
        return self.provisional_until_ms > self.complete_until_ms

    def covering(self, start_ms: int, end_ms: int) -> list[Part]:
        """The parts holding visits that started in [start_ms, end_ms)."""
        return [p for p in self.parts if p.start_ms < end_ms and start_ms < p.end_ms]


def store_root(data_dir: str | os.PathLike[str]) -> Path:
    """Where a data directory keeps its columnar store."""
    return Path(data_dir).resolve() / "columnar"


def site_dir(root: Path, site_id: int) -> Path:
    return root / f"site-{int(site_id)}"


def read_manifest(root: Path, site_id: int) -> Manifest | None:
    """The site's manifest, or None when nothing was built, or it was in a format this
    version does not read (another version number, or fields it does not know: written by
    a newer release): then the builder writes every part again."""
    try:
        data: dict[str, Any] = json.loads((site_dir(root, site_id) / MANIFEST).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if data.get("version") != FORMAT_VERSION:
        return None
    try:
        parts = tuple(
            Part(**{**part, **{k: tuple(part.get(k, ())) for k in _TUPLES}})
            for part in data.pop("parts", ())
        )
        return Manifest(**{**data, "parts": parts})
    except TypeError:
        return None


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Replace the site's manifest at once (readers see the old one or this one)."""
    directory = site_dir(root, manifest.site_id)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{MANIFEST}.{os.getpid()}"
    temporary.write_text(json.dumps(asdict(manifest), separators=(",", ":")))
    os.replace(temporary, directory / MANIFEST)
