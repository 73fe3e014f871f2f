"""Ad spend in: platform CSV exports read to exact rows (encodings, separators, number and
date formats, title and total lines), every bad row listed by row and field, storage that
replaces a day's row on re-import and stores nothing when any row is bad, the summary and
deletion, and `tracker costs` (SQLite and PostgreSQL where anything is stored)."""

from __future__ import annotations

import codecs
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tracker.cli import cli
from tracker.cost_csv import ValueFormatError, read_day, read_number
from tracker.costs import (
    CostDefaults,
    CostError,
    CostFileError,
    cost_defaults,
    cost_summary,
    delete_costs,
    list_costs,
    parse_cost_file,
    row_key,
    store_costs,
)
from tracker.db import Database
from tracker.db.models import AdCost, Site
from tracker.sites import add_site, delete_site, find_site

DATA = Path(__file__).parent / "data" / "costs"
SITE = "shop.example"
GOOGLE = cost_defaults("google", "cpc")

# (row, day, source, medium, campaign, term, content, cost_minor, currency, impressions, clicks)
GOOGLE_ROWS = [
    (4, date(2026, 11, 1), "google", "cpc", "Spring Sale", "", "", 123456, "EUR", 12345, 321),
    (5, date(2026, 11, 1), "google", "cpc", "Brand", "", "", 4510, "EUR", 980, 77),
    (6, date(2026, 11, 2), "google", "cpc", "Spring Sale", "", "", 110000, "EUR", 11002, 298),
    (7, date(2026, 11, 2), "google", "cpc", "Brand", "", "", 0, "EUR", 0, 0),
    (8, date(2026, 11, 3), "google", "cpc", "Spring Sale", "", "", 1230, "EUR", None, None),
]
MICROSOFT_ROWS = [
    (12, date(2026, 11, 12), "bing", "cpc", "Spring Sale", "Shoes", "", 5280, "USD", 1204, 37),
    (13, date(2026, 11, 12), "bing", "cpc", "Spring Sale", "Boots", "", 1405, "USD", 310, 9),
    (14, date(2026, 11, 13), "bing", "cpc", "Spring Sale", "Shoes", "", 106120, "USD", 1580, 41),
    (15, date(2026, 11, 13), "bing", "cpc", "Winter, cosy", "Scarves", "", 300, "USD", 95, 2),
]
META_ROWS = [
    (2, date(2026, 11, 1), "facebook", "paid_social", "Spring Sale", "Women 25-34", "Carousel A",
     123456, "EUR", 48210, 512),
    (3, date(2026, 11, 1), "facebook", "paid_social", "Spring Sale", "Women 25-34", "Video B",
     8790, "EUR", 9870, None),
    (4, date(2026, 11, 2), "facebook", "paid_social", "Spring Sale", "Women 25-34", "Carousel A",
     102000, "EUR", 41002, 498),
    (5, date(2026, 11, 2), "facebook", "paid_social", "Retargeting", "Visitors 30d", "Carousel A",
     1250, "EUR", 1104, 23),
]  # fmt: skip


def _tuples(batch: Any) -> list[tuple[Any, ...]]:
    return [
        (r.row, r.day, r.source, r.medium, r.campaign, r.term, r.content, r.cost_minor,
         r.currency, r.impressions, r.clicks)
        for r in batch.rows
    ]  # fmt: skip


def _problems(batch: Any) -> list[tuple[int, str, str]]:
    return [(p.row, p.field, p.message) for p in batch.problems]


# Platform exports


