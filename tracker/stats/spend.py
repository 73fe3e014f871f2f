"""Ad spend beside traffic: cost rows summed per campaign tag, and the ratios marketers read.

Cost rows (`ad_costs`, imported by tracker.costs) are daily amounts per campaign tag. They
join traffic by tag only: a row's tags are stored as `utm_key`s (trimmed, case-folded), so
"Spring Sale" in the Google Ads export meets `utm_campaign=spring sale` on the visit.
Cost cannot be split by anything else a visit has (its country, its pages), so cost figures
exist only under filters on the UTM tags themselves and on goals.

The ratios (docs/ARCHITECTURE.md, "Campaign spend"): **CPC** = cost / visits (cost per
visit: the ad platforms' own clicks are counted apart), **CPA** = cost / conversions,
**ROAS** = revenue / cost, **CTR** = ad clicks / impressions. Each is computed only in one
currency (cost and revenue in different currencies are never converted) and is unknown,
never infinite, when the divisor is zero.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, select

from tracker.db.models import AdCost, Site
from tracker.money import format_minor, minor_digits
from tracker.stats.filters import Filter, compile_filter
from tracker.stats.goals import GOAL
from tracker.stats.metrics import SPEND_METRICS
from tracker.stats.query import Query, QueryError, SiteRef
from tracker.utm import utm_key

costs = AdCost.__table__
# Visit dimensions a cost row also has, and its column for each.
COST_COLUMNS = {
    "visit:utm_source": "source",
    "visit:utm_medium": "medium",
    "visit:utm_campaign": "campaign",
    "visit:utm_term": "term",
    "visit:utm_content": "content",
}
CAMPAIGN = "visit:utm_campaign"


@dataclass
class Spend:
    """One row's ad spend: minor units per currency, and the platforms' own counts (None:
    no cost row of the row reported them)."""

    minor: dict[str, int] = field(default_factory=dict)
    impressions: int | None = None
    clicks: int | None = None
    label: str = ""  # the campaign as imported (the last import's spelling)

    def add(self, other: Spend) -> None:
        for currency, amount in other.minor.items():
            self.minor[currency] = self.minor.get(currency, 0) + amount
        self.impressions = _plus(self.impressions, other.impressions)
        self.clicks = _plus(self.clicks, other.clicks)
        self.label = self.label or other.label

    def only(self, currency: str) -> int | None:
        """The cost in `currency`, when all of it is in that currency (else a ratio would
        leave part of it out); 0 when there is none."""
        if any(c != currency for c in self.minor):
            return None
        return self.minor.get(currency, 0)


def _plus(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


def attributable(query: Query) -> bool:
    """Whether cost can follow the query's filters: only tag filters and goals."""
    return all(f.dimension in COST_COLUMNS or f.dimension == GOAL for f in query.filters)


def site_currency(conn: Connection, site: SiteRef) -> str:
    """The currency money is reported in: the site's, else its cost rows' most used one."""
    chosen = conn.execute(select(Site.currency).where(Site.id == site.id)).scalar()
    if chosen:
        return str(chosen)
    common = conn.execute(
        select(costs.c.currency)
        .where(costs.c.site_id == site.id)
        .group_by(costs.c.currency)
        .order_by(func.count().desc(), costs.c.currency)
        .limit(1)
    ).scalar()
    return str(common or "")


def spend_by(conn: Connection, query: Query, dimension: str | None) -> dict[str, Spend]:
    """The period's cost rows under the query's tag filters, summed per `utm_key` of the
    tag `dimension` (one entry, key "", when None)."""
    key = costs.c[COST_COLUMNS[dimension]] if dimension else None
    period = query.period
    where: list[ColumnElement[bool]] = [
        costs.c.site_id == query.site.id,
        costs.c.day >= period.start,
        costs.c.day <= period.end,
    ]
    where.extend(_cost_filter(f) for f in query.filters if f.dimension in COST_COLUMNS)
    grouped = [key] if key is not None else []
    stmt = select(
        *(k.label("key") for k in grouped),
        costs.c.currency,
        func.sum(costs.c.cost_minor).label("minor"),
        func.sum(costs.c.impressions).label("impressions"),
        func.sum(costs.c.clicks).label("clicks"),
        func.max(costs.c.campaign_label).label("label"),
    ).where(and_(*where))
    found: dict[str, Spend] = {}
    for row in conn.execute(stmt.group_by(*grouped, costs.c.currency)):
        spend = Spend(
            {row.currency: int(row.minor or 0)},
            None if row.impressions is None else int(row.impressions),
            None if row.clicks is None else int(row.clicks),
            str(row.label or "") if dimension == CAMPAIGN else "",
        )
        found.setdefault(str(row.key) if grouped else "", Spend()).add(spend)
    return found


