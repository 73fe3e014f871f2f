"""A report's CSV download holds every row of the report, in the page's order."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask

from tests.helpers import add_user, log_in, store_events
from tests.stats_fixture import rows
from tracker.web import dashboard


def test_a_report_csv_holds_every_row(
    app: Flask, client, db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed a page of rows at a time (it was cut at 10,000 rows without a word): three
    rows a page here, over eight rows with ties, none lost or repeated."""
    monkeypatch.setattr(dashboard, "CSV_PAGE_ROWS", 3)
    site = "rows.example"
    events = [
        {"url": f"https://{site}/p{n}", "timestamp": f"2026-03-02T09:{n:02d}:{i:02d}Z"}
        for n in range(8)
        for i in range(n % 3 + 1)  # 1, 2 or 3 pageviews: ties across page boundaries
    ]
    store_events(app, events, site=site)
    log_in(client, add_user(db))
    query = "period=custom&from=2026-03-02&to=2026-03-02"
    response = client.get(f"/sites/{site}/reports/pages.csv?{query}")
    assert response.status_code == 200
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0][0] == "event:page"
    listed = rows(client.get(f"/sites/{site}/reports/pages?{query}").get_data(as_text=True))
    assert [row[0] for row in table[1:]] == [row[0] for row in listed]  # the page's order
    # One visitor each: ordered by path, across three pages of rows.
    assert {row[0]: row[2] for row in table[1:]} == {f"/p{n}": str(n % 3 + 1) for n in range(8)}
    assert [row[0] for row in table[1:]] == [f"/p{n}" for n in range(8)]
