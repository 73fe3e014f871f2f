"""CSV cells as the databases render them: quoting round trips, formula injection, times
across DST, and that every row reads exactly as csv.writer would write it (both databases)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert

from tracker.db import Database
from tracker.db.models import Event, Visit
from tracker.export import (
    EVENT_COLUMNS,
    TABLES,
    VISIT_COLUMNS,
    Column,
    Kind,
    csv_chunks,
    download_name,
    export_csv,
    neutralize,
    row_count,
)
from tracker.sites import add_site, find_site
from tracker.stats import event_rows, parse_query

visits_t = cast(Table, Visit.__table__)
events_t = cast(Table, Event.__table__)

# Paris moved from +01:00 to +02:00 at 2024-03-31 01:00 UTC.
START_MS = 1711846799999 - 3_600_000  # 2024-03-30T23:59:59.999Z, 00:59:59.999 in Paris

TRICKY_TEXT = [
    "a, b",
    'say "hi"',
    "two\nlines",
    "cr\rhere",
    "crlf\r\nend",
    "emoji 🎉 ünïcode 漢字",
    "",
    " leading space",
    'mixed, "all"\nof 🎉 them',
    "unit\x1fseparator",
    "tab\tin",
    "x'y",
    "\\",
    "100%_done",
]

Store = Callable[..., None]


@pytest.fixture
def store(db: Database) -> Store:
    """Store one visit of the site `paris.example` (Europe/Paris) and its events, given
    as dicts of event columns over plain defaults; `visit` overrides visit columns."""
    with db.session() as session:
        site_id = add_site(session, "paris.example", timezone="Europe/Paris").id
    visit_ids = iter(range(1, 1000))

    def store(events: Sequence[dict[str, Any]], **visit: Any) -> None:
        visit_id = next(visit_ids)
        times = [e.get("timestamp_ms", START_MS) for e in events]
        visit_row = {
            "id": visit_id, "site_id": site_id, "visitor_id": 42, "started_ms": min(times),
            "last_ms": max(times), "hostname": "paris.example", "entry_page": "/",
            "exit_page": "/", "pageviews": 1, "events": len(events), "interactions": 0,
            "is_bounce": True, "duration_ms": 0, "source": "Direct / None", "referrer": "",
            "channel": "Direct", "utm_source": "", "utm_medium": "", "utm_campaign": "",
            "utm_term": "", "utm_content": "", "click_id": "", "country": "FR",
            "region": "", "city": "", "browser": "Firefox", "browser_version": "128",
            "os": "Linux", "os_version": "", "device": "Desktop", "screen": "Desktop",
            **visit,
        }  # fmt: skip
        event_rows_ = [
            {
                "site_id": site_id,
                "visit_id": visit_id,
                "visitor_id": 42,
                "timestamp_ms": START_MS,
                "kind": "pageview",
                "name": "",
                "hostname": "paris.example",
                "path": "/",
                "query": "",
                "title": "",
                "referrer": "",
                "target": "",
                "props": None,
                "engaged_ms": None,
                "scroll": None,
                "time_on_page_ms": None,
                "pageview_id": f"p{visit_id}",
                **event,
            }  # fmt: skip
            for event in events
        ]
        with db.engine.begin() as conn:
            conn.execute(insert(visits_t), [visit_row])
            conn.execute(insert(events_t), event_rows_)

    return store


def export(db: Database, table: str = "events", batch_rows: int | None = None) -> str:
    with db.session() as session:
        site = find_site(session, "paris.example")
    query = parse_query(site, {"period": "custom", "from": "2024-03-30", "to": "2024-04-01"})
    spec = TABLES[table]
    if batch_rows is None:
        return "".join(export_csv(db, query, spec))
    batches = event_rows(db, query, spec.cells(), batch_rows=batch_rows)
    return "".join(csv_chunks(spec.columns, batches))


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_cells_of_an_event(db: Database, store: Store) -> None:
    store(
        [{"timestamp_ms": 1711846853123, "title": "Home", "engaged_ms": 1500, "scroll": 80,
          "props": {"plan": "pro"}, "visitor_id": -7}],
        visitor_id=-7, is_bounce=False,
    )  # fmt: skip
    text = export(db)
    assert text.startswith(",".join(c.header for c in EVENT_COLUMNS) + "\r\n")
    row = parse(text)[0]
    assert row["timestamp_utc"] == "2024-03-31T01:00:53.123Z"
    assert row["timestamp_local"] == "2024-03-31T03:00:53.123+02:00"
    assert (row["type"], row["title"], row["engaged_ms"], row["scroll"]) == (
        "pageview", "Home", "1500", "80",
    )  # fmt: skip
    assert row["props"] == '{"plan": "pro"}'
    assert row["visitor_id"] == "-7"  # numbers are never prefixed
    assert row["time_on_page_ms"] == ""  # NULL: unknown
    visit = parse(export(db, "visits"))[0]
    assert (visit["bounce"], visit["visitor_id"], visit["started_local"]) == (
        "0", "-7", "2024-03-31T03:00:53.123+02:00",
    )  # fmt: skip


def test_revenue_cells_are_exact_decimals_in_their_currency(db: Database, store: Store) -> None:
    amounts = [(4250, "EUR"), (5, "EUR"), (0, "USD"), (1000, "JPY"), (1234, "KWD"),
               (7, "BHD"), (99999, "CLF"), (100_000_000_000_000, "EUR"), (None, "")]  # fmt: skip
    store(
        [{"kind": "event", "name": "Purchase", "timestamp_ms": START_MS + i,
          "revenue_minor": minor, "revenue_currency": currency}
         for i, (minor, currency) in enumerate(amounts)]
    )  # fmt: skip
    rows = parse(export(db))
    assert [(r["revenue"], r["revenue_currency"]) for r in rows] == [
        ("42.50", "EUR"), ("0.05", "EUR"), ("0.00", "USD"), ("1000", "JPY"), ("1.234", "KWD"),
        ("0.007", "BHD"), ("9.9999", "CLF"), ("1000000000000.00", "EUR"), ("", ""),
    ]  # fmt: skip


def test_local_time_follows_the_site_zone_across_dst(db: Database, store: Store) -> None:
    store([{"timestamp_ms": ms} for ms in (START_MS, 1711846799999, 1711846800000)])
    rows = parse(export(db))
    assert [r["timestamp_utc"] for r in rows] == [
        "2024-03-30T23:59:59.999Z",
        "2024-03-31T00:59:59.999Z",
        "2024-03-31T01:00:00.000Z",
    ]
    assert [r["timestamp_local"] for r in rows] == [
        "2024-03-31T00:59:59.999+01:00",
        "2024-03-31T01:59:59.999+01:00",
        "2024-03-31T03:00:00.000+02:00",
    ]


@pytest.mark.parametrize("value", TRICKY_TEXT)
def test_text_survives_a_round_trip(db: Database, store: Store, value: str) -> None:
    store([{"title": value, "name": value, "props": {"k": value}}], city=value, utm_term=value)
    row = parse(export(db))[0]
    assert [row["title"], row["name"], row["city"], row["utm_term"]] == [value] * 4
    assert row["props"].startswith('{"k": ')


def test_every_row_reads_as_csv_writer_writes_it(db: Database, store: Store) -> None:
    # Plain rows and rows needing quotes or neutralising, interleaved across batches.
    values = [*TRICKY_TEXT, "plain", "/blog/post", "=1+2", "-x", "@me", "a;b"]
    store(
        [{"timestamp_ms": START_MS + i, "title": v, "path": "/" + w, "query": w}
         for i, (v, w) in enumerate((v, w) for v in values for w in ("p", *values[:4]))]
    )  # fmt: skip
    for batch_rows in (None, 7):
        got = export(db, batch_rows=batch_rows)
        expected = io.StringIO(newline="")
        writer = csv.writer(expected, lineterminator="\r\n")
        for row in csv.reader(io.StringIO(got, newline="")):
            writer.writerow(row)
        assert got == expected.getvalue()
        assert [r["title"] for r in parse(got)][::5] == [neutralize(v) for v in values]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1", "'+1"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTab", "'\tTab"),
        ("\rCR", "'\rCR"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_formula_injection_is_neutralised_in_text_cells(
    db: Database, store: Store, value: str, cell: str
) -> None:
    store([{"title": value, "path": "/p", "time_on_page_ms": -5}], source=value)
    row = parse(export(db))[0]
    assert (row["title"], row["source"]) == (cell, cell)
    assert row["page"] == "/p"  # other text cells of the row are untouched
    assert row["time_on_page_ms"] == "-5"  # numbers are never prefixed
    assert parse(export(db, "visits"))[0]["source"] == cell


def test_chunks_are_lazy_one_per_batch(db: Database, store: Store) -> None:
    store([{"timestamp_ms": START_MS + i} for i in range(5)])
    with db.session() as session:
        site = find_site(session, "paris.example")
    query = parse_query(site, {"period": "custom", "from": "2024-03-30", "to": "2024-04-01"})
    consumed: list[int] = []

    def watch(batches: Any) -> Any:
        for batch in batches:
            consumed.append(row_count(batch))
            yield batch

    spec = TABLES["events"]
    chunks = csv_chunks(spec.columns, watch(event_rows(db, query, spec.cells(), batch_rows=2)))
    assert next(chunks).startswith("timestamp_utc,")
    assert consumed == []
    next(chunks)
    assert consumed == [2]
    assert len(list(chunks)) == 2 and consumed == [2, 2, 1]


def test_neutralize_each_trigger() -> None:
    for start in "=+-@\t\r":
        assert neutralize(start + "x") == "'" + start + "x"
    assert neutralize("'=x") == "'=x"


def test_documented_columns() -> None:
    assert [c.header for c in EVENT_COLUMNS] == [
        "timestamp_utc", "timestamp_local", "type", "name", "page", "hostname", "query",
        "title", "referrer", "source", "channel", "utm_source", "utm_medium", "utm_campaign",
        "utm_term", "utm_content", "target", "props", "engaged_ms", "scroll",
        "time_on_page_ms", "visit_id", "visitor_id", "country", "region", "city", "browser",
        "browser_version", "os", "os_version", "device", "screen", "revenue",
        "revenue_currency",
    ]  # fmt: skip
    assert [c.header for c in VISIT_COLUMNS][:13] == [
        "visit_id", "started_utc", "started_local", "last_event_utc", "visitor_id", "hostname",
        "entry_page", "exit_page", "pageviews", "events", "interactions", "bounce",
        "duration_ms",
    ]  # fmt: skip
    # Only values of the code's own vocabularies skip the formula check.
    keywords = {c.header for c in (*EVENT_COLUMNS, *VISIT_COLUMNS) if c.kind is Kind.KEYWORD}
    assert keywords == {"type", "channel", "device", "screen", "revenue_currency"}
    assert isinstance(EVENT_COLUMNS[0], Column)


def test_download_name_names_site_table_and_range() -> None:
    name = download_name("Shop.example.com:8080", "events", date(2026, 11, 1), date(2026, 11, 30))
    assert name == "shop.example.com_8080-events-2026-11-01-to-2026-11-30.csv"
