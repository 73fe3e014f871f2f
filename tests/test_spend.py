"""Ad spend beside traffic in the stats layer: cost, CPC, CPA and ROAS per campaign tag,
hand-counted, on both databases and on both read paths (raw events, rollups)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.helpers import store_events
from tests.seeds import seeded_variants
from tracker.db import Database
from tracker.db.models import AdCost, Goal, Site
from tracker.stats import QueryError, parse_query, run
from tracker.stats.query import site_ref
from tracker.stats.rollups import refresh_site
from tracker.utm import utm_key

DAY = datetime.now(UTC).date() - timedelta(days=1)
SITE = "shop.example"


def at(clock: str) -> str:
    return f"{DAY}T{clock}Z"


def landing(source: str, medium: str, campaign: str) -> str:
    return f"https://{SITE}/?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"


def purchase(ip: str, clock: str, amount: str, currency: str = "EUR") -> dict[str, Any]:
    return {"ip": ip, "timestamp": at(clock), "type": "event", "name": "Purchase",
            "url": f"https://{SITE}/checkout",
            "revenue": {"amount": amount, "currency": currency}}  # fmt: skip


def traffic() -> list[dict[str, Any]]:
    """Spring Sale: 3 visits in two spellings, 1 purchase (30 EUR); Retarget: 1 visit and
    1 purchase (50 EUR); Weekly: 1 visit, no cost; one direct visit."""
    return [
        {"ip": "198.51.100.1", "timestamp": at("09:00:00"),
         "url": landing("google", "cpc", "Spring%20Sale")},
        {"ip": "198.51.100.1", "timestamp": at("09:01:00"), "url": f"https://{SITE}/pricing"},
        purchase("198.51.100.1", "09:02:00", "30.00"),
        {"ip": "198.51.100.2", "timestamp": at("10:00:00"),
         "url": landing("google", "cpc", "spring%20sale")},
        {"ip": "198.51.100.6", "timestamp": at("10:30:00"),
         "url": landing("google", "cpc", "Spring%20Sale")},
        {"ip": "198.51.100.3", "timestamp": at("11:00:00"),
         "url": landing("facebook", "paid_social", "Retarget")},
        purchase("198.51.100.3", "11:05:00", "50.00"),
        {"ip": "198.51.100.4", "timestamp": at("12:00:00"),
         "url": landing("newsletter", "email", "Weekly")},
        {"ip": "198.51.100.5", "timestamp": at("13:00:00")},
    ]  # fmt: skip


def cost(day: date, source: str, medium: str, campaign: str, minor: int, **more: Any) -> AdCost:
    return AdCost(
        row_key=f"{day}|{source}|{medium}|{campaign}|{more.get('term', '')}",
        day=day,
        source=utm_key(source),
        medium=utm_key(medium),
        campaign=utm_key(campaign),
        campaign_label=campaign,
        cost_minor=minor,
        currency=more.pop("currency", "EUR"),
        **more,
    )


COSTS = [
    cost(DAY, "google", "cpc", "Spring Sale", 2000, impressions=1000, clicks=40),
    cost(DAY, "facebook", "paid_social", "retarget", 2500, impressions=500, clicks=10),
    cost(DAY, "google", "cpc", "Ghost", 500),  # matches no visit
    cost(DAY - timedelta(days=1), "google", "cpc", "Spring Sale", 9900),  # before the period
]


def add_costs(db: Database, rows: list[AdCost], currency: str = "EUR") -> None:
    with db.session() as session:
        site = session.scalars(select(Site).where(Site.domain == SITE)).one()
        site.currency = currency
        for row in rows:
            session.add(AdCost(site_id=site.id, **{
                c.key: getattr(row, c.key) for c in AdCost.__table__.columns
                if c.key not in ("id", "site_id", "imported_at")
            }))  # fmt: skip


def shop(app: Flask, db: Database, *, rollups: bool) -> Site:
    """The site with its traffic, a Purchase goal and COSTS; `rollups`: the rollup job ran."""
    store_events(app, traffic(), site=SITE)
    with db.session() as session:
        found = session.scalars(select(Site).where(Site.domain == SITE)).one()
        session.add(Goal(site_id=found.id, name="Purchase", kind="event",
                         event_name="Purchase", currency="EUR"))  # fmt: skip
    add_costs(db, [*COSTS])
    if rollups:
        refresh_site(db, site_ref(found))
    return found


SHOP_VARIANTS = ("raw events", "rollups")


def seeded_shop(app: Flask, variant: str) -> Site:
    """`shop` on the app's database, its rollups built for the "rollups" variant."""
    return shop(app, app.extensions["tracker.db"], rollups=variant == "rollups")


