"""Sites' time zones: checked against the system's tz database, listed once per process."""

from __future__ import annotations

import pytest

from tracker import sites
from tracker.sites import SiteError, add_site


def test_time_zones_are_listed_once_and_still_checked(db, monkeypatch):
    listings = []

    def available_timezones() -> set[str]:
        listings.append(1)
        return {"Europe/Paris", "Asia/Tokyo"}

    monkeypatch.setattr(sites, "available_timezones", available_timezones)
    sites._known_timezones.cache_clear()
    try:
        with db.session() as session:
            add_site(session, "a.example", timezone="Europe/Paris")
            add_site(session, "b.example", timezone="Asia/Tokyo")
            add_site(session, "c.example", timezone="UTC")
            with pytest.raises(SiteError, match="'Mars/Olympus' is not a known time zone"):
                add_site(session, "d.example", timezone="Mars/Olympus")
            # Known to zoneinfo, not in the listing: refused as before.
            with pytest.raises(SiteError, match="'America/New_York' is not a known time zone"):
                add_site(session, "e.example", timezone="America/New_York")
    finally:
        sites._known_timezones.cache_clear()
    assert listings == [1]
