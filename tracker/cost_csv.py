"""Reading ad platforms' CSV exports into cost records: encodings, separators, the header
row among title and total lines, column names, and numbers and dates as exported.

Google Ads, Microsoft Advertising and Meta Ads Manager each name their columns their own
way ("Day" / "Date" / "Reporting starts", "Cost" / "Spend" / "Amount spent (EUR)") and write
numbers and dates in the account's locale ("1,234.56", "1.234,56", "1 234,56"; 2026-11-01,
11/1/2026, 01.11.2026). This module only finds the values and reads their formats;
tracker/costs.py validates a row and stores it, the same way for a file, the page and the
API.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

# Each field and the column names that give it, lower-cased; the first name found in a
# header wins, so an explicit utm_term column beats "Keyword", which beats "Ad group".
# Ad groups / ad sets are utm_term and ads utm_content: the convention of Meta's URL
# parameter builder (utm_term={{adset.name}}, utm_content={{ad.name}}).
COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("date", "day", "gregorian date", "reporting starts"),
    "date_end": ("reporting ends",),
    "utm_source": ("utm_source", "source"),
    "utm_medium": ("utm_medium", "medium"),
    "utm_campaign": ("utm_campaign", "campaign", "campaign name"),
    "utm_term": ("utm_term", "term", "keyword", "ad group", "ad group name", "ad set name"),
    "utm_content": ("utm_content", "content", "ad", "ad name"),
    "cost": ("cost", "spend", "amount spent"),
    "currency": ("currency", "currency code"),
    "impressions": ("impressions", "impr.", "impr"),
    "clicks": ("clicks", "link clicks"),
}
REQUIRED_COLUMNS = ("date", "utm_campaign", "cost")
DELIMITERS = ("\t", ";", ",")
HEADER_SEARCH_LINES = 30  # title lines above the header: Google Ads 2, Microsoft about 10
# "Amount spent (EUR)", "Cost (USD)": the currency of a money column named in its header.
HEADER_CURRENCY = re.compile(r"^(.*?)\s*\(([a-z]{3})\)$")
# Google Ads ("Total: Account", "Total: Campaigns") and Microsoft ("Total") summary lines.
TOTAL_LINE = re.compile(r"^totals?(?::|$)", re.IGNORECASE)
MIN_YEAR = 2000  # an earlier day is a misread date (or a mixed-up column), not ad spend
# Characters only ever used to group thousands: spaces (plain, no-break, narrow, thin) and
# the Swiss apostrophe. They become "_" while a number is read.
GROUP_SPACES = " \u00a0\u202f\u2009'\u2019"
MINUS_SIGNS = "-\u2212"
ISO_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")  # 01.11.2026: always day first
SLASH_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")  # 11/1/2026 or 1/11/2026
SHORT_YEAR = re.compile(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2}")
NAMED_MONTH_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y", "%a, %b %d, %Y")


class CostFileError(ValueError):
    """The file as a whole cannot be read (encoding, no header row, doubled columns)."""


class ValueFormatError(ValueError):
    """One value is not a number or a date; the message says why, without the field."""


@dataclass(frozen=True)
class Column:
    """Where a header gives a field: its index, how preferred its name is (0 best), and
    the currency the name carries ("Amount spent (EUR)")."""

    index: int
    priority: int
    currency: str = ""


@dataclass(frozen=True)
class Skipped:
    """A line that is not a cost row: a title above the header, a total, a note."""

    line: int
    reason: str


@dataclass
class CostTable:
    """The file's cost records by line number, as text keyed by field (COLUMNS)."""

    records: list[tuple[int, dict[str, str]]]
    columns: dict[str, str]  # field -> the header it came from, as written
    header_line: int
    header_currency: str = ""  # "EUR" from "Amount spent (EUR)"
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, message)


@dataclass(frozen=True)
class Formats:
    """How the file writes numbers and slash dates, found over all its rows."""

    decimal_mark: str | None = None  # "." or ","; None: each value tells
    day_first: bool | None = None  # 1/11/2026 is 1 November; None: each value tells
    notes: tuple[str, ...] = ()