def test_google_ads_export_utf16_tabs_title_and_total_lines() -> None:
    data = (DATA / "google_ads.csv").read_bytes()
    assert data.startswith(codecs.BOM_UTF16_LE)
    batch = parse_cost_file(data, GOOGLE)
    assert batch.problems == []
    assert _tuples(batch) == GOOGLE_ROWS
    assert [(s.line, s.reason) for s in batch.skipped] == [
        (1, "above the header row"),
        (2, "above the header row"),
        (9, "a total line"),
        (10, "a total line"),
        (11, "a total line"),
    ]
    assert batch.columns == {
        "date": "Day", "utm_campaign": "Campaign", "currency": "Currency code", "cost": "Cost",
        "impressions": "Impr.", "clicks": "Clicks",
    }  # fmt: skip
    assert batch.period == (date(2026, 11, 1), date(2026, 11, 3))
    assert batch.totals() == {"EUR": 239196}
    assert [(c.campaign, c.currency, c.cost_minor, c.rows) for c in batch.campaigns()] == [
        ("Spring Sale", "EUR", 234686, 3),
        ("Brand", "EUR", 4510, 2),
    ]


def test_microsoft_advertising_export_bom_report_header_month_first_dates() -> None:
    data = (DATA / "microsoft_ads.csv").read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    batch = parse_cost_file(data, cost_defaults("bing", "cpc"))
    assert batch.problems == []
    assert _tuples(batch) == MICROSOFT_ROWS
    assert len(batch.skipped) == 11  # 9 report lines, the total, the copyright line
    assert [(s.line, s.reason) for s in batch.skipped[-2:]] == [
        (16, "a total line"),
        (17, "a note, not a row of the table"),
    ]
    assert batch.notes == ()  # 11/13/2026 tells the order
    assert batch.totals() == {"USD": 113105}


def test_meta_ads_export_semicolons_decimal_commas_currency_in_header() -> None:
    data = (DATA / "meta_ads.csv").read_bytes()
    assert not data.startswith(codecs.BOM_UTF8)
    batch = parse_cost_file(data, cost_defaults("facebook", "paid_social"))
    assert batch.problems == []
    assert _tuples(batch) == META_ROWS
    assert batch.columns["cost"] == "Amount spent (EUR)"
    assert batch.totals() == {"EUR": 235496}
    assert batch.period == (date(2026, 11, 1), date(2026, 11, 2))


# Encodings and separators

