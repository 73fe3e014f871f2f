"""GeoIP: IP address -> country, region, city, from a MaxMind or DB-IP `.mmdb` file.

The file is optional: without one (or when it cannot be read) every place is unknown.
City databases answer `city()`, Country databases only `country()`; the database's own
type says which to call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geoip2.database
import geoip2.errors
import maxminddb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    country: str = ""  # ISO 3166-1 alpha-2
    region: str = ""
    city: str = ""


UNKNOWN = Place()


class GeoIP:
    def __init__(self, path: str) -> None:
        self.reader: geoip2.database.Reader | None = None
        self.has_city = False
        if not path:
            return
        if not Path(path).is_file():
            log.warning("GeoIP database %s not found; locations will be unknown", path)
            return
        try:
            self.reader = geoip2.database.Reader(path)
        except (OSError, maxminddb.InvalidDatabaseError) as exc:
            log.warning("GeoIP database %s unreadable (%s); locations will be unknown", path, exc)
            return
        self.has_city = "City" in self.reader.metadata().database_type

    def lookup(self, ip: str) -> Place:
        if self.reader is None or not ip:
            return UNKNOWN
        try:
            if self.has_city:
                city = self.reader.city(ip)
                return Place(
                    country=(city.country.iso_code or "")[:2],
                    region=(city.subdivisions.most_specific.name or "")[:128],
                    city=(city.city.name or "")[:128],
                )
            return Place(country=(self.reader.country(ip).country.iso_code or "")[:2])
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return UNKNOWN

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
