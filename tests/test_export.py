"""CSV formatting: quoting round trips, formula injection, times, and the fast path's fidelity."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from tracker.export import (
    EVENT_COLUMNS,
    VISIT_COLUMNS,
    Column,
    Kind,
    csv_chunks,
    download_name,
    neutralize,
)

COLUMNS = (
    Column("when", "ts", Kind.TIME_UTC),
    Column("local", "ts", Kind.TIME_LOCAL),
    Column("page", "path"),
    Column("title", "title"),
    Column("engaged_ms", "engaged", Kind.NUMBER),
    Column("bounce", "bounce", Kind.BOOL),
    Column("props", "props", Kind.JSON),
)
FIELDS = ("path", "title", "ts", "engaged", "bounce", "props")


def export(rows: list[tuple[object, ...]], timezone: str = "UTC", batch: int = 2) -> str:
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    return "".join(csv_chunks(COLUMNS, FIELDS, batches, timezone))


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_header_and_cells() -> None:
    text = export([("/a", "Home", 1763850653123, 1500, True, '{"plan": "pro"}')])
    assert text.startswith("when,local,page,title,engaged_ms,bounce,props\r\n")
    assert parse(text)[1] == [
        "2025-11-22T22:30:53.123Z",
        "2025-11-22T22:30:53.123+00:00",
        "/a",
        "Home",
        "1500",
        "1",
        '{"plan": "pro"}',
    ]


def test_nulls_are_empty_cells() -> None:
    assert parse(export([("/a", "", None, None, None, None)]))[1] == ["", "", "/a", "", "", "", ""]
    assert parse(export([("/a", "", 0, 0, False, "null")]))[1][4:] == ["0", "0", ""]


def test_local_time_follows_the_site_zone_across_dst() -> None:
    # Paris moved from +01:00 to +02:00 at 2024-03-31 01:00 UTC.
    rows = [("/", "", ms, None, None, None) for ms in (1711846799999, 1711846800000)]
    parsed = parse(export(rows, "Europe/Paris"))
    assert [r[1] for r in parsed[1:]] == [
        "2024-03-31T01:59:59.999+01:00",
        "2024-03-31T03:00:00.000+02:00",
    ]
    assert [r[0] for r in parsed[1:]] == ["2024-03-31T00:59:59.999Z", "2024-03-31T01:00:00.000Z"]


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
]


@pytest.mark.parametrize("value", TRICKY_TEXT)
def test_values_survive_a_round_trip(value: str) -> None:
    text = export([(value, value, 1000, 7, False, None)])
    assert parse(text)[1][2:4] == [value, value]


def test_fast_path_writes_exactly_what_the_csv_module_writes() -> None:
    values = [*TRICKY_TEXT, "plain", "/blog/post", "a;b", "tab\tin", "x'y", "\\"]
    rows = [(v, w, 1763850653123 + i, i, i % 2 == 0, None) for i, (v, w) in
            enumerate((v, w) for v in values for w in values)]  # fmt: skip
    got = export(rows, batch=7)
    expected = io.StringIO(newline="")
    writer = csv.writer(expected, lineterminator="\r\n")
    for row in parse(got):
        writer.writerow(row)
    assert got == expected.getvalue()
    assert len(parse(got)) == len(rows) + 1


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
def test_formula_injection_is_neutralised_in_text_cells(value: str, cell: str) -> None:
    rows = parse(export([("/p", value, 1000, -5, False, None)]))
    assert rows[1][3] == cell
    assert rows[1][2] == "/p"  # other text cells of the row are untouched
    assert rows[1][4] == "-5"  # numbers are never prefixed


def test_neutralize_each_trigger() -> None:
    for start in "=+-@\t\r":
        assert neutralize(start + "x") == "'" + start + "x"
    assert neutralize("'=x") == "'=x"


def test_missing_fields_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="lack the fields"):
        list(csv_chunks(COLUMNS, ("path",), [], "UTC"))


def test_chunks_are_lazy_one_per_batch() -> None:
    consumed: list[int] = []

    def batches():
        for i in range(3):
            consumed.append(i)
            yield [("/", "", 1000 * i, None, None, None)]

    chunks = csv_chunks(COLUMNS, FIELDS, batches(), "UTC")
    assert next(chunks).startswith("when,")
    assert consumed == []
    next(chunks)
    assert consumed == [0]


def test_documented_columns() -> None:
    assert [c.header for c in EVENT_COLUMNS] == [
        "timestamp_utc", "timestamp_local", "type", "name", "page", "hostname", "query",
        "title", "referrer", "source", "channel", "utm_source", "utm_medium", "utm_campaign",
        "utm_term", "utm_content", "target", "props", "engaged_ms", "scroll",
        "time_on_page_ms", "visit_id", "visitor_id", "country", "region", "city", "browser",
        "browser_version", "os", "os_version", "device", "screen",
    ]  # fmt: skip
    assert [c.header for c in VISIT_COLUMNS][:13] == [
        "visit_id", "started_utc", "started_local", "last_event_utc", "visitor_id", "hostname",
        "entry_page", "exit_page", "pageviews", "events", "interactions", "bounce",
        "duration_ms",
    ]  # fmt: skip


def test_download_name_names_site_table_and_range() -> None:
    name = download_name("Shop.example.com:8080", "events", date(2026, 11, 1), date(2026, 11, 30))
    assert name == "shop.example.com_8080-events-2026-11-01-to-2026-11-30.csv"
