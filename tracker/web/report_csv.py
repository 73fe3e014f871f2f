"""A report's rows as CSV: its dimensions, then each metric in the stats layer's units.

Headers are the namespaced names (`visit:source`, `bounce_rate`) used in URLs and the API.
Text cells are made formula-safe for spreadsheets (tracker.export.neutralize). The chart's
CSV has a row per time bucket and the bucket's annotations in a last column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from tracker.export import neutralize
from tracker.stats import FunnelResult, Note, Result
from tracker.web.reports import Report


def report_csv(report: Report, metrics: tuple[str, ...], pages: Iterable[Result]) -> Iterator[str]:
    """The report's rows with the columns the page shows (`metrics`: in conversion mode
    conversions and their rate), a chunk of text per page of rows. Revenue cells read
    `42.50 EUR` (one currency a cell part)."""
    yield _line([*report.dimensions, *metrics])
    for result in pages:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        for row in result.rows:
            labels = [neutralize("" if row[d] is None else str(row[d])) for d in report.dimensions]
            writer.writerow([*labels, *(_cell(row[m]) for m in metrics)])
        yield out.getvalue()


def _line(cells: list[object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def timeseries_csv(result: Result, notes: list[list[Note]]) -> str:
    """A time series (one time dimension): the bucket, each metric, then `annotations`,
    the bucket's notes joined by "; " (`notes`: one list per row)."""
    query = result.query
    dim = query.dimensions[0]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([dim, *query.metrics, "annotations"])
    for row, bucket in zip(result.rows, notes, strict=True):
        text = neutralize("; ".join(note.text for note in bucket))
        writer.writerow([row[dim], *(_cell(row[m]) for m in query.metrics), text])
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
