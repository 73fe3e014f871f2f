"""Demo traffic: the generator's shape, and `tracker demo` through the real ingest pipeline."""

from collections import Counter
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tracker.annotations import list_annotations
from tracker.cli import cli
from tracker.costs import cost_summary
from tracker.db import Database, analyze
from tracker.db.models import Event, Site, Visit
from tracker.demo import (
    DEMO_FUNNEL,
    DEMO_GOALS,
    DEMO_NOTES,
    PAID,
    SOURCES,
    SPEND_DAYS,
    UNMATCHED,
    DemoGeo,
    add_demo_goals,
    add_demo_spend,
    demo_days,
    demo_ingest,
)
from tracker.goals import find_funnel, funnel_step_names, goal_label, list_goals
from tracker.sites import add_site, find_site
from tracker.stats import parse_query, run
from tracker.stats.pacing import OVER, OVER_BUDGET, month_pacing
from tracker.storage.store import STORED_TABLES

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
    # Conversions: sign-ups (free or pro), then the thank-you page, purchases with revenue.
    named = Counter(e["name"] for e in events if e["type"] == "event")
    assert named["Signup"] > named["Purchase"] > 0
    assert {e["props"]["plan"] for e in events if e.get("name") == "Signup"} == {"free", "pro"}
    revenue = [e["revenue"] for e in events if "revenue" in e]
    assert {r["currency"] for r in revenue} <= {"EUR", "USD"} and "EUR" in str(revenue)
    assert all(e["name"] == "Purchase" for e in events if "revenue" in e)
    thanks = [e for e in events if e["type"] == "pageview" and "/thank-you" in e["url"]]
    assert named["Signup"] >= len(thanks) > 0
    assert any(e["target"].endswith(".pdf") for e in events if e["type"] == "click")


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
    assert "make run" not in result.output  # it runs inside `make run`, which serves next
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
        with db.session() as session:
            site = find_site(session, "demo.example")
            goals = {g.name: goal_label(g) for g in list_goals(session, site)}
            funnel = find_funnel(session, site, DEMO_FUNNEL[0])
            assert funnel is not None and funnel_step_names(session, funnel) == list(DEMO_FUNNEL[1])
            purchase = next(g for g in list_goals(session, site) if g.name == "Purchase")
            assert purchase.currency == "EUR"
        assert goals == {
            "Signup": "Event Signup",
            "Pro signup": "Event Signup where plan = pro",
            "Purchase": "Event Purchase",
            "Thank you": "Visit /thank-you",
            "Brochure download": "Click *.pdf",
            "Pricing": "Visit /pricing",
        }
        assert "Goals and funnel added: Signup, Pro signup," in result.output
        # Again on the same site: more traffic, the goals and funnel as they were.
        # Two days: today alone may hold no visit yet just after midnight.
        more = CliRunner().invoke(cli, [*args[:3], "--days", "2", "--visits-per-day", "5"], env=env)
        assert more.exit_code == 0, more.output
        assert "Goals and funnel added" not in more.output
        with db.session() as session:
            site = find_site(session, "demo.example")
            assert [g.name for g in list_goals(session, site)] == list(goals)
            assert session.scalar(select(func.count(Event.id))) > events
            events = session.scalar(select(func.count(Event.id)))
        # `make run` runs it with --if-no-sites: a database with a site is left alone.
        again = CliRunner().invoke(cli, ["demo", "--if-no-sites"], env=env)
        assert again.exit_code == 0 and again.output == ""
        with db.session() as session:
            assert session.scalar(select(func.count(Event.id))) == events
    finally:
        db.dispose()


