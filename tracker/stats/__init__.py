"""The stats query layer: Query(site, period, metrics, dimensions, filters) -> rows.

The stats page, the JSON API and the CSV export use only what this package exports:
`parse_query` (URL parameters -> Query, or QueryError), `run` (Query -> Result) and the
real-time helpers. All SQL for reports lives here.
"""

from tracker.stats.annotations import Note, bucket_notes, series_notes, site_notes
from tracker.stats.dimensions import DIMENSIONS, Dimension, dimension
from tracker.stats.expression import parse_expression
from tracker.stats.filters import Filter
from tracker.stats.funnels import FunnelResult, Step, funnel, funnel_names
from tracker.stats.goals import GOAL, site_goals
from tracker.stats.metrics import METRICS, Metric
from tracker.stats.periods import COMPARISONS, PERIODS, Period
from tracker.stats.query import Query, QueryError, SiteRef, parse_query, site_ref
from tracker.stats.realtime import Realtime, current_visitors, realtime
from tracker.stats.rows import event_rows, visit_rows
from tracker.stats.run import Result, first_day, run, time_buckets

__all__ = [
    "COMPARISONS",
    "DIMENSIONS",
    "GOAL",
    "METRICS",
    "PERIODS",
    "Dimension",
    "Filter",
    "FunnelResult",
    "Metric",
    "Note",
    "Period",
    "Query",
    "QueryError",
    "Realtime",
    "Result",
    "SiteRef",
    "Step",
    "bucket_notes",
    "current_visitors",
    "dimension",
    "event_rows",
    "first_day",
    "funnel",
    "funnel_names",
    "parse_expression",
    "parse_query",
    "realtime",
    "run",
    "series_notes",
    "site_goals",
    "site_notes",
    "site_ref",
    "time_buckets",
    "visit_rows",
]