PLAIN = (
    "date,utm_source,utm_medium,utm_campaign,cost,currency,utm_term,utm_content,impressions,clicks\n"
    "2026-11-01,google,cpc,Spring Sale,12.30,EUR,shoes,banner,1000,40\n"
    "2026-11-02,newsletter,email,Spring Sale,0.5,USD,,,,\n"
)
PLAIN_ROWS = [
    (2, date(2026, 11, 1), "google", "cpc", "Spring Sale", "shoes", "banner", 1230, "EUR",
     1000, 40),
    (3, date(2026, 11, 2), "newsletter", "email", "Spring Sale", "", "", 50, "USD", None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode("utf-8"),
        lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
        lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
        lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
        lambda t: t.encode("utf-16-le"),  # no BOM
        lambda t: t.replace("\n", "\r\n").encode("utf-8"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le", "crlf"],
)
def test_encodings(encode) -> None:
    batch = parse_cost_file(encode(PLAIN), CostDefaults())
    assert batch.problems == [] and _tuples(batch) == PLAIN_ROWS


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_separators(separator) -> None:
    batch = parse_cost_file(PLAIN.replace(",", separator), CostDefaults())
    assert batch.problems == [] and _tuples(batch) == PLAIN_ROWS


def test_headers_ignore_case_spaces_and_unknown_columns() -> None:
    text = (
        "  CAMPAIGN NAME ;Reporting Starts;Campaign ID;SPEND;Currency;Impr.;Link Clicks\n"
        "Spring;2026-11-01;123;10,00;eur;5;1\n"
    )
    batch = parse_cost_file(text, cost_defaults("meta", "paid"))
    assert batch.problems == []
    assert _tuples(batch) == [
        (2, date(2026, 11, 1), "meta", "paid", "Spring", "", "", 1000, "EUR", 5, 1)
    ]


def test_file_columns_beat_defaults_and_defaults_fill_the_gaps() -> None:
    text = "Day,Campaign,Cost,utm_source\n2026-11-01,A,1,bing\n2026-11-02,B,2,\n"
    batch = parse_cost_file(text, cost_defaults("google", "cpc", "chf"))
    assert [(r.source, r.medium, r.currency) for r in batch.rows] == [
        ("bing", "cpc", "CHF"),
        ("google", "cpc", "CHF"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xe9t\xe9,2026\n", "not UTF-8 text"),
        ("Campaign report\nfoo,bar\n1,2\n", "No header row found"),
        ("Day,Campaign\n2026-11-01,A\n", "No header row found"),
        ("Day,Campaign,Cost,COST\n2026-11-01,A,1,2\n", "Two columns give cost: 'Cost'"),
    ],
)
def test_unreadable_files(data, message) -> None:
    with pytest.raises(CostFileError, match=message):
        parse_cost_file(data, GOOGLE)


# Numbers and dates as exported


@pytest.mark.parametrize(
    ("text", "mark", "places", "amount"),
    [
        ("1234.56", None, 2, "1234.56"),
        ("1,234.56", None, 2, "1234.56"),
        ("1.234,56", None, 2, "1234.56"),
        ("1 234,56", None, 2, "1234.56"),
        ("1\u202f234,56", None, 2, "1234.56"),  # narrow no-break space (French)
        ("1\u00a0234.5", None, 2, "1234.5"),
        ("1'234.50", None, 2, "1234.50"),  # Swiss
        ("12,3", None, 2, "12.3"),
        ("€12.30", None, 2, "12.30"),
        ("12,30 €", None, 2, "12.30"),
        ("$1,061.20", None, 2, "1061.20"),
        ("EUR 12.30", None, 2, "12.30"),
        ("12.30 USD", None, 2, "12.30"),
        ("1,234", None, 2, "1234"),  # EUR cannot have three decimals
        ("1.234", None, 0, "1234"),  # a count
        ("1,234,567", None, 0, "1234567"),
        ("1.234", ",", 2, "1234"),  # the file writes decimal commas
        ("1,234", ",", 3, "1.234"),
        ("1,234", ".", 3, "1234"),
        ("0", None, 2, "0"),
        ("+5", None, 2, "5"),
    ],
)
def test_read_number(text, mark, places, amount) -> None:
    value, negative = read_number(text, mark, places)
    assert value == Decimal(amount) and str(value) == amount and negative is False


@pytest.mark.parametrize("text", ["-12.30", "(12.30)", "12.30-", "\u221212,30", "-€5"])
def test_read_number_negative(text) -> None:
    assert read_number(text, None, 2)[1] is True


@pytest.mark.parametrize(
    ("text", "mark", "places", "message"),
    [
        ("abc", None, 2, "is not a number"),
        ("12.30.1", None, 2, "out of place"),
        ("1,23,456.00", None, 2, "out of place"),
        ("1 234.567,00", None, 2, "mixes thousands separators"),
        ("1,234", None, 3, "could be a thousand"),  # KWD has three decimals
        ("12.30", ",", 2, "out of place"),
        ("1.234,56", ".", 2, "decimal comma, but the file's other numbers have a decimal point"),
        ("2026-11-01", None, 2, "is not a number"),
        ("--", None, 2, "is not a number"),
    ],
)
def test_read_number_refuses(text, mark, places, message) -> None:
    with pytest.raises(ValueFormatError, match=message):
        read_number(text, mark, places)


@pytest.mark.parametrize(
    ("text", "day_first", "day"),
    [
        ("2026-11-01", None, date(2026, 11, 1)),
        ("2026/11/01", None, date(2026, 11, 1)),
        ("01.11.2026", None, date(2026, 11, 1)),
        ("1.11.2026", None, date(2026, 11, 1)),
        ("11/1/2026", False, date(2026, 11, 1)),
        ("1/11/2026", True, date(2026, 11, 1)),
        ("11/13/2026", None, date(2026, 11, 13)),
        ("13/11/2026", None, date(2026, 11, 13)),
        ("Nov 1, 2026", None, date(2026, 11, 1)),
        ("November 1, 2026", None, date(2026, 11, 1)),
        ("1 Nov 2026", None, date(2026, 11, 1)),
        ("Sun, Nov 1, 2026", None, date(2026, 11, 1)),
    ],
)
def test_read_day(text, day_first, day) -> None:
    assert read_day(text, day_first) == day


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-02-30", "is not a date that exists"),
        ("11/1/26", "four digits"),
        ("1/2/2026", "could be day first or month first"),
        ("yesterday", "is not a date"),
        ("1999-12-31", "before 2000"),
    ],
)
def test_read_day_refuses(text, message) -> None:
    with pytest.raises(ValueFormatError, match=message):
        read_day(text, None)


