"""The campaign tags a site's data already uses: each spelling of utm_source, utm_medium,
utm_campaign, utm_term and utm_content in its recent visits and ad cost rows.

The link builder (tracker/links.py) warns when a new link would add a spelling that differs
from one of these only by letter case or spaces, since reports group visits by the exact
text. Visits are read through the stats Query, so per-day rollups answer for the days they
cover; cost rows are read from `ad_costs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from tracker.db import Database
from tracker.db.models import AdCost
from tracker.stats.query import SiteLike, parse_query, site_ref
from tracker.stats.run import run
from tracker.utm import UTM_FIELDS

RECENT_DAYS = 90


@dataclass(frozen=True)
class TagSpelling:
    """One spelling of a tag: how many recent visits carried it, and whether cost rows do."""

    field: str  # one of UTM_FIELDS
    value: str
    visits: int = 0
    in_costs: bool = False


Key = tuple[str, str]  # (field, value)


def _visit_spellings(db: Database, site: SiteLike, start: date, end: date) -> dict[Key, int]:
    """(field, value) -> visits, over every field; "" (untagged) left out."""
    counts: dict[Key, int] = {}
    for field in UTM_FIELDS:
        name = f"visit:utm_{field}"
        args = {
            "period": "custom",
            "from": start.isoformat(),
            "to": end.isoformat(),
            "dimension": name,
            "metrics": "visits",
        }
        for row in run(db, parse_query(site, args)).rows:
            if row[name]:
                counts[(field, row[name])] = int(row["visits"] or 0)
    return counts


def _cost_spellings(db: Database, site_id: int, start: date) -> set[Key]:
    """(field, value) keys of the cost rows since `start`. Cost rows keep their tags
    case-folded; a campaign's spelling is `campaign_label`, as the ad platform named it."""
    columns = (AdCost.source, AdCost.medium, AdCost.campaign, AdCost.term, AdCost.content)
    query = (
        select(*columns, AdCost.campaign_label)
        .where(AdCost.site_id == site_id, AdCost.day >= start)
        .distinct()
    )
    keys: set[Key] = set()
    with db.engine.connect() as conn:
        for *values, label in conn.execute(query):
            tags = dict(zip(UTM_FIELDS, values, strict=True))
            tags["campaign"] = label or tags["campaign"]
            keys.update((field, value) for field, value in tags.items() if value)
    return keys


def tag_spellings(
    db: Database, site: SiteLike, *, days: int = RECENT_DAYS, now: datetime | None = None
) -> list[TagSpelling]:
    """Every spelling of every tag in the site's visits and ad cost rows of the last `days`
    days (in the site's time zone), most visits first."""
    ref = site_ref(site)
    today = (now or datetime.now(ref.tz)).astimezone(ref.tz).date()
    start = today - timedelta(days=days - 1)
    visits = _visit_spellings(db, site, start, today)
    costs = _cost_spellings(db, ref.id, start)
    spellings = [
        TagSpelling(*key, visits=visits.get(key, 0), in_costs=key in costs)
        for key in visits.keys() | costs
    ]
    spellings.sort(key=lambda s: (UTM_FIELDS.index(s.field), -s.visits, s.value))
    return spellings