def decode(data: bytes) -> str:
    """The text of an export: UTF-8 with or without BOM, or UTF-16 (Google Ads' "Excel
    CSV" is UTF-16 LE with a BOM). Other encodings are refused rather than misread."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return _decode(data[len(bom) :], codec)
    head = data[:200]
    if head.count(0) > len(head) // 4:  # UTF-16 without a BOM: ASCII has a zero byte each
        return _decode(data, "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be")
    return _decode(data, "utf-8")


def _decode(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise CostFileError(
            f"The file is not {codec.upper()} text (byte {exc.start + 1}): save it as "
            '"CSV UTF-8" or export it again from the ad platform.'
        ) from None


def _header_name(cell: str) -> str:
    return " ".join(cell.replace("\ufeff", "").strip().strip('"').lower().split())


def _column(index: int, cell: str) -> tuple[str, Column] | None:
    """The field a header cell names and where; None for a column not used."""
    name, currency = _header_name(cell), ""
    match = HEADER_CURRENCY.match(name)
    if match and match.group(1) in COLUMNS["cost"]:
        name, currency = match.group(1), match.group(2).upper()
    for key, names in COLUMNS.items():
        if name in names:
            return key, Column(index, names.index(name), currency)
    return None


def _header_columns(cells: list[str]) -> dict[str, Column] | None:
    """field -> its column, when `cells` is a header row (it names the required fields)."""
    found: dict[str, Column] = {}
    for index, cell in enumerate(cells):
        named = _column(index, cell)
        if named is None:
            continue
        key, column = named
        other = found.get(key)
        if other is not None and other.priority == column.priority:
            raise CostFileError(
                f"Two columns give {key}: {cells[other.index].strip()!r} (column "
                f"{other.index + 1}) and {cell.strip()!r} (column {index + 1}); remove one."
            )
        if other is None or column.priority < other.priority:
            found[key] = column
    return found if all(key in found for key in REQUIRED_COLUMNS) else None


def _find_header(text: str) -> tuple[str, int, list[str], dict[str, Column]]:
    """(delimiter, line index, header cells, columns) of the first header row found."""
    lines = text.splitlines()[:HEADER_SEARCH_LINES]
    for delimiter in DELIMITERS:
        for index, cells in enumerate(csv.reader(lines, delimiter=delimiter)):
            columns = _header_columns(cells)
            if columns is not None:
                return delimiter, index, cells, columns
    first = next((line.strip() for line in lines if line.strip()), "")
    raise CostFileError(
        "No header row found in the first lines: the file needs columns for the date, the "
        "campaign and the cost (e.g. Day, Campaign, Cost; or date, utm_campaign, cost), "
        f"separated by commas, semicolons or tabs. The first line is {first[:120]!r}."
    )


def read_table(text: str) -> CostTable:
    """The cost records of an export's text, with the lines skipped and why."""
    text = text.lstrip("\ufeff")
    delimiter, header_index, header, columns = _find_header(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    table = CostTable(
        records=[],
        columns={key: header[column.index].strip() for key, column in columns.items()},
        header_line=header_index + 1,
        header_currency=columns["cost"].currency,
    )
    for cells in reader:
        line = reader.line_num
        if line <= header_index + 1:
            if line <= header_index and any(c.strip() for c in cells):
                table.skipped.append(Skipped(line, "above the header row"))
            continue
        _add_record(table, line, cells, len(header), columns)
    return table


def _add_record(
    table: CostTable,
    line: int,
    cells: list[str],
    width: int,
    columns: dict[str, Column],
) -> None:
    filled = [c.strip() for c in cells if c.strip()]
    if not filled:
        return
    if TOTAL_LINE.match(filled[0]):
        table.skipped.append(Skipped(line, "a total line"))
        return
    if len(filled) == 1:  # "©2026 Microsoft Corporation. All rights reserved."
        table.skipped.append(Skipped(line, "a note, not a row of the table"))
        return
    if len(cells) > width and any(c.strip() for c in cells[width:]):
        table.problems.append(
            (
                line,
                f"{len(cells)} values but the header has {width} columns: are the columns "
                "mixed up, or is a value's separator not quoted?",
            )
        )
        return
    values = {
        key: cells[column.index].strip() if column.index < len(cells) else ""
        for key, column in columns.items()
    }
    table.records.append((line, values))


def _number_body(text: str) -> tuple[str, bool]:
    """(digits with "." "," and "_" for spaces, negative) of a number as exported:
    currency symbols, a leading or trailing ISO code, signs and brackets removed."""
    body = text.strip()
    negative = body.startswith("(") and body.endswith(")")
    body = "".join(c for c in body.strip("()") if unicodedata.category(c) != "Sc")
    body = re.sub(r"^[A-Za-z]{3}(?![A-Za-z])|(?<![A-Za-z])[A-Za-z]{3}$", "", body.strip())
    body = body.strip()
    if body and (body[0] in MINUS_SIGNS or body[-1] in MINUS_SIGNS):
        negative = True
        body = body.strip(MINUS_SIGNS).strip()
    body = body.removeprefix("+")
    for space in GROUP_SPACES:
        body = body.replace(space, "_")
    return body, negative


def _mark_vote(body: str) -> str | None:
    """The decimal mark a number shows, or None when it does not tell ("1,234", "12")."""
    dots, commas = body.count("."), body.count(",")
    if dots and commas:
        return "." if body.rfind(".") > body.rfind(",") else ","
    if dots + commas == 0:
        return None
    mark = "." if dots else ","
    if dots + commas > 1:
        return "," if mark == "." else "."  # 1.234.567: the dots group thousands
    return mark if len(body) - body.rfind(mark) - 1 != 3 else None


def _decimal_mark(body: str, file_mark: str | None, places: int) -> str | None:
    """The decimal mark of one number: its own, else the file's; a lone separator before
    three digits ("1,234") groups thousands when the amount cannot have three decimals."""
    dots, commas = body.count("."), body.count(",")
    if dots and commas:
        return "." if body.rfind(".") > body.rfind(",") else ","
    if dots + commas != 1:
        return None
    sign = "." if dots else ","
    if file_mark is not None:
        return sign if sign == file_mark else None
    vote = _mark_vote(body)
    if vote is not None:
        return vote
    if places < 3:
        return None
    raise ValueFormatError(
        f"{body!r} could be a thousand or a number with three decimals: write the decimal "
        "point explicitly"
    )


def read_number(text: str, file_mark: str | None = None, places: int = 0) -> tuple[Decimal, bool]:
    """(amount, negative) of a number as exported: "1.234,56", "1,234.56", "1 234,56",
    "€12.30", "12,30 EUR", "(5.00)". `places` is how many decimals the value may have (the
    currency's; 0 for counts), which settles "1,234"."""
    body, negative = _number_body(text)
    if not body or not re.fullmatch(r"[0-9.,_]+", body) or not re.search(r"[0-9]", body):
        raise ValueFormatError(f"{text.strip()[:40]!r} is not a number")
    mark = _decimal_mark(body, file_mark, places)
    if file_mark is not None and mark is not None and mark != file_mark:
        raise ValueFormatError(
            f"{text.strip()[:40]!r} has a decimal {_mark_name(mark)}, but the file's other "
            f"numbers have a decimal {_mark_name(file_mark)}"
        )
    whole, fraction = body.rsplit(mark, 1) if mark else (body, "")
    if not re.fullmatch(r"[0-9]*", fraction) or (mark and not fraction):
        raise ValueFormatError(f"{text.strip()[:40]!r} is not a number")
    digits = _ungroup(whole, text)
    return Decimal(f"{digits}.{fraction}" if fraction else digits), negative


def _mark_name(mark: str) -> str:
    return "point" if mark == "." else "comma"


def _ungroup(whole: str, text: str) -> str:
    """The digits of the part before the decimal mark, its thousands separators checked."""
    separators = set(whole) - set("0123456789")
    if not separators:
        return whole or "0"
    if len(separators) > 1:
        raise ValueFormatError(f"{text.strip()[:40]!r} mixes thousands separators")
    groups = whole.split(separators.pop())
    if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
        raise ValueFormatError(
            f"{text.strip()[:40]!r} is not a number (a thousands separator is out of place)"
        )
    return "".join(groups)


def read_day(text: str, day_first: bool | None = None) -> date:
    """A day as the platforms export it: 2026-11-01, 01.11.2026, 11/1/2026 (month first
    unless `day_first`), Nov 1, 2026 or 1 November 2026."""
    value = text.strip()
    try:
        if match := ISO_DATE.fullmatch(value):
            year, month, day = (int(g) for g in match.groups())
        elif match := DOTTED_DATE.fullmatch(value):
            day, month, year = (int(g) for g in match.groups())
        elif match := SLASH_DATE.fullmatch(value):
            first, second, year = (int(g) for g in match.groups())
            if _day_first(value, first, second, day_first):
                day, month = first, second
            else:
                day, month = second, first
        else:
            return _named_month_day(value)
        return _checked_day(date(year, month, day))
    except ValueError as exc:
        if isinstance(exc, ValueFormatError):
            raise
        raise ValueFormatError(f"{value[:40]!r} is not a date that exists") from None


def _day_first(value: str, first: int, second: int, day_first: bool | None) -> bool:
    """Whether a slash date is day first: as the file's other dates, else as it shows."""
    if day_first is not None:
        return day_first
    if first > 12 or second > 12:
        return first > 12
    raise ValueFormatError(
        f"{value!r} could be day first or month first, and the file's dates are written "
        "both ways: export them as 2026-11-01"
    )


def _named_month_day(value: str) -> date:
    if SHORT_YEAR.fullmatch(value):
        raise ValueFormatError(f"{value!r}: write the year with four digits (2026-11-01)")
    for form in NAMED_MONTH_FORMATS:
        try:
            return _checked_day(datetime.strptime(value, form).date())
        except ValueError:
            continue
    raise ValueFormatError(
        f"{value[:40]!r} is not a date: write it as 2026-11-01 (or as the ad platform "
        "exports it: 11/1/2026, 01.11.2026, Nov 1, 2026)"
    )


def _checked_day(day: date) -> date:
    if day.year < MIN_YEAR:
        raise ValueFormatError(f"{day.isoformat()} is before {MIN_YEAR}: is the column right?")
    return day


def find_formats(cost_texts: Iterable[str], date_texts: Iterable[str]) -> Formats:
    """The file's decimal mark (from its costs) and slash-date order, where its values
    agree on one; notes say what was assumed."""
    marks: Counter[str] = Counter()
    for text in cost_texts:
        vote = _mark_vote(_number_body(text)[0])
        if vote is not None:
            marks[vote] += 1
    decimal_mark = next(iter(marks)) if len(marks) == 1 else None
    day_first, notes = _slash_order(date_texts)
    return Formats(decimal_mark=decimal_mark, day_first=day_first, notes=notes)


def _slash_order(date_texts: Iterable[str]) -> tuple[bool | None, tuple[str, ...]]:
    slashed = [m for t in date_texts if (m := SLASH_DATE.fullmatch(t.strip()))]
    if not slashed:
        return None, ()
    day_first = any(int(m.group(1)) > 12 for m in slashed)
    month_first = any(int(m.group(2)) > 12 for m in slashed)
    if day_first and month_first:
        return None, ("Dates with slashes are written both day first and month first.",)
    if day_first:
        return True, ("Dates such as 1/11/2026 are read day first (1 November 2026).",)
    if month_first:
        return False, ()
    return False, (
        "Dates such as 11/1/2026 are read month first (November 1, 2026), as Microsoft "
        "Advertising and Google Ads write them in English (US); no day in the file is over "
        "12 to tell. If they are day first, export them as 2026-11-01.",
    )