def test_slash_dates_take_the_order_the_file_shows() -> None:
    head = "Date,Campaign,Cost,Currency\n"
    day_first = parse_cost_file(head + "1/11/2026,A,1,EUR\n13/11/2026,A,1,EUR\n", GOOGLE)
    assert [r.day for r in day_first.rows] == [date(2026, 11, 1), date(2026, 11, 13)]
    assert day_first.notes == ("Dates such as 1/11/2026 are read day first (1 November 2026).",)
    undecided = parse_cost_file(head + "11/1/2026,A,1,EUR\n11/2/2026,A,1,EUR\n", GOOGLE)
    assert [r.day for r in undecided.rows] == [date(2026, 11, 1), date(2026, 11, 2)]
    assert "read month first" in undecided.notes[0]
    mixed = parse_cost_file(
        head + "13/11/2026,A,1,EUR\n11/14/2026,A,1,EUR\n1/2/2026,B,1,EUR\n", GOOGLE
    )
    assert [(p.row, p.field) for p in mixed.problems] == [(4, "date")]


def test_decimal_mark_is_the_files() -> None:
    """1.234 is a thousand and 234 where the file's costs show decimal commas, and 1.234
    (three decimals) where they show points."""
    head = "Date,Campaign,Cost,Currency\n"
    commas = parse_cost_file(head + '2026-11-01,A,"12,50",KWD\n2026-11-02,A,1.234,KWD\n', GOOGLE)
    assert [r.cost_minor for r in commas.rows] == [12500, 1234000]
    points = parse_cost_file(head + "2026-11-01,A,12.50,KWD\n2026-11-02,A,1.234,KWD\n", GOOGLE)
    assert [r.cost_minor for r in points.rows] == [12500, 1234]


# Validation: every row, every field


def test_every_bad_row_is_listed_by_row_and_field() -> None:
    text = "\n".join(
        [
            "date,utm_source,utm_medium,utm_campaign,cost,currency,impressions,clicks",
            "2026-11-01,google,cpc,Good,1.00,EUR,10,1",
            "2026-13-01,google,cpc,Bad date,1.00,EUR,,",
            "2026-11-01,google,cpc,Bad number,1.0x,EUR,,",
            "2026-11-01,google,cpc,Bad currency,1.00,EUX,,",
            "2026-11-01,google,cpc,Negative,-5.00,EUR,,",
            "2026-11-01,google,cpc,Too large,1000000000001,EUR,,",
            "2026-11-01,google,cpc,,1.00,EUR,,",
            "2026-11-01,google,cpc,Decimals,1.005,EUR,,",
            "2026-11-01,google,cpc,Counts,1.00,EUR,1.5,-2",
            "EUR,google,cpc,Mixed up,2026-11-01,1.00,,",
            "2026-11-01,google,cpc,Too many,1.00,EUR,1,1,extra",
            "2026-11-01,google,cpc,good,2.00,EUR,,",
            "2099-01-01,google,cpc,Future,1.00,EUR,,",
            "",
        ]
    )
    batch = parse_cost_file(text, CostDefaults())
    not_currency = "is not an ISO 4217 currency code (e.g. EUR, USD): is the column right?"
    assert _problems(batch) == [
        (3, "date", "'2026-13-01' is not a date that exists"),
        (4, "cost", "'1.0x' is not a number"),
        (5, "currency", f"'EUX' {not_currency}"),
        (6, "cost", "must not be negative"),
        (7, "cost", "must not be over 1,000,000,000,000"),
        (8, "utm_campaign", "is missing: every row needs its campaign"),
        (9, "cost", "more decimals than EUR has (2); round it first"),
        (10, "impressions", "1.5 is not a whole number"),
        (10, "clicks", "must not be negative"),
        (11, "date", "'EUR' is not a date: write it as 2026-11-01 (or as the ad platform "
                     "exports it: 11/1/2026, 01.11.2026, Nov 1, 2026)"),
        (11, "currency", f"'1.00' {not_currency}"),
        (11, "cost", "'2026-11-01' is not a number"),
        (12, "columns", "9 values but the header has 8 columns: are the columns mixed up, or "
                        "is a value's separator not quoted?"),
        (13, "row", "the same day, source, medium, campaign, term and content as row 2: "
                    "export without other breakdowns (device, network...), or give each its "
                    "utm_term or utm_content"),
        (14, "date", "2099-01-01 is in the future: is the date right?"),
    ]  # fmt: skip
    assert [r.campaign for r in batch.rows] == ["Good"]
    assert not batch.ok


