"""Scroll depth: how far down a page its visitors read (percent), a page-only metric.

The beacon's engagement reports fold the deepest scroll of a page load into its pageview
row (`events.scroll`, tracker.storage.visits). A report sums those maxima and counts the
pageviews that had one (`scroll_sum`, `scroll_known`: parts that add up across days,
rollups, raw rows and the columnar store); the metric is their ratio, so a pageview that
never reported is left out of the average rather than counted as 0.

Over a whole site the average means little (a long article and a short form mixed), so
the metric needs the page: a breakdown by it, or a filter on it.
"""

from __future__ import annotations

from tracker.stats.dimensions import PAGE
from tracker.stats.query import Query, QueryError

SCROLL_DEPTH = "scroll_depth"


def check(query: Query) -> None:
    """Refuse scroll depth where no page is named (QueryError: the API's 400)."""
    if SCROLL_DEPTH not in query.metrics:
        return
    if PAGE in query.dimensions or query.filter_for(PAGE) is not None:
        return
    raise QueryError(
        "metrics: scroll_depth is the average scroll depth of a page's pageviews; break "
        "down by event:page, or filter on a page (page=/pricing), to get it."
    )