@pytest.mark.slow  # two weeks of demo traffic through the pipeline
def test_demo_conversions_differ_by_source_and_carry_revenue(app, db):
    """Two weeks of demo traffic through the pipeline, with the demo's goals: the Goals
    report has conversions and EUR revenue, and conversion mode tells sources apart."""
    with db.session() as session:
        site = add_site(session, "demo.example")
        assert add_demo_goals(session, site) == [g["name"] for g in DEMO_GOALS] + [DEMO_FUNNEL[0]]
        assert add_demo_goals(session, site) == []  # again: nothing added, nothing fails
    ingest = demo_ingest(app)
    for events in demo_days("demo.example", days=14, visits_per_day=150, now=NOW):
        for start in range(0, len(events), 1000):
            ingest(events[start : start + 1000])
    # As `tracker demo` does: on PostgreSQL, tables never analyzed are planned as a few rows
    # each, and the goal filter's IN became nested loops over every event (20 s to minutes).
    analyze(db, STORED_TABLES)
    with db.session() as session:
        site = session.scalars(select(Site)).one()
        session.expunge(site)
    period = {"period": "custom", "from": "2026-11-09", "to": "2026-11-22"}

    def rows(**args):
        return run(db, parse_query(site, {**period, **args}, now=NOW)).rows

    report = rows(
        dimension="event:goal", metrics="visitors,conversions,conversion_rate,total_revenue"
    )
    goals = {row["event:goal"]: row for row in report}
    assert list(goals) == [g["name"] for g in DEMO_GOALS]
    assert all(row["conversions"] > 0 for row in report), report
    assert goals["Signup"]["conversions"] > goals["Pro signup"]["conversions"]
    assert goals["Pro signup"]["conversions"] >= goals["Purchase"]["conversions"]
    assert goals["Signup"]["conversions"] >= goals["Thank you"]["conversions"]
    assert 1 < goals["Signup"]["conversion_rate"] < 10
    revenue = goals["Purchase"]["total_revenue"]
    assert list(revenue)[0] == "EUR" and float(revenue["EUR"]) > 100, revenue
    assert goals["Signup"]["total_revenue"] == {}

    def rates(dimension):
        found = rows(
            dimension=dimension, goal="Signup", metrics="visits,conversions,conversion_rate",
            limit="50",
        )  # fmt: skip
        return {row[dimension]: row["conversion_rate"] for row in found}

    by_source = rates("visit:source")
    assert by_source["Newsletter"] > by_source["Google"] > by_source.get("Facebook", 0)
    assert by_source["Newsletter"] > 2 * by_source["Google"]
    assert len(set(by_source.values())) >= 5
    by_campaign = rates("visit:utm_campaign")
    # The newsletter and paid brand search convert best; paid social retargeting, poorly.
    best = min(by_campaign["weekly-digest"], by_campaign["brand_search"])
    assert best > 2 * by_campaign["retargeting"] and best > by_campaign[""]


def test_demo_spend_budgets_and_notes(app, db):
    """60 days of cost rows matched to the demo's campaigns (one ad on purpose not), a
    budget that over-paces, chart notes; run again, nothing doubles."""
    with db.session() as session:
        site = add_site(session, "spend.example")
        rows = add_demo_spend(session, site, visits_per_day=2000)
        assert rows == demo_spend_rows_expected()
    with db.session() as session:
        site = find_site(session, "spend.example")
        pacing = {p.label: p for p in month_pacing(db, site)}
        assert pacing["retargeting"].status in (OVER, OVER_BUDGET)
        assert pacing["brand_search"].status not in (OVER, OVER_BUDGET)
        notes = list_annotations(db, site)
        assert [n.text for n in notes][:2] == ["Spring sale starts", "Spring sale ends"]
        add_demo_spend(session, site, visits_per_day=2000)
    with db.session() as session:
        site = find_site(session, "spend.example")
        assert len(list_annotations(db, site)) == len(DEMO_NOTES)
        assert sum(t.rows for t in cost_summary(session, site)) == rows


def demo_spend_rows_expected() -> int:
    """Every day of SPEND_DAYS for each ad, but spring_sale only in its flight."""
    flight = next(s.days_ago for s in SOURCES if s.params.get("utm_campaign") == "spring_sale")
    always = len(PAID) + len(UNMATCHED) - 1
    return SPEND_DAYS * always + (flight[1] - flight[0] + 1)


@pytest.mark.slow  # 90 days of demo traffic generated
def test_demo_history_grows_and_has_a_campaign_burst():
    """90 days, so the default view (30 days against the 30 before) has a change to show."""
    days = list(demo_days("demo.example", days=90, visits_per_day=150, now=NOW))
    landings = [
        Counter(e["url"] for e in day if e["type"] == "pageview" and "utm_" in e["url"])
        for day in days
    ]
    pageviews = [sum(1 for e in day if e["type"] == "pageview") for day in days]
    assert sum(pageviews[-30:]) > 1.2 * sum(pageviews[-60:-30]) > 1.44 * sum(pageviews[:30])
    launch = [sum(n for url, n in c.items() if "launch_week" in url) for c in landings]
    burst = [i for i, n in enumerate(launch) if n]
    assert burst == list(range(90 - 12, 90 - 8))  # 11 to 8 days ago
    week_before = sum(pageviews[i - 7] for i in burst)  # the same weekdays
    assert sum(pageviews[i] for i in burst) > 1.4 * week_before