def test_missing_source_medium_and_currency_name_the_option() -> None:
    batch = parse_cost_file("Day,Campaign,Cost\n2026-11-01,A,1.00\n", CostDefaults())
    assert _problems(batch) == [
        (2, "utm_source", "is missing: add a utm_source column, or give a default source "
                          "(--source ...)"),
        (2, "utm_medium", "is missing: add a utm_medium column, or give a default medium "
                          "(--medium ...)"),
        (2, "currency", "is missing: add a currency column, or give the file's currency "
                        "(--currency EUR)"),
    ]  # fmt: skip


def test_header_currency_must_agree_with_a_currency_column() -> None:
    text = "Day;Campaign;Amount spent (EUR);Currency\n2026-11-01;A;1,00;USD\n2026-11-02;A;1,00;\n"
    batch = parse_cost_file(text, GOOGLE)
    assert _problems(batch) == [(2, "currency", "the row says USD but the cost column is in EUR")]
    assert [(r.row, r.currency) for r in batch.rows] == [(3, "EUR")]


def test_meta_rows_must_cover_one_day() -> None:
    text = (
        "Reporting starts,Reporting ends,Campaign name,Amount spent (USD)\n"
        "2026-11-01,2026-11-30,Spring,100.00\n"
    )
    batch = parse_cost_file(text, GOOGLE)
    assert _problems(batch) == [
        (2, "date", "the row covers 2026-11-01 to 2026-11-30: export with a breakdown by day "
                    "(one row per day)")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"currency": "euro"}, "currency"),
        ({"source": "x" * 256}, "source"),
        ({"medium": "c\tpc"}, "medium"),
    ],
)
def test_bad_defaults(args, field) -> None:
    with pytest.raises(CostError) as caught:
        cost_defaults(**args)
    assert caught.value.field == field


def test_row_key_compares_tags_trimmed_and_case_folded() -> None:
    day = date(2026, 11, 1)
    key = row_key(day, "Google", "CPC", " Spring Sale ", "", "")
    assert key == row_key(day, "google", "cpc", "spring sale", "", "")
    assert len(key) == 64
    assert key != row_key(day, "google", "cpc", "spring sale", "shoes", "")
    assert key != row_key(date(2026, 11, 2), "google", "cpc", "spring sale", "", "")


# Storage (both databases)


@pytest.fixture
def site(db: Database) -> Site:
    with db.session() as session:
        return add_site(session, SITE)


def _stored(db: Database) -> list[tuple[Any, ...]]:
    with db.session() as session:
        rows = session.scalars(select(AdCost).order_by(AdCost.day, AdCost.campaign, AdCost.term))
        return [
            (r.day, r.source, r.medium, r.campaign, r.term, r.content, r.campaign_label,
             r.cost_minor, r.currency, r.impressions, r.clicks)
            for r in rows
        ]  # fmt: skip


