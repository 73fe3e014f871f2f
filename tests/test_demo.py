"""Demo traffic: the generator's shape, and `tracker demo` through the real ingest pipeline."""

from collections import Counter
from datetime import UTC, datetime

from click.testing import CliRunner
from sqlalchemy import func, select

from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import Event, Visit
from tracker.demo import DemoGeo, demo_days

NOW = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)


def test_generator_is_deterministic_ordered_and_varied():
    days = list(demo_days("demo.example", days=45, visits_per_day=40, now=NOW))
    assert days == list(demo_days("demo.example", days=45, visits_per_day=40, now=NOW))
    assert len(days) == 45
    events = [e for day in days for e in day]
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and max(stamps) <= NOW.isoformat()
    kinds = Counter(e["type"] for e in events)
    assert set(kinds) == {"pageview", "engagement", "click", "event"}
    assert kinds["pageview"] > kinds["click"] + kinds["event"]
    # The spring sale runs 20 to 40 days ago only.
    sale = [e["timestamp"][:10] for e in events if "spring_sale" in e.get("url", "")]
    assert sale and min(sale) >= "2026-10-13" and max(sale) <= "2026-11-02"
    assert len({e["user_agent"] for e in events}) >= 8
    assert {e["name"] for e in events if e["type"] == "click"} == {"Outbound Link", "File Download"}


def test_demo_geo_places_demo_addresses():
    geo = DemoGeo()
    assert geo.lookup("8.10.1.2").city == "Austin" and geo.lookup("8.1.1.2").country == ""
    assert geo.lookup("90.84.3.4").country == "FR"


def test_demo_command_fills_a_site_through_the_pipeline(database_url, tmp_path):
    env = {
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_DATA_DIR": str(tmp_path / "data"),
        "TRACKER_CONFIG": None,
    }
    args = ["demo", "--site", "Demo.Example", "--days", "3", "--visits-per-day", "30"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "/sites/demo.example" in result.output
    accepted = int(result.output.split("accepted ")[1].split(" events")[0].replace(",", ""))
    db = Database(database_url)
    try:
        with db.session() as session:
            events = session.scalar(select(func.count(Event.id)))
            visits = session.scalar(select(func.count(Visit.id)))
            countries = set(session.scalars(select(Visit.country).distinct()))
        # Engagement beacons update their pageview's row instead of adding one.
        assert events < accepted < 2 * events
        # Two whole days before today's part; at worst both are quiet weekend days
        # (30 x 0.65 x 0.8 x 0.85 each), so the lower bound holds at any hour.
        assert 26 <= visits <= 120 and events > visits
        assert len(countries) >= 5 and "" not in countries  # placed by DemoGeo
        # `make run` runs it with --if-no-sites: a database with a site is left alone.
        again = CliRunner().invoke(cli, ["demo", "--if-no-sites"], env=env)
        assert again.exit_code == 0 and again.output == ""
        with db.session() as session:
            assert session.scalar(select(func.count(Event.id))) == events
    finally:
        db.dispose()
