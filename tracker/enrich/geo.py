"""GeoIP: IP address -> country, region, city, from a MaxMind or DB-IP `.mmdb` file.

The file is optional: without one (or when it cannot be read) every place is unknown.
City databases answer `city()`, Country databases only `country()`; the database's own
type says which to call.

A place is never worth an event: any failure of a lookup (a damaged data section raises
maxminddb.InvalidDatabaseError for the addresses that read it) is an unknown place, and was
a 500 and a lost beacon. The file is checked for a new version every CHECK_SECONDS (one
stat: its inode, size and time), so a monthly update is read without a restart. A new
version is opened and tried on PROBES before it replaces the one in use; a bad one (a
half-written copy) is refused, logged and shown on /healthz, and the previous file stays
in use. Update by renaming a complete file over the old one, as geoipupdate does: a file
rewritten in place changes under its readers (they map it), so the old reader is dropped
then until the new content reads well.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import geoip2.database
import geoip2.errors

from tracker.files import FileVersion, file_version

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
# Addresses spread over the address space (some in MaxMind's own test databases): a
# damaged file fails some of them, a good one answers or does not know them.
PROBES = (
    "1.1.1.1",
    "2.125.160.216",
    "8.8.8.8",
    "24.24.24.24",
    "46.101.1.1",
    "81.2.69.160",
    "89.160.20.112",
    "103.1.1.1",
    "128.101.101.101",
    "151.101.1.1",
    "175.16.199.1",
    "185.1.1.1",
    "200.1.1.1",
    "216.160.83.56",
    "2001:218::1",
    "2001:480::1",
    "2a02:2770::1",
    "2c0f:f248::1",
)


@dataclass(frozen=True)
class Place:
    country: str = ""  # ISO 3166-1 alpha-2
    region: str = ""
    city: str = ""


UNKNOWN = Place()


@dataclass(frozen=True)
class _Loaded:
    """An open file and what was read from it; swapped whole when a new version loads."""

    reader: geoip2.database.Reader
    has_city: bool
    version: FileVersion  # of the file it was read from


def _place(reader: geoip2.database.Reader, has_city: bool, ip: str) -> Place:
    if has_city:
        city = reader.city(ip)
        return Place(
            country=(city.country.iso_code or "")[:2],
            region=(city.subdivisions.most_specific.name or "")[:128],
            city=(city.city.name or "")[:128],
        )
    return Place(country=(reader.country(ip).country.iso_code or "")[:2])


def _open_checked(path: str) -> tuple[geoip2.database.Reader, bool]:
    """The file opened and tried on every probe address; raises what a bad file raises."""
    reader = geoip2.database.Reader(path)
    try:
        has_city = "City" in reader.metadata().database_type
        for ip in PROBES:
            try:
                _place(reader, has_city, ip)
            except geoip2.errors.AddressNotFoundError:
                pass
    except BaseException:
        reader.close()
        raise
    return reader, has_city


class GeoIP:
    def __init__(self, path: str, check_seconds: float = CHECK_SECONDS) -> None:
        self.path = path
        self.check_seconds = check_seconds
        self.loaded: _Loaded | None = None
        # What is wrong with the file at `path`, for /healthz and the log; "" when all is well.
        self.problem = ""
        self._seen: tuple[int, int, int, int] | None = None  # the version last tried
        self._checked = 0.0
        self._reloading = threading.Lock()
        if path:
            self._check()

    def lookup(self, ip: str) -> Place:
        self.refresh()
        loaded = self.loaded  # one version for the whole lookup, whatever a reload does
        if loaded is None or not ip:
            return UNKNOWN
        try:
            return _place(loaded.reader, loaded.has_city, ip)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return UNKNOWN
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            self._failed(loaded, exc)
            return UNKNOWN

    def status(self) -> str:
        """For /healthz: "ok", "off" (no file set), else what is wrong."""
        self.refresh()
        if not self.path:
            return "off"
        return self.problem or "ok"

    def refresh(self) -> None:
        """Read a new version of the file if it changed (at most every check_seconds; a
        thread that finds another one checking goes on with the file in use)."""
        if not self.path or time.monotonic() < self._checked + self.check_seconds:
            return
        if not self._reloading.acquire(blocking=False):
            return
        try:
            self._check()
        finally:
            self._reloading.release()

    def _check(self) -> None:
        self._checked = time.monotonic()
        version = file_version(self.path)
        if version == self._seen:
            return
        self._seen = version  # each version is tried once
        if version is None:
            self._refuse(f"GeoIP database {self.path} not found")
            return
        try:
            reader, has_city = _open_checked(self.path)
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises
            if self.loaded is not None and self.loaded.version[:2] == version[:2]:
                self.loaded = None  # rewritten in place: the old reader reads the new bytes
            self._refuse(f"GeoIP database {self.path} unreadable ({exc})")
            return
        self.loaded = _Loaded(reader, has_city, version)
        self.problem = ""
        log.info("GeoIP database %s loaded", self.path)
        # The reader replaced is not closed: a lookup may still be using it (it closes when
        # the last one lets it go).

    def _refuse(self, problem: str) -> None:
        if self.loaded is not None:
            problem += "; the previous file stays in use"
        else:
            problem += "; places are unknown"
        self.problem = problem
        log.warning("%s", problem)

    def _failed(self, loaded: _Loaded, exc: Exception) -> None:
        """A lookup failed on the file in use: said once per file version."""
        if self.loaded is loaded and not self.problem:
            self.problem = f"GeoIP database {self.path} is damaged: lookups fail ({exc})"
            log.warning("%s; those places are unknown", self.problem)

    def close(self) -> None:
        if self.loaded is not None:
            self.loaded.reader.close()
            self.loaded = None