def test_store_replaces_on_reimport_and_sets_the_site_currency(db, site) -> None:
    batch = parse_cost_file((DATA / "google_ads.csv").read_bytes(), GOOGLE)
    with db.session() as session:
        first = store_costs(session, site, batch.rows)
    assert (first.imported, first.replaced, first.site_currency) == (5, 0, "EUR")
    stored = _stored(db)
    assert stored == [
        (date(2026, 11, 1), "google", "cpc", "brand", "", "", "Brand", 4510, "EUR", 980, 77),
        (date(2026, 11, 1), "google", "cpc", "spring sale", "", "", "Spring Sale", 123456, "EUR",
         12345, 321),
        (date(2026, 11, 2), "google", "cpc", "brand", "", "", "Brand", 0, "EUR", 0, 0),
        (date(2026, 11, 2), "google", "cpc", "spring sale", "", "", "Spring Sale", 110000, "EUR",
         11002, 298),
        (date(2026, 11, 3), "google", "cpc", "spring sale", "", "", "Spring Sale", 1230, "EUR",
         None, None),
    ]  # fmt: skip
    with db.session() as session:
        again = store_costs(session, site, batch.rows)
    assert (again.imported, again.replaced, again.site_currency) == (5, 5, "")
    assert _stored(db) == stored

    # Another spelling of a stored day and campaign replaces it; the label follows.
    respelt = parse_cost_file(
        "Day,Campaign,Cost,Currency\n2026-11-03, SPRING sale,20.00,EUR\n2026-11-04,New,1,EUR\n",
        GOOGLE,
    )
    with db.session() as session:
        third = store_costs(session, site, respelt.rows)
    assert (third.imported, third.replaced) == (2, 1)
    after = _stored(db)
    assert len(after) == 6
    day, *tags, label, cost, currency = after[4][:9]
    assert (day, tags, label, cost, currency) == (
        date(2026, 11, 3),
        ["google", "cpc", "spring sale", "", ""],
        "SPRING sale",
        2000,
        "EUR",
    )
    with db.session() as session:
        assert find_site(session, SITE).currency == "EUR"


def test_site_currency_is_kept_once_set(db, site) -> None:
    with db.session() as session:
        session.get(Site, site.id).currency = "CHF"
    batch = parse_cost_file((DATA / "microsoft_ads.csv").read_bytes(), cost_defaults("bing", "cpc"))
    with db.session() as session:
        assert store_costs(session, site, batch.rows).site_currency == ""
        assert find_site(session, SITE).currency == "CHF"


def test_many_rows_store_in_chunks(db, site) -> None:
    lines = ["date,utm_source,utm_medium,utm_campaign,cost,currency"]
    lines += [f"2026-{m:02d}-{d:02d},g,cpc,c{n},{n}.01,EUR" for m in (9, 10) for d in range(1, 29)
              for n in range(12)]  # fmt: skip
    batch = parse_cost_file("\n".join(lines), CostDefaults())
    assert batch.ok and len(batch.rows) == 672
    with db.session() as session:
        assert store_costs(session, site, batch.rows).replaced == 0
    with db.session() as session:
        assert store_costs(session, site, batch.rows).replaced == 672
        assert session.scalar(select(func.count()).select_from(AdCost)) == 672


