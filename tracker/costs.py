"""Ad spend: validating cost rows, storing them, listing what is stored, deleting.

A cost row is what one campaign (or one of its ad groups or ads) cost on one day: `date,
utm_source, utm_medium, utm_campaign, cost, currency`, optionally `utm_term, utm_content,
impressions, clicks`. Rows come from an ad platform's CSV export (tracker/cost_csv.py
reads its columns and formats), the settings page (the same files) or the API (JSON), and
all go through `check_rows` and `store_costs`. Defaults (`--source google --medium cpc`,
a currency) fill what a file has no column for.

Every row is checked and every problem listed by row and field; a batch with any problem
stores nothing. The UTM fields are stored trimmed and case-folded (`utm_key`), as visits
are matched to cost by them; `row_key` hashes the day and the five fields, so importing
the same row again replaces it. Amounts are integers of the currency's minor units
(tracker/money.py), never floats, never converted.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, extract, func, insert, select
from sqlalchemy.orm import Session

from tracker.cost_csv import CostFileError as CostFileError  # callers catch it from here
from tracker.cost_csv import (
    CostTable,
    Formats,
    Skipped,
    ValueFormatError,
    decode,
    find_formats,
    read_day,
    read_number,
    read_table,
)
from tracker.db.models import AdCost, Site
from tracker.money import (
    MoneyError,
    check_amount,
    currency_code,
    minor_digits,
    parse_amount,
    to_minor,
)
from tracker.text import has_control
from tracker.utm import utm_key

TEXT_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
FIELDS = ("date", *TEXT_FIELDS, "cost", "currency", "impressions", "clicks")
REQUIRED_TEXT = ("utm_source", "utm_medium", "utm_campaign")
MAX_TEXT = 255  # the columns' length
MAX_COUNT = 10**12  # impressions or clicks of one row; more is a mixed-up column
MAX_API_ROWS = 10_000
CHUNK = 500  # rows per statement: under SQLite's and PostgreSQL's parameter limits
EMPTY_VALUES = ("", "--", "-")  # Google Ads writes "--" for a value it does not have
FUTURE_DAYS = 1  # a platform's "today" can be tomorrow in UTC
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # not 20261101 or 2026-W44-7


class CostError(ValueError):
    """A problem with an import's settings (a default source, medium or currency, a
    period to delete); `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Problem:
    """What is wrong with one row: its number (the file's line, or the API's 1-based
    position in `rows`) and the field."""

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}"


@dataclass(frozen=True)
class CostDefaults:
    """What applies where a row has no value: checked by `cost_defaults`."""

    source: str = ""
    medium: str = ""
    currency: str = ""


@dataclass(frozen=True)
class CostRow:
    """One valid cost row; the UTM fields as given (trimmed)."""

    row: int
    day: date
    source: str
    medium: str
    campaign: str
    term: str
    content: str
    cost_minor: int
    currency: str
    impressions: int | None = None
    clicks: int | None = None

    @property
    def key(self) -> str:
        return row_key(self.day, self.source, self.medium, self.campaign, self.term, self.content)


@dataclass(frozen=True)
class CampaignTotal:
    """A campaign's rows and cost in one currency, in a batch (the preview) or stored."""

    campaign: str  # as given in the batch's first row of it
    currency: str
    cost_minor: int
    rows: int


@dataclass
class CostBatch:
    """The rows of one file or request, checked: `problems` empty means it can be stored."""

    rows: list[CostRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # field -> the file's column

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.problems

    @property
    def period(self) -> tuple[date, date] | None:
        days = [r.day for r in self.rows]
        return (min(days), max(days)) if days else None

    def totals(self) -> dict[str, int]:
        """Cost per currency, in minor units, largest first."""
        sums: Counter[str] = Counter()
        for row in self.rows:
            sums[row.currency] += row.cost_minor
        return dict(sums.most_common())

    def campaigns(self) -> list[CampaignTotal]:
        """Each campaign's cost per currency, largest first."""
        groups: dict[tuple[str, str], list[CostRow]] = {}
        for row in self.rows:
            groups.setdefault((utm_key(row.campaign), row.currency), []).append(row)
        totals = [
            CampaignTotal(rows[0].campaign, currency, sum(r.cost_minor for r in rows), len(rows))
            for (_key, currency), rows in groups.items()
        ]
        return sorted(totals, key=lambda t: (-t.cost_minor, t.campaign.casefold()))


@dataclass(frozen=True)
class Stored:
    """What `store_costs` did: rows written, how many of them replaced stored rows, and
    the currency the site was given ("" when it had one)."""

    imported: int
    replaced: int
    site_currency: str = ""


def row_key(day: date, source: str, medium: str, campaign: str, term: str, content: str) -> str:
    """SHA-256 (hex) of the day and the five fields as compared (`utm_key`): the same day
    and tags, spelt any way, are the same row."""
    parts = [day.isoformat(), *(utm_key(v) for v in (source, medium, campaign, term, content))]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def cost_defaults(source: str = "", medium: str = "", currency: str = "") -> CostDefaults:
    """The defaults of an import, checked: CostError naming the one at fault."""
    for name, value in (("source", source), ("medium", medium)):
        problem = _text_problem(value)
        if problem:
            raise CostError(name, f"The default {name} {problem}.")
    code = currency_code(currency) if currency.strip() else ""
    if code is None:
        raise CostError(
            "currency",
            f"The default currency {currency.strip()[:20]!r} is not an ISO 4217 code "
            "(e.g. EUR, USD).",
        )
    return CostDefaults(source.strip(), medium.strip(), code)


def _text_problem(value: str) -> str:
    """Why a tag value cannot be stored, or ""."""
    if len(value.strip()) > MAX_TEXT:
        return f"is longer than {MAX_TEXT} characters"
    if has_control(value):
        return "must not contain control characters (tabs, line breaks)"
    return ""


# Reading one row. Values are text from a file, or JSON values from the API (`strict`:
# amounts as money.parse_amount reads them everywhere else, days as YYYY-MM-DD).


@dataclass(frozen=True)
class _Reader:
    formats: Formats
    strict: bool
    header_currency: str = ""


class _RowProblems(Exception):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueFormatError("must be a string")
    return str(value).strip()


def _day(reader: _Reader, value: Any) -> date:
    text = _text(value)
    if not text:
        raise ValueFormatError("is required")
    if reader.strict:
        day = iso_day(text)
        if day is None:
            raise ValueFormatError(f"{text[:40]!r} is not a date written YYYY-MM-DD")
    else:
        day = read_day(text, reader.formats.day_first)
    if day > datetime.now(UTC).date() + timedelta(days=FUTURE_DAYS):
        raise ValueFormatError(f"{day.isoformat()} is in the future: is the date right?")
    return day


def _currency(reader: _Reader, value: Any, default: str) -> str:
    text = _text(value)
    code = currency_code(text) if text else (reader.header_currency or default)
    if code is None:
        raise ValueFormatError(
            f"{text[:20]!r} is not an ISO 4217 currency code (e.g. EUR, USD): is the column right?"
        )
    if not code:
        raise ValueFormatError(
            "is missing: add a currency column, or give the file's currency (--currency EUR)"
        )
    if text and reader.header_currency and code != reader.header_currency:
        raise ValueFormatError(
            f"the row says {code} but the cost column is in {reader.header_currency}"
        )
    return code


def _amount(reader: _Reader, value: Any, places: int) -> Decimal:
    """A cost, exact, checked by money's rules (not negative, not too large)."""
    if reader.strict and isinstance(value, Decimal | int) and not isinstance(value, bool):
        if not Decimal(value).is_finite():
            raise ValueFormatError("must be a finite number")
        return check_amount(Decimal(value))
    text = _text(value)
    if text in EMPTY_VALUES:
        raise ValueFormatError("is required")
    if reader.strict:
        return parse_amount(text)
    amount, negative = read_number(text, reader.formats.decimal_mark, places)
    if negative and amount:
        raise MoneyError("must not be negative")
    return check_amount(amount)


def _count(reader: _Reader, value: Any) -> int | None:
    """Impressions or clicks: a whole number, or None when the row has none."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        text = _text(value)
        if text in EMPTY_VALUES:
            return None
        try:
            number, negative = read_number(text, reader.formats.decimal_mark, 0)
        except (ValueFormatError, InvalidOperation):
            raise ValueFormatError(f"{text[:40]!r} is not a whole number") from None
        if negative and number:
            raise ValueFormatError("must not be negative")
    if number < 0:
        raise ValueFormatError("must not be negative")
    if number != number.to_integral_value():
        raise ValueFormatError(f"{number} is not a whole number")
    if number > MAX_COUNT:
        raise ValueFormatError(f"must not be over {MAX_COUNT:,}: is the column right?")
    return int(number)


def _tags(values: Mapping[str, Any], defaults: CostDefaults) -> dict[str, str]:
    """The five tags, defaults filled in; _RowProblems listing every bad one."""
    fallback = {"utm_source": defaults.source, "utm_medium": defaults.medium}
    tags, problems = {}, []
    for name in TEXT_FIELDS:
        try:
            text = _text(values.get(name)) or fallback.get(name, "")
        except ValueFormatError as exc:
            problems.append((name, str(exc)))
            continue
        problem = _text_problem(text) or (_missing(name) if not text else "")
        if problem:
            problems.append((name, problem))
        tags[name] = text
    if problems:
        raise _RowProblems(problems)
    return tags


def _missing(name: str) -> str:
    if name == "utm_campaign":
        return "is missing: every row needs its campaign"
    if name in REQUIRED_TEXT:
        option = name.removeprefix("utm_")
        return f"is missing: add a {name} column, or give a default {option} (--{option} ...)"
    return ""


def _check_row(
    reader: _Reader, number: int, values: Mapping[str, Any], defaults: CostDefaults
) -> CostRow:
    """One row, valid; _RowProblems naming every bad field."""
    problems: list[tuple[str, str]] = []
    checked: dict[str, Any] = {}

    def attempt(name: str, read: Callable[[], Any]) -> None:
        try:
            checked[name] = read()
        except (ValueFormatError, MoneyError) as exc:
            problems.append((name, str(exc)))
        except _RowProblems as exc:
            problems.extend(exc.problems)

    attempt("date", lambda: _day(reader, values.get("date")))
    attempt("tags", lambda: _tags(values, defaults))
    attempt("currency", lambda: _currency(reader, values.get("currency"), defaults.currency))
    places = minor_digits().get(checked.get("currency", ""), 2)
    attempt("cost", lambda: _amount(reader, values.get("cost"), places))
    if "cost" in checked and "currency" in checked:
        attempt("cost", lambda: to_minor(checked.pop("cost"), checked["currency"]))
    attempt("impressions", lambda: _count(reader, values.get("impressions")))
    attempt("clicks", lambda: _count(reader, values.get("clicks")))
    if "date_end" in values and "date" in checked:
        attempt("date", lambda: _same_day(reader, checked["date"], values["date_end"]))
    if problems:
        raise _RowProblems(problems)
    tags = checked["tags"]
    return CostRow(
        row=number,
        day=checked["date"],
        source=tags["utm_source"],
        medium=tags["utm_medium"],
        campaign=tags["utm_campaign"],
        term=tags["utm_term"],
        content=tags["utm_content"],
        cost_minor=checked["cost"],
        currency=checked["currency"],
        impressions=checked["impressions"],
        clicks=checked["clicks"],
    )


def _same_day(reader: _Reader, start: date, end_value: Any) -> date:
    """Meta's "Reporting starts" / "Reporting ends": a row must cover one day."""
    end = _day(reader, end_value) if _text(end_value) else start
    if end != start:
        raise ValueFormatError(
            f"the row covers {start.isoformat()} to {end.isoformat()}: export with a "
            "breakdown by day (one row per day)"
        )
    return start


def check_rows(
    records: Iterable[tuple[int, Mapping[str, Any]]],
    defaults: CostDefaults,
    *,
    formats: Formats | None = None,
    header_currency: str = "",
    on_row: Callable[[], None] | None = None,
) -> CostBatch:
    """Every record checked: the valid rows, and every problem by row and field. Two rows
    of the same day and tags are a problem (they would replace each other). `formats`: how
    a file writes numbers and dates (`check_table` finds them); None reads the API's JSON
    strictly, amounts as money.parse_amount and days as YYYY-MM-DD."""
    reader = _Reader(formats or Formats(decimal_mark="."), formats is None, header_currency)
    batch = CostBatch(notes=reader.formats.notes)
    seen: dict[str, int] = {}
    for number, values in records:
        if on_row is not None:
            on_row()
        try:
            row = _check_row(reader, number, values, defaults)
        except _RowProblems as exc:
            batch.problems.extend(Problem(number, name, message) for name, message in exc.problems)
            continue
        if row.key in seen:
            batch.problems.append(Problem(number, "row", _duplicate(seen[row.key])))
            continue
        seen[row.key] = number
        batch.rows.append(row)
    return batch


def _duplicate(first: int) -> str:
    return (
        f"the same day, source, medium, campaign, term and content as row {first}: export "
        "without other breakdowns (device, network...), or give each its utm_term or "
        "utm_content"
    )


def read_cost_file(data: bytes | str) -> CostTable:
    """The records of an ad platform's CSV export (or a file of the fields above), not yet
    checked; CostFileError when the file cannot be read at all."""
    return read_table(decode(data) if isinstance(data, bytes) else data)


def check_table(
    table: CostTable, defaults: CostDefaults, *, on_row: Callable[[], None] | None = None
) -> CostBatch:
    """A file's records checked, read in the number and date formats its values show."""
    formats = find_formats(
        (values.get("cost", "") for _line, values in table.records),
        (values.get("date", "") for _line, values in table.records),
    )
    batch = check_rows(
        table.records,
        defaults,
        formats=formats,
        header_currency=table.header_currency,
        on_row=on_row,
    )
    batch.problems.extend(Problem(line, "columns", message) for line, message in table.problems)
    batch.problems.sort(key=lambda p: p.row)
    batch.skipped = table.skipped
    batch.columns = table.columns
    return batch


def parse_cost_file(data: bytes | str, defaults: CostDefaults) -> CostBatch:
    """The checked cost rows of a CSV file; CostFileError when it cannot be read at all."""
    return check_table(read_cost_file(data), defaults)


def parse_cost_json(rows: Any) -> CostBatch:
    """The API's `rows`: a list of objects with the fields above (cost a decimal string
    or a JSON number, date YYYY-MM-DD). Row numbers count from 1."""
    if not isinstance(rows, list) or not rows:
        return CostBatch(problems=[Problem(0, "rows", "must be a non-empty JSON array")])
    if len(rows) > MAX_API_ROWS:
        message = f"at most {MAX_API_ROWS:,} rows a request (got {len(rows):,}); send several"
        return CostBatch(problems=[Problem(0, "rows", message)])
    shape_problems = [
        problem for number, item in enumerate(rows, 1) for problem in _shape(number, item)
    ]
    records = [(n, item) for n, item in enumerate(rows, 1) if isinstance(item, dict)]
    batch = check_rows(records, CostDefaults())
    batch.problems.extend(shape_problems)
    batch.problems.sort(key=lambda p: p.row)
    return batch


def _shape(number: int, item: Any) -> list[Problem]:
    if not isinstance(item, dict):
        return [Problem(number, "row", "must be a JSON object")]
    return [
        Problem(number, str(name)[:40], f"is not a field of a cost row ({', '.join(FIELDS)})")
        for name in item
        if name not in FIELDS
    ]


# Storage


def _stored_keys(session: Session, site_id: int, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        query = select(AdCost.row_key).where(AdCost.site_id == site_id, AdCost.row_key.in_(chunk))
        found.update(session.scalars(query))
    return found


def count_replaced(session: Session, site: Site, rows: Sequence[CostRow]) -> int:
    """How many of `rows` would replace stored rows (a dry run's or preview's count)."""
    return len(_stored_keys(session, site.id, [r.key for r in rows]))


def _values(site_id: int, row: CostRow, now: datetime) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "row_key": row.key,
        "day": row.day,
        "source": utm_key(row.source),
        "medium": utm_key(row.medium),
        "campaign": utm_key(row.campaign),
        "term": utm_key(row.term),
        "content": utm_key(row.content),
        "campaign_label": row.campaign,
        "cost_minor": row.cost_minor,
        "currency": row.currency,
        "impressions": row.impressions,
        "clicks": row.clicks,
        "imported_at": now,
    }


def store_costs(
    session: Session,
    site: Site,
    rows: Sequence[CostRow],
    *,
    on_stored: Callable[[int], None] | None = None,
) -> Stored:
    """Store checked rows in the session's transaction: a row whose day and tags are
    stored already replaces it. A site without a currency gets the rows' (the most used)."""
    keys = [r.key for r in rows]
    stored = _stored_keys(session, site.id, keys)
    replaced = [k for k in keys if k in stored]
    for start in range(0, len(replaced), CHUNK):
        chunk = replaced[start : start + CHUNK]
        session.execute(delete(AdCost).where(AdCost.site_id == site.id, AdCost.row_key.in_(chunk)))
    now = datetime.now(UTC)
    for start in range(0, len(rows), CHUNK):
        chunk_rows = rows[start : start + CHUNK]
        session.execute(insert(AdCost), [_values(site.id, r, now) for r in chunk_rows])
        if on_stored is not None:
            on_stored(len(chunk_rows))
    return Stored(len(rows), len(replaced), _give_currency(session, site, rows))


def _give_currency(session: Session, site: Site, rows: Sequence[CostRow]) -> str:
    record = session.get(Site, site.id)
    if record is None or record.currency or not rows:
        return ""
    record.currency = Counter(r.currency for r in rows).most_common(1)[0][0]
    return record.currency


# What is stored


@dataclass(frozen=True)
class MonthCosts:
    """A campaign's stored rows in one month: cost per currency (minor units)."""

    month: date  # its first day
    campaign: str  # utm_key
    label: str  # as imported
    rows: int
    first_day: date
    last_day: date
    cost: dict[str, int]

    @property
    def last_of_month(self) -> date:
        following = (self.month + timedelta(days=32)).replace(day=1)
        return following - timedelta(days=1)


def cost_summary(session: Session, site: Site) -> list[MonthCosts]:
    """What is stored, per month and campaign: newest month first, then by campaign."""
    year, month = extract("year", AdCost.day), extract("month", AdCost.day)
    query = (
        select(
            year.label("year"),
            month.label("month"),
            AdCost.campaign,
            AdCost.currency,
            func.max(AdCost.campaign_label).label("label"),
            func.count().label("rows"),
            func.min(AdCost.day).label("first_day"),
            func.max(AdCost.day).label("last_day"),
            func.sum(AdCost.cost_minor).label("cost"),
        )
        .where(AdCost.site_id == site.id)
        .group_by(year, month, AdCost.campaign, AdCost.currency)
    )
    groups: dict[tuple[date, str], list[Any]] = {}
    for part in session.execute(query):
        groups.setdefault((date(int(part.year), int(part.month), 1), part.campaign), []).append(
            part
        )
    summary = [_month_costs(month, campaign, parts) for (month, campaign), parts in groups.items()]
    return sorted(summary, key=lambda s: (-s.month.toordinal(), s.label.casefold()))


def _month_costs(month: date, campaign: str, parts: list[Any]) -> MonthCosts:
    """One month and campaign from its rows per currency."""
    return MonthCosts(
        month=month,
        campaign=campaign,
        label=max(p.label for p in parts),
        rows=sum(p.rows for p in parts),
        first_day=min(p.first_day for p in parts),
        last_day=max(p.last_day for p in parts),
        cost={p.currency: int(p.cost) for p in sorted(parts, key=lambda p: -int(p.cost))},
    )


def list_costs(session: Session, site: Site, start: date, end: date) -> list[AdCost]:
    """The stored rows from `start` to `end` (inclusive), by day and campaign."""
    query = (
        select(AdCost)
        .where(AdCost.site_id == site.id, AdCost.day >= start, AdCost.day <= end)
        .order_by(
            AdCost.day, AdCost.campaign, AdCost.source, AdCost.medium, AdCost.term, AdCost.content
        )
    )
    return list(session.scalars(query))


def iso_day(text: str | None) -> date | None:
    """A day written YYYY-MM-DD, or None."""
    value = (text or "").strip()
    try:
        return date.fromisoformat(value) if ISO_DAY.fullmatch(value) else None
    except ValueError:  # 2026-02-30
        return None


def parse_period(start: str | None, end: str | None) -> tuple[date, date]:
    """`from` and `to` as YYYY-MM-DD, the end not before the start; CostError naming the
    one at fault."""
    first, last = iso_day(start), iso_day(end)
    for name, text, day in (("from", start, first), ("to", end, last)):
        if day is None:
            value = (text or "").strip()[:20]
            raise CostError(name, f"{name}: give a day as YYYY-MM-DD (got {value!r}).")
    assert first is not None and last is not None
    if last < first:
        raise CostError("to", f"to: the period ends ({last}) before it starts ({first}).")
    return first, last


def delete_costs(
    session: Session, site: Site, start: date, end: date, campaign: str | None = None
) -> int:
    """Delete the rows from `start` to `end` (inclusive), of one campaign (compared as
    `utm_key`) or all; how many were deleted."""
    if end < start:
        raise CostError("to", f"to: the period ends ({end}) before it starts ({start}).")
    query = delete(AdCost).where(AdCost.site_id == site.id, AdCost.day.between(start, end))
    if campaign is not None:
        query = query.where(AdCost.campaign == utm_key(campaign))
    result = session.execute(query)
    return int(result.rowcount)  # type: ignore[attr-defined]
