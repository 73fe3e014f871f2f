"""Requests the collector answered but did not count, per reason, over the last days.

Bots (and prefetches), referrer spam, visitors whose Do Not Track or Global Privacy
Control the site honours, engagement beacons of a pageview never received, and pageviews
received twice: the collector keeps only these counts per site, day and reason
(`drop_counts`).
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from tracker.db import Database
from tracker.db.models import DropCount
from tracker.ingest.drops import DropReason

REASONS: dict[DropReason, str] = {
    DropReason.BOT: "Bots and prefetches",
    DropReason.SPAM: "Referrer spam",
    DropReason.DNT: "Do Not Track or Global Privacy Control",
    DropReason.NO_PAGEVIEW: "Engagement of an unknown pageview",
    DropReason.DUPLICATE: "Pageviews received twice",
}


def dropped_counts(db: Database, site_id: int, today: date, days: int = 30) -> dict[str, int]:
    """Reason -> requests not counted in the `days` days through `today` (UTC), most first."""
    query = (
        select(DropCount.reason, func.sum(DropCount.count))
        .where(DropCount.site_id == site_id, DropCount.day > today - timedelta(days=days))
        .group_by(DropCount.reason)
        .order_by(func.sum(DropCount.count).desc(), DropCount.reason)
    )
    with db.engine.connect() as conn:
        return {reason: int(total) for reason, total in conn.execute(query)}
