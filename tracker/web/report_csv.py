"""A report's rows as CSV: its dimensions, then each metric in the stats layer's units.

Headers are the namespaced names (`visit:source`, `bounce_rate`) used in URLs and the API.
Text cells are made formula-safe for spreadsheets (tracker.export.neutralize).
"""

from __future__ import annotations

import csv
import io

from tracker.export import neutralize
from tracker.stats import Result
from tracker.web.reports import Report


def report_csv(report: Report, result: Result) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*report.dimensions, *report.metrics])
    for row in result.rows:
        labels = [neutralize("" if row[d] is None else str(row[d])) for d in report.dimensions]
        writer.writerow([*labels, *("" if row[m] is None else row[m] for m in report.metrics)])
    return out.getvalue()