# `site`: the shop, stored once per module on each database (tests/seeds.py), its rollups
# built or not (`variant`).
variant_seeds_sqlite, variant_seeds_postgres, variant, sqlite_seed, postgres_seed, site = (
    seeded_variants("spend", SHOP_VARIANTS, seeded_shop)
)


def report(db: Database, site: Site, **args: str) -> list[dict[str, Any]]:
    query = parse_query(site, {"period": "custom", "from": str(DAY), "to": str(DAY), **args})
    return run(db, query).rows


def test_cost_per_visit_per_campaign(db: Database, site: Site) -> None:
    rows = report(db, site, dimension="visit:utm_campaign", metrics="visits,cost,cpc")
    assert {r.pop("visit:utm_campaign"): r for r in rows} == {
        # Two spellings of one campaign: its cost goes to the one most visits used, once.
        "Spring Sale": {"visits": 2, "cost": {"EUR": "20.00"}, "cpc": {"EUR": "10.00"}},
        "Retarget": {"visits": 1, "cost": {"EUR": "25.00"}, "cpc": {"EUR": "25.00"}},
        "Weekly": {"visits": 1, "cost": {}, "cpc": {}},
        "spring sale": {"visits": 1, "cost": {}, "cpc": {}},
        "": {"visits": 1, "cost": {}, "cpc": {}},
    }


def test_cpa_and_roas_under_a_goal(db: Database, site: Site) -> None:
    rows = report(
        db, site, goal="Purchase", dimension="visit:utm_campaign",
        metrics="conversions,total_revenue,cost,cpa,roas", order="roas",
    )  # fmt: skip
    assert rows == [
        {"visit:utm_campaign": "Retarget", "conversions": 1, "total_revenue": {"EUR": "50.00"},
         "cost": {"EUR": "25.00"}, "cpa": {"EUR": "25.00"}, "roas": 2.0},
        {"visit:utm_campaign": "Spring Sale", "conversions": 1, "total_revenue": {"EUR": "30.00"},
         "cost": {"EUR": "20.00"}, "cpa": {"EUR": "20.00"}, "roas": 1.5},
    ]  # fmt: skip
    totals = report(db, site, goal="Purchase", metrics="conversions,cost,cpa,roas")
    # Every cost row of the period counts in the total, the unmatched "Ghost" too.
    assert totals == [{"conversions": 2, "cost": {"EUR": "50.00"}, "cpa": {"EUR": "25.00"},
                       "roas": 1.6}]  # fmt: skip


def test_tag_filters_narrow_cost_case_insensitively(db: Database, site: Site) -> None:
    # Visits match a tag as written; cost rows, stored case-folded, match it in any case.
    rows = report(db, site, utm_campaign="Retarget|spring sale", metrics="visits,cost")
    assert rows == [{"visits": 2, "cost": {"EUR": "45.00"}}]
    shouted = report(db, site, utm_campaign="RETARGET", metrics="visits,cost")
    assert shouted == [{"visits": 0, "cost": {"EUR": "25.00"}}]
    by_source = report(db, site, dimension="visit:utm_source", utm_medium="cpc",
                       metrics="visits,cost,cpc")  # fmt: skip
    assert by_source == [
        {"visit:utm_source": "google", "visits": 3, "cost": {"EUR": "25.00"},
         "cpc": {"EUR": "8.33"}},
    ]  # fmt: skip


def test_zero_cost_and_zero_conversions_are_unknown_not_errors(db: Database, site: Site) -> None:
    rows = report(db, site, goal="Purchase", utm_campaign="Weekly", metrics="conversions,cpa,roas")
    assert rows == [{"conversions": 0, "cpa": {}, "roas": None}]


def test_cost_in_another_currency_is_kept_apart(db: Database, site: Site) -> None:
    add_costs(db, [cost(DAY, "google", "cpc", "Spring Sale", 1000, term="b", currency="USD")])
    rows = report(db, site, goal="Purchase", utm_campaign="Spring Sale",
                  metrics="cost,cpa,roas")  # fmt: skip
    # Part of the cost is in dollars: no ratio pretends to know the whole in euros.
    assert rows == [{"cost": {"EUR": "20.00", "USD": "10.00"}, "cpa": {}, "roas": None}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"dimension": "visit:country", "metrics": "cost"}, "need no breakdown or one by"),
        ({"country": "FR", "metrics": "cost"}, "not known per page, place or device"),
        ({"metrics": "cpa"}, "add a goal filter"),
    ],
)
def test_spend_metrics_say_what_they_cannot_answer(
    db: Database, site: Site, args: dict[str, str], message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        report(db, site, **args)
