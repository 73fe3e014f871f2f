"""Why the collector answers an event but does not store it, and the key it is counted by.

An event dropped is answered like any other (bots and spam learn nothing) and only counted,
per site, UTC day and reason (`DropKey`), in `drop_counts`. The collector drops by who sent
the event (tracker.ingest.pipeline), visit assignment by what is stored already
(tracker.storage.visits, through tracker.storage.store); the settings page's "not counted" report
(tracker.stats.dropped) labels each reason.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache

DAY_MS = 86_400_000


class DropReason(StrEnum):
    """A reason as stored in `drop_counts.reason` and sent in a batch's `dropped`: the values
    are that stable interface (README, "Ingestion"), so a reason is never renamed."""

    BOT = "bot"  # a crawler's user agent, or a browser's prefetch
    SPAM = "spam"  # a referrer on the spam list
    DNT = "dnt"  # Do Not Track or Global Privacy Control, on a site that honours them
    NO_PAGEVIEW = "no_pageview"  # engagement of a pageview never received
    DUPLICATE = "duplicate"  # a pageview received twice


DropKey = tuple[int, date, DropReason]  # site id, UTC day, reason


def drop_key(site_id: int, timestamp_ms: int, reason: DropReason) -> DropKey:
    return site_id, utc_day(timestamp_ms), reason


def utc_day(ms: int) -> date:
    """The UTC day of an epoch time in ms: the day a drop is counted on (and, in the
    collector, the day whose salt makes the visitor id)."""
    return _day(ms // DAY_MS)


@lru_cache(maxsize=64)
def _day(days_since_epoch: int) -> date:
    return date(1970, 1, 1) + timedelta(days=days_since_epoch)