def _cost_filter(flt: Filter) -> ColumnElement[bool]:
    """A tag filter on cost rows, whose tags are stored case-folded: values compared the
    same way (`utm_campaign=Spring` finds the cost of "spring")."""
    values = flt.values if flt.op == "contains" else tuple(utm_key(v) for v in flt.values)
    folded = dataclasses.replace(flt, values=values)
    return compile_filter(folded, lambda name: costs.c[COST_COLUMNS[name]])


def per(minor: int | None, count: int | None) -> int | None:
    """Cost per visit or conversion, in minor units (half up); unknown without any."""
    if minor is None or not count:
        return None
    return int((Decimal(minor) / count).quantize(Decimal(1), ROUND_HALF_UP))


def roas(revenue_minor: int | None, cost_minor: int | None) -> float | None:
    """Revenue per unit of cost (2.5: each euro spent brought 2.50), unknown at no cost."""
    if revenue_minor is None or not cost_minor:
        return None
    return round(revenue_minor / cost_minor, 2)


def ctr(clicks: int | None, impressions: int | None) -> float | None:
    """Ad clicks per 100 impressions (one decimal)."""
    if clicks is None or not impressions:
        return None
    return round(clicks * 100 / impressions, 1)


def amount_minor(text: str, currency: str) -> int:
    """A formatted amount ("42.50") back to minor units (4250): revenue totals are
    formatted by the conversion reports."""
    return int(Decimal(text).scaleb(minor_digits().get(currency, 2)))


def money(amounts: Mapping[str, int]) -> dict[str, str]:
    """{currency: minor} as {currency: "12.30"}, the shape revenue has in results."""
    return {c: format_minor(v, c) for c, v in amounts.items()}


def check(query: Query) -> None:
    """Spend metrics need a breakdown by at most one tag, filters cost rows also have, and
    for CPA and ROAS a goal (their conversions and revenue); QueryError names what is off."""
    asked = SPEND_METRICS & set(query.metrics)
    if not asked:
        return
    tags = ", ".join(COST_COLUMNS)
    if len(query.dimensions) > 1 or (query.dimensions and query.dimensions[0] not in COST_COLUMNS):
        raise QueryError(f"metrics: {', '.join(sorted(asked))} need no breakdown or one by {tags}.")
    if not attributable(query):
        raise QueryError(
            f"metrics: {', '.join(sorted(asked))} can only be filtered by {tags} or a goal: "
            "ad spend is not known per page, place or device."
        )
    if asked & {"cpa", "roas"} and query.filter_for(GOAL) is None:
        raise QueryError("metrics: cpa and roas count conversions: add a goal filter.")


def needed(query: Query) -> tuple[str, ...]:
    """Metrics spend is worked out from, besides those asked: visits (which row of a tag
    gets its cost, and CPC), conversions (CPA), revenue (ROAS)."""
    asked = SPEND_METRICS & set(query.metrics)
    if not asked:
        return ()
    wanted = ["visits"]
    if "cpa" in asked:
        wanted.append("conversions")
    if "roas" in asked:
        wanted.append("total_revenue")
    return tuple(m for m in wanted if m not in query.metrics)


def complete(conn: Connection, query: Query, rows: list[dict[str, Any]]) -> None:
    """Fill cost, cpc, cpa and roas of the rows in place (money as {currency: amount}).

    Rows whose tags differ only by case share one tag's cost: it goes to the row with the
    most visits, so a total never counts it twice."""
    asked = SPEND_METRICS & set(query.metrics)
    if not asked or not rows:
        return
    dim = query.dimensions[0] if query.dimensions else None
    spent = spend_by(conn, query, dim)
    currency = site_currency(conn, query.site)
    owners: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = utm_key(str(row[dim] or "")) if dim else ""
        if key not in owners or row["visits"] > owners[key]["visits"]:
            owners[key] = row
    for key, row in owners.items():
        _fill(row, spent.get(key, Spend()), currency, asked)
    for row in rows:
        if all(row is not owner for owner in owners.values()):
            _fill(row, Spend(), currency, asked)


def _fill(row: dict[str, Any], spend: Spend, currency: str, asked: frozenset[str]) -> None:
    cost = spend.only(currency) if spend.minor else None
    revenue = (row.get("total_revenue") or {}).get(currency)
    values = {
        "cost": money(spend.minor),
        "cpc": _in(currency, per(cost, row["visits"])),
        "cpa": _in(currency, per(cost, row.get("conversions"))),
        "roas": roas(amount_minor(revenue, currency) if revenue else 0, cost),
    }
    row.update({name: values[name] for name in asked})


def _in(currency: str, minor: int | None) -> dict[str, str]:
    return {} if minor is None else money({currency: minor})
