"""GeoIP with small .mmdb files the tests write (City and Country types)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from sqlalchemy import select

from tests.helpers import DEFAULT_USER_AGENT, store_events
from tests.waiting import wait_until
from tracker.db.models import Visit
from tracker.enrich.geo import UNKNOWN, GeoIP, Place
from tracker.sites import add_site

LONDON = "81.2.69.160"
PARIS = "2.125.160.216"
SYDNEY_V6 = "2001:db8:1::5"


def write_mmdb(path: Path, database_type: str, networks: dict[str, dict]) -> str:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return str(path)


@pytest.fixture
def city_db(tmp_path: Path) -> str:
    return write_mmdb(
        tmp_path / "city.mmdb",
        "GeoLite2-City",
        {
            "81.2.69.0/24": {
                "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
                "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
                "city": {"names": {"en": "London"}},
            },
            "2001:db8:1::/48": {
                "country": {"iso_code": "AU", "names": {"en": "Australia"}},
                "subdivisions": [{"iso_code": "NSW", "names": {"en": "New South Wales"}}],
                "city": {"names": {"en": "Sydney"}},
            },
        },
    )


@pytest.fixture
def country_db(tmp_path: Path) -> str:
    return write_mmdb(
        tmp_path / "country.mmdb",
        "GeoLite2-Country",
        {"2.125.160.0/24": {"country": {"iso_code": "FR", "names": {"en": "France"}}}},
    )


def test_city_database(city_db: str) -> None:
    geo = GeoIP(city_db)
    assert geo.lookup(LONDON) == Place("GB", "England", "London")
    assert geo.lookup(SYDNEY_V6) == Place("AU", "New South Wales", "Sydney")
    assert geo.lookup("8.8.8.8") == UNKNOWN
    assert geo.lookup("not an ip") == UNKNOWN


def test_country_database(country_db: str) -> None:
    geo = GeoIP(country_db)
    assert geo.lookup(PARIS) == Place("FR", "", "")
    assert geo.lookup(LONDON) == UNKNOWN


def test_missing_or_broken_database_means_unknown(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"this is not a MaxMind database")
    for path in ("", str(tmp_path / "missing.mmdb"), str(broken)):
        assert GeoIP(path).lookup(LONDON) == UNKNOWN


def test_visits_get_their_place(make_app, city_db: str) -> None:
    app: Flask = make_app(geoip_path=city_db, trusted_proxies=("127.0.0.1",))
    with app.extensions["tracker.db"].session() as session:
        add_site(session, "example.com")
    response = app.test_client().post(
        "/api/event",
        data='{"site": "example.com", "type": "pageview", "url": "https://example.com/"}',
        content_type="text/plain",
        headers={"User-Agent": DEFAULT_USER_AGENT, "X-Forwarded-For": LONDON},
    )
    assert response.status_code == 202
    store_events(app, [{"ip": SYDNEY_V6, "timestamp": "2026-03-02T09:00:00Z"}], site="example.com")
    with app.extensions["tracker.db"].session() as session:
        places = sorted(session.execute(select(Visit.country, Visit.region, Visit.city)).all())
    assert places == [("AU", "New South Wales", "Sydney"), ("GB", "England", "London")]


# --- damaged, truncated and replaced files ------------------------------------------------

DAMAGED_IP = "77.88.8.1"  # its record is the one damage() breaks (no probe reads it)


def city_networks(london_country: str = "GB") -> dict[str, dict]:
    return {
        "81.2.69.0/24": {
            "country": {"iso_code": london_country},
            "city": {"names": {"en": "London"}},
        },
        "77.88.8.0/24": {"country": {"iso_code": "ZZ"}, "city": {"names": {"en": "Xyzzyville"}}},
    }


def damage(path: Path, marker: bytes = b"Xyzzyville") -> None:
    """Overwrite a value of the data section, and the byte that says its type, with 0xFF:
    lookups that read it raise maxminddb.InvalidDatabaseError; the rest work."""
    data = bytearray(path.read_bytes())
    at = data.index(marker) - 1
    data[at : at + len(marker) + 1] = b"\xff" * (len(marker) + 1)
    path.write_bytes(bytes(data))


def replace_with(path: Path, content: bytes) -> None:
    """A new file renamed over the old one, as geoipupdate updates."""
    fresh = path.with_suffix(".new")
    fresh.write_bytes(content)
    os.replace(fresh, path)


def test_a_damaged_record_is_an_unknown_place(tmp_path: Path) -> None:
    path = tmp_path / "city.mmdb"
    write_mmdb(path, "GeoLite2-City", city_networks())
    damage(path)
    geo = GeoIP(str(path))
    assert geo.lookup(LONDON).country == "GB"
    assert geo.status() == "ok"
    assert geo.lookup(DAMAGED_IP) == UNKNOWN  # raised InvalidDatabaseError: a 500
    assert "damaged: lookups fail" in geo.status()


def test_beacons_from_a_damaged_record_are_stored_without_a_place(make_app, tmp_path: Path) -> None:
    path = tmp_path / "city.mmdb"
    write_mmdb(path, "GeoLite2-City", city_networks())
    damage(path)
    app: Flask = make_app(geoip_path=str(path), trusted_proxies=("127.0.0.1",))
    with app.extensions["tracker.db"].session() as session:
        add_site(session, "example.com")
    client = app.test_client()
    for ip in (DAMAGED_IP, LONDON):
        response = client.post(
            "/api/event",
            data='{"site": "example.com", "type": "pageview", "url": "https://example.com/"}',
            content_type="text/plain",
            headers={"User-Agent": DEFAULT_USER_AGENT, "X-Forwarded-For": ip},
        )
        assert response.status_code == 202
    with app.extensions["tracker.db"].session() as session:
        countries = sorted(session.scalars(select(Visit.country)))
    assert countries == ["", "GB"]
    health = client.get("/healthz")
    assert health.status_code == 200  # events are stored: only places are missing
    assert "damaged" in health.get_json()["geoip"]


@pytest.mark.parametrize(
    "content",
    [b"", b"not a database at all" * 100, "half"],
    ids=["empty", "garbage", "truncated"],
)
def test_a_bad_file_at_start_means_unknown_places(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "city.mmdb"
    write_mmdb(path, "GeoLite2-City", city_networks())
    if content == "half":
        content = path.read_bytes()[: path.stat().st_size // 2]
    assert isinstance(content, bytes)
    path.write_bytes(content)
    geo = GeoIP(str(path))
    assert geo.lookup(LONDON) == UNKNOWN
    assert "unreadable" in geo.status() and "places are unknown" in geo.status()


def test_a_replaced_file_is_read_and_a_bad_one_refused(tmp_path: Path, caplog) -> None:
    path = tmp_path / "city.mmdb"
    write_mmdb(path, "GeoLite2-City", city_networks("GB"))
    geo = GeoIP(str(path), check_seconds=0)  # a stat per lookup: no waiting in tests
    assert geo.lookup(LONDON).country == "GB"

    newer = tmp_path / "newer.mmdb"
    write_mmdb(newer, "GeoLite2-City", city_networks("IE"))
    replace_with(path, newer.read_bytes())
    assert geo.lookup(LONDON).country == "IE"  # read without a restart
    assert geo.status() == "ok"

    good = newer.read_bytes()
    damage(newer, b"London")  # a probe address reads this record
    for bad in (good[: len(good) // 2], b"\0" * len(good), newer.read_bytes()):
        replace_with(path, bad)
        assert geo.lookup(LONDON).country == "IE"  # the previous file stays in use
        assert "unreadable" in geo.status() and "previous file stays in use" in geo.status()
    assert "previous file stays in use" in caplog.text

    replace_with(path, good)
    assert geo.lookup(LONDON).country == "IE"
    assert geo.status() == "ok"
    path.unlink()
    assert geo.lookup(LONDON).country == "IE"
    assert "not found" in geo.status()


def test_a_file_rewritten_in_place_is_not_read_half_written(tmp_path: Path) -> None:
    """Its reader maps the file: bytes written into it change under the reader, so it is
    dropped (places unknown) until the file reads well again."""
    path = tmp_path / "city.mmdb"
    write_mmdb(path, "GeoLite2-City", city_networks("GB"))
    good = path.read_bytes()
    geo = GeoIP(str(path), check_seconds=0)
    assert geo.lookup(LONDON).country == "GB"
    with path.open("r+b") as file:  # `cp` over it: truncated, then written
        file.truncate(0)
        file.write(good[:100])
    assert geo.lookup(LONDON) == UNKNOWN
    with path.open("ab") as file:
        file.write(good[100:])
    assert geo.lookup(LONDON).country == "GB"


def test_the_app_reads_a_replaced_file(make_app, tmp_path: Path) -> None:
    path = tmp_path / "city.mmdb"
    path.write_bytes(b"half-written")
    app: Flask = make_app(geoip_path=str(path))
    app.extensions["tracker.ingest"].geo.check_seconds = 0.05  # not a second of the test's
    client = app.test_client()
    assert "unreadable" in client.get("/healthz").get_json()["geoip"]
    fresh = tmp_path / "fresh.mmdb"
    write_mmdb(fresh, "GeoLite2-City", city_networks())
    os.replace(fresh, path)
    wait_until(  # checked every check_seconds
        lambda: client.get("/healthz").get_json()["geoip"] == "ok", "the replaced database read"
    )
    assert app.extensions["tracker.ingest"].geo.lookup(LONDON).country == "GB"