def test_summary_per_month_and_campaign(db, site) -> None:
    text = "\n".join(
        [
            "date,utm_source,utm_medium,utm_campaign,cost,currency,utm_term",
            "2026-10-30,google,cpc,Spring Sale,1.00,EUR,",
            "2026-11-01,google,cpc,Spring Sale,10.00,EUR,",
            "2026-11-03,google,cpc,spring sale,5.50,EUR,shoes",
            "2026-11-02,bing,cpc,Spring Sale,7.25,USD,",
            "2026-11-02,google,cpc,Brand,3.00,EUR,",
        ]
    )
    with db.session() as session:
        store_costs(session, site, parse_cost_file(text, CostDefaults()).rows)
        summary = cost_summary(session, site)
    assert [
        (m.month, m.campaign, m.rows, m.first_day, m.last_day, m.cost, m.last_of_month)
        for m in summary
    ] == [
        (date(2026, 11, 1), "brand", 1, date(2026, 11, 2), date(2026, 11, 2), {"EUR": 300},
         date(2026, 11, 30)),
        (date(2026, 11, 1), "spring sale", 3, date(2026, 11, 1), date(2026, 11, 3),
         {"EUR": 1550, "USD": 725}, date(2026, 11, 30)),
        (date(2026, 10, 1), "spring sale", 1, date(2026, 10, 30), date(2026, 10, 30),
         {"EUR": 100}, date(2026, 10, 31)),
    ]  # fmt: skip
    assert summary[1].label in ("Spring Sale", "spring sale")


def test_list_and_delete(db, site) -> None:
    batch = parse_cost_file((DATA / "google_ads.csv").read_bytes(), GOOGLE)
    with db.session() as session:
        store_costs(session, site, batch.rows)
        other = add_site(session, "other.example")
        store_costs(session, other, batch.rows)
    with db.session() as session:
        listed = list_costs(session, site, date(2026, 11, 2), date(2026, 11, 3))
        assert [(r.day, r.campaign, r.cost_minor) for r in listed] == [
            (date(2026, 11, 2), "brand", 0),
            (date(2026, 11, 2), "spring sale", 110000),
            (date(2026, 11, 3), "spring sale", 1230),
        ]
        spring = " SPRING SALE"  # compared as utm_key
        assert delete_costs(session, site, date(2026, 11, 2), date(2026, 11, 3), spring) == 2
        assert delete_costs(session, site, date(2026, 11, 1), date(2026, 11, 1)) == 2
        with pytest.raises(CostError, match="ends"):
            delete_costs(session, site, date(2026, 11, 2), date(2026, 11, 1))
    with db.session() as session:
        assert [(r.day, r.campaign) for r in list_costs(session, site, date(2026, 1, 1),
                                                        date(2026, 12, 31))] == [
            (date(2026, 11, 2), "brand")
        ]  # fmt: skip
        assert len(list_costs(session, other, date(2026, 1, 1), date(2026, 12, 31))) == 5


def test_deleting_a_site_deletes_its_cost_rows(db, site) -> None:
    batch = parse_cost_file((DATA / "google_ads.csv").read_bytes(), GOOGLE)
    with db.session() as session:
        other = add_site(session, "other.example")
        store_costs(session, site, batch.rows)
        store_costs(session, other, batch.rows[:2])
    with db.session() as session:
        delete_site(session, find_site(session, SITE))
    with db.session() as session:
        assert [r.site_id for r in session.scalars(select(AdCost))] == [other.id, other.id]


# The CLI


def _cli(args: list[str], env: dict[str, Any]) -> Any:
    result = CliRunner().invoke(cli, args, env=env, prog_name="tracker")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def env(database_url, tmp_path) -> dict[str, Any]:
    environ = {
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_DATA_DIR": str(tmp_path / "data"),
        "TRACKER_CONFIG": None,
    }
    assert _cli(["sites", "add", SITE], environ).exit_code == 0
    return environ


def _count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(AdCost)) or 0


