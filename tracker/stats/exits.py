"""Exit rate: of a page's pageviews, the share that ended their visit (percent).

A row of a breakdown by exit page counts the visits that ended on that page; the page's
pageviews come from a breakdown by page over the same period and filters. So, like the
conversion rate, the exit rate is completed after the sums (`complete`), from two counts
that each add up across days: exits / pageviews, divided once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from tracker.stats.dimensions import PAGE
from tracker.stats.filters import Filter
from tracker.stats.query import Query, QueryError

EXIT_RATE = "exit_rate"
EXIT_PAGE = "visit:exit_page"

Runner = Callable[[Query, Sequence[tuple[Any, ...]] | None], list[dict[str, Any]]]
# Past this many exit pages their pageviews are read for every page, not under a filter
# on them: a value per bound parameter, where PostgreSQL takes at most 65,535 (a sort by
# exit rate, or the CSV, of a site with 100,000 pages), and a filter that long cost more
# than the breakdown it narrows. Each page's pageviews are the same either way.
MAX_FILTERED_PAGES = 1_000


def needed(query: Query) -> tuple[str, ...]:
    """The metrics the exit rate is completed from: the row's visits (its exits)."""
    if EXIT_RATE not in query.metrics:
        return ()
    if EXIT_PAGE not in query.dimensions:
        raise QueryError(
            "metrics: exit_rate is a page's exits over its pageviews; break down by "
            "visit:exit_page to get it."
        )
    return () if "visits" in query.metrics else ("visits",)


def complete(query: Query, rows: list[dict[str, Any]], runner: Runner) -> None:
    """Set each row's exit rate: its visits over its exit page's pageviews."""
    if EXIT_RATE not in query.metrics or not rows:
        return
    pages = tuple(sorted({row[EXIT_PAGE] for row in rows if row[EXIT_PAGE]}))
    views: dict[str, int] = {}
    if pages:
        # A filter on the exit page would count only its own visits' pageviews: left out.
        filters = tuple(f for f in query.filters if f.dimension != EXIT_PAGE)
        if len(pages) <= MAX_FILTERED_PAGES:
            filters = (*filters, Filter(PAGE, "is", pages))
        viewed = dataclasses.replace(
            query,
            metrics=("pageviews",),
            dimensions=(PAGE,),
            filters=filters,
            compare=None,
            compare_period=None,
            order_by=(),
            limit=None,
            offset=0,
        )
        views = {row[PAGE]: row["pageviews"] for row in runner(viewed, None)}
    for row in rows:
        pageviews = views.get(row[EXIT_PAGE], 0)
        row[EXIT_RATE] = round(row["visits"] * 100 / pageviews, 1) if pageviews else None
