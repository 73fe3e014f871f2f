"""The campaign report: tags of any spelling as one row, cost beside visits, conversions
and revenue, the ratios, totals, changes, and what matched nothing (hand-counted, from the
fixture of tests/test_spend.py, both databases, raw events and rollups)."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update

from tests.seeds import seeded_variants
from tests.test_spend import DAY, SHOP_VARIANTS, SITE, add_costs, cost, seeded_shop, shop
from tracker.db import Database
from tracker.db.models import Goal, GoalTagDay, Site
from tracker.stats import parse_query
from tracker.stats.campaigns import CampaignReport, campaign_report

# `site`: test_spend's shop, stored once per module on each database (tests/seeds.py).
variant_seeds_sqlite, variant_seeds_postgres, variant, sqlite_seed, postgres_seed, site = (
    seeded_variants("campaigns", SHOP_VARIANTS, seeded_shop)
)


def report(db: Database, site: Site, level: str = "campaign", **args: str) -> CampaignReport:
    window = {"period": "custom", "from": str(DAY), "to": str(DAY)}
    return campaign_report(db, parse_query(site, {**window, **args}), level)


def figures(found: CampaignReport) -> dict[str, dict[str, object]]:
    return {row.label: row.values for row in found.rows}


def test_one_row_per_campaign_whatever_its_spelling(db: Database, site: Site) -> None:
    found = report(db, site)
    assert found.currency == "EUR"
    assert figures(found) == {
        "Spring Sale": {"cost": 2000, "impressions": 1000, "ad_clicks": 40, "ctr": 4.0,
                        "visits": 3, "cpc": 667, "bounce_rate": 66.7, "conversions": 1,
                        "conversion_rate": 33.3, "cpa": 2000, "revenue": 3000, "roas": 1.5},
        "Retarget": {"cost": 2500, "impressions": 500, "ad_clicks": 10, "ctr": 2.0,
                     "visits": 1, "cpc": 2500, "bounce_rate": 0.0, "conversions": 1,
                     "conversion_rate": 100.0, "cpa": 2500, "revenue": 5000, "roas": 2.0},
        "Weekly": {"cost": None, "impressions": None, "ad_clicks": None, "ctr": None,
                   "visits": 1, "cpc": None, "bounce_rate": 100.0, "conversions": 0,
                   "conversion_rate": 0.0, "cpa": None, "revenue": 0, "roas": None},
    }  # fmt: skip
    # Sorted by cost, most first; a row's filter lists every spelling visits used.
    assert [r.label for r in found.rows] == ["Retarget", "Spring Sale", "Weekly"]
    assert found.rows[1].spellings == ("Spring Sale", "spring sale")
    assert found.totals.values == {
        "cost": 5000, "impressions": 1500, "ad_clicks": 50, "ctr": 3.3, "visits": 5,
        "cpc": 1000, "bounce_rate": 60.0, "conversions": 2, "conversion_rate": 40.0,
        "cpa": 2500, "revenue": 8000, "roas": 1.6,
    }  # fmt: skip
    assert [(r.label, r.values["cost"]) for r in found.unmatched_cost] == [("Ghost", 500)]
    assert found.without_cost == ["Weekly"]


def test_drill_down_by_source_under_one_campaign(db: Database, site: Site) -> None:
    found = report(db, site, "source", utm_campaign="Spring Sale|spring sale")
    assert {k: (v["visits"], v["cost"]) for k, v in figures(found).items()} == {"google": (3, 2000)}


def test_selected_goal_and_sorting(db: Database, site: Site) -> None:
    with db.session() as session:
        found_site = session.scalars(select(Site).where(Site.domain == SITE)).one()
        session.add(Goal(site_id=found_site.id, name="Pricing", kind="page", pattern="/pricing"))
    pricing = report(db, site, goal="Pricing")
    assert {r.label: r.values["conversions"] for r in pricing.rows} == {
        "Spring Sale": 1, "Retarget": 0, "Weekly": 0
    }  # fmt: skip
    window = {"period": "custom", "from": str(DAY), "to": str(DAY)}
    by_visits = campaign_report(db, parse_query(site, window), "campaign", ("cpc", "asc"))
    # Unknown cost per visit first when ascending, as the Stats API orders.
    assert [r.label for r in by_visits.rows] == ["Weekly", "Spring Sale", "Retarget"]


def test_changes_against_the_previous_period(db: Database, site: Site) -> None:
    add_costs(db, [cost(DAY - timedelta(days=1), "facebook", "paid_social", "Retarget", 5000)])
    found = report(db, site, compare="previous_period")
    retarget = next(r for r in found.rows if r.label == "Retarget")
    assert retarget.change["cost"] == -50 and retarget.change["visits"] is None
    spring = next(r for r in found.rows if r.label == "Spring Sale")
    assert spring.change["cost"] == -80  # 99.00 the day before, 20.00 now


def test_filters_cost_rows_cannot_follow_leave_cost_unknown(db: Database, site: Site) -> None:
    found = report(db, site, entry_page="/")
    assert not found.costed
    assert [(r.label, r.values["visits"], r.values["cost"]) for r in found.rows] == [
        ("Retarget", 1, None), ("Spring Sale", 3, None), ("Weekly", 1, None)
    ]  # fmt: skip


def test_goal_tag_days_hold_the_conversions_the_report_reads(app: Flask, db: Database) -> None:
    """The rollup job's per-tag counts: one row per tags of every converting tagged visit,
    one per currency paid; the report reads them for the days they cover."""
    site = shop(app, db, rollups=True)
    with db.session() as session:
        stored = session.execute(
            select(GoalTagDay.utm_campaign, GoalTagDay.currency, GoalTagDay.conversions,
                   GoalTagDay.revenue_minor).order_by(GoalTagDay.utm_campaign, GoalTagDay.currency)
        ).all()  # fmt: skip
    assert [tuple(r) for r in stored] == [
        ("Retarget", "", 1, 0),
        ("Retarget", "EUR", 1, 5000),
        ("Spring Sale", "", 1, 0),
        ("Spring Sale", "EUR", 1, 3000),
    ]
    # Changed behind the report's back, the stored rows show: proof they are what it reads.
    with db.session() as session:
        session.execute(update(GoalTagDay).where(GoalTagDay.currency == "").values(conversions=7))
    assert {r.label: r.values["conversions"] for r in report(db, site).rows} == {
        "Retarget": 7, "Spring Sale": 7, "Weekly": 0
    }  # fmt: skip
