"""A report's rows as CSV: its dimensions, then each metric in the stats layer's units.

Headers are the namespaced names (`visit:source`, `bounce_rate`) used in URLs and the API.
Text cells are made formula-safe for spreadsheets (tracker.export.neutralize).
"""

from __future__ import annotations

import csv
import io

from tracker.export import neutralize
from tracker.stats import FunnelResult, Result
from tracker.web.reports import Report


def report_csv(report: Report, metrics: tuple[str, ...], result: Result) -> str:
    """The report's rows with the columns the page shows (`metrics`: in conversion mode
    conversions and their rate). Revenue cells read `42.50 EUR` (one currency a cell part)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*report.dimensions, *metrics])
    for row in result.rows:
        labels = [neutralize("" if row[d] is None else str(row[d])) for d in report.dimensions]
        writer.writerow([*labels, *(_cell(row[m]) for m in metrics)])
    return out.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{amount} {currency}" for currency, amount in value.items())
    return value


def funnel_csv(result: FunnelResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["step", "goal", "visitors", "from_previous", "from_start", "dropped"])
    for number, step in enumerate(result.steps, start=1):
        writer.writerow(
            [
                number,
                neutralize(step.goal),
                step.visitors,
                _cell(step.from_previous),
                _cell(step.from_start),
                step.dropped,
            ]
        )
    return out.getvalue()
