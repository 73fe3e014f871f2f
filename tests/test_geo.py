"""GeoIP with small .mmdb files the tests write (City and Country types)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from sqlalchemy import select

from tests.helpers import DEFAULT_USER_AGENT, store_events
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
