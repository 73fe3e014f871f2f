"""Why the collector answers an event but does not store it.

An event dropped is answered like any other (bots and spam learn nothing) and only counted,
per site, UTC day and reason, in `drop_counts`. The collector drops by who sent the event
(tracker.ingest.pipeline), visit assignment by what is stored already (tracker.sessions);
the settings page's "not counted" report (tracker.stats.dropped) labels each reason.
"""

from __future__ import annotations

from enum import StrEnum


class DropReason(StrEnum):
    """A reason as stored in `drop_counts.reason` and sent in a batch's `dropped`: the values
    are that stable interface (README, "Ingestion"), so a reason is never renamed."""

    BOT = "bot"  # a crawler's user agent, or a browser's prefetch
    SPAM = "spam"  # a referrer on the spam list
    DNT = "dnt"  # Do Not Track or Global Privacy Control, on a site that honours them
    NO_PAGEVIEW = "no_pageview"  # engagement of a pageview never received
    DUPLICATE = "duplicate"  # a pageview received twice