def test_cli_import_list_delete(env, db) -> None:
    google = str(DATA / "google_ads.csv")
    args = ["costs", "import", google, "--site", SITE, "--source", "google", "--medium", "cpc"]
    dry = _cli([*args, "--dry-run"], env)
    assert dry.exit_code == 0, dry.stderr
    assert "Dry run, nothing stored: would import 5 rows, 0 of them replacing" in dry.stdout
    assert _count(db) == 0

    first = _cli(args, env)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines() == [
        "Checked 5 cost rows of google_ads.csv (skipped 5 title, total and note lines).",
        "Imported 5 rows, 0 of them replacing stored rows.",
        "Period: 2026-11-01 to 2026-11-03",
        "Total: 2391.96 EUR",
        "The site's currency is now EUR.",
    ]
    assert "Checking" in first.stderr and "Storing" in first.stderr  # the progress bars
    again = _cli(args, env)
    assert "Imported 5 rows, 5 of them replacing stored rows." in again.stdout
    assert _count(db) == 5

    meta = ["costs", "import", str(DATA / "meta_ads.csv"), "--site", SITE,
            "--source", "facebook", "--medium", "paid_social"]  # fmt: skip
    assert _cli(meta, env).exit_code == 0
    listed = _cli(["costs", "list", "--site", SITE], env).stdout.splitlines()
    assert listed[0].split() == ["MONTH", "CAMPAIGN", "ROWS", "DAYS", "COST"]
    assert [line.split() for line in listed[1:]] == [
        ["2026-11", "Brand", "2", "2026-11-01", "to", "2026-11-02", "45.10", "EUR"],
        ["2026-11", "Retargeting", "1", "2026-11-02", "to", "2026-11-02", "12.50", "EUR"],
        ["2026-11", "Spring", "Sale", "6", "2026-11-01", "to", "2026-11-03", "4689.32", "EUR"],
    ]

    deleted = _cli(["costs", "delete", "--site", SITE, "--from", "2026-11-02", "--to",
                    "2026-11-03", "--campaign", "spring sale"], env)  # fmt: skip
    assert deleted.exit_code == 0
    assert deleted.stdout.strip() == (
        "Deleted 3 cost rows of campaign 'spring sale' from 2026-11-02 to 2026-11-03."
    )
    assert _count(db) == 6
    everything = ["costs", "delete", "--site", SITE, "--from", "2026-01-01", "--to", "2026-12-31"]
    assert "Deleted 6 cost rows from" in _cli(everything, env).stdout
    assert "No ad spend stored." in _cli(["costs", "list", "--site", SITE], env).stdout


def test_cli_bad_rows_store_nothing_and_exit_1(env, db, tmp_path) -> None:
    path = tmp_path / "spend.csv"
    path.write_text(
        "Day,Campaign,Cost,Currency\n2026-11-01,A,1.00,EUR\n2026-11-31,B,2.00,EUR\n"
        "2026-11-02,C,-3.00,EUR\n2026-11-02,D,3.00,XYZ\n"
    )
    result = _cli(["costs", "import", str(path), "--site", SITE, "--source", "google",
                   "--medium", "cpc"], env)  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-4:] == [
        "Nothing imported: 3 problem(s) in spend.csv; fix them and import the file again.",
        "  row 3, date: '2026-11-31' is not a date that exists",
        "  row 4, cost: must not be negative",
        "  row 5, currency: 'XYZ' is not an ISO 4217 currency code (e.g. EUR, USD): is the "
        "column right?",
    ]
    assert result.stdout == ""
    assert _count(db) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--currency", "euro"], "The default currency 'euro' is not an ISO 4217 code"),
        (["--site", "missing.example"], "no site 'missing.example'"),
    ],
)
def test_cli_one_line_errors(env, args, message) -> None:
    site = [] if "--site" in args else ["--site", SITE]
    result = _cli(["costs", "import", str(DATA / "meta_ads.csv"), *site, *args], env)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_unreadable_file(env, tmp_path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("Campaign report\nnothing useful\n")
    result = _cli(["costs", "import", str(path), "--site", SITE], env)
    assert result.exit_code == 1
    assert "report.csv: No header row found" in result.stderr


@pytest.mark.parametrize("args", [["costs"], ["costs", "import"], ["costs", "list"],
                                  ["costs", "delete"]])  # fmt: skip
def test_cli_help(args) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"], env={})
    assert result.exit_code == 0 and "Usage:" in result.stdout
