"""Money: amounts kept as integers of a currency's minor units, shown as decimal strings.

How many minor units a currency has (EUR 2, JPY 0, KWD 3) comes from ISO 4217
(tracker/data/iso4217.tab). Amounts are never floats and never converted between
currencies. Every amount typed or sent (event revenue, budgets) is read by the rules
below, so "42.50" means the same everywhere.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from importlib import resources

MAX_AMOUNT = Decimal(10) ** 12  # in the currency's major units
MAX_AMOUNT_DIGITS = 40  # a longer amount is a mistake, and costly to check
AMOUNT_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class MoneyError(ValueError):
    """An amount that is not exact money; the message says what is wrong without naming
    the field, which the caller adds ("revenue.amount: must not be negative")."""


@cache
def minor_digits() -> dict[str, int]:
    """ISO 4217 code -> digits after the decimal point, for every active currency."""
    text = resources.files("tracker").joinpath("data/iso4217.tab").read_text("utf-8")
    digits = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            code, places = line.split("\t")[:2]
            digits[code.strip()] = int(places)
    return digits


def currency_code(value: str) -> str | None:
    """`" eur"` -> `"EUR"`; None when it is no active ISO 4217 code."""
    code = value.strip().upper()
    return code if code in minor_digits() else None


def format_minor(minor: int, currency: str) -> str:
    """4250, "EUR" -> "42.50"; 1000, "JPY" -> "1000"."""
    places = minor_digits().get(currency, 2)
    return str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places)))


def parse_amount(text: str) -> Decimal:
    """ "42.50" -> Decimal("42.50"), exactly: digits with an optional decimal point, 0 to
    MAX_AMOUNT. No sign, exponent or thousands separator: "1,000" is a mistake in some
    locales and a decimal comma in others."""
    text = text.strip()
    if text.startswith("-"):
        raise MoneyError("must not be negative")
    if len(text) > MAX_AMOUNT_DIGITS:
        raise MoneyError(f"longer than {MAX_AMOUNT_DIGITS} characters")
    if not AMOUNT_TEXT.fullmatch(text):
        raise MoneyError(
            'must be digits with an optional decimal point, e.g. "42.50" '
            "(no exponent, sign or thousands separator)"
        )
    return check_amount(Decimal(text))


def check_amount(amount: Decimal) -> Decimal:
    """`amount` when it is 0 to MAX_AMOUNT with at most MAX_AMOUNT_DIGITS digits."""
    if len(amount.as_tuple().digits) > MAX_AMOUNT_DIGITS:
        raise MoneyError(f"more than {MAX_AMOUNT_DIGITS} digits")
    if amount < 0:
        raise MoneyError("must not be negative")
    if amount > MAX_AMOUNT:
        raise MoneyError(f"must not be over {MAX_AMOUNT:,}")
    return amount


def to_minor(amount: Decimal, currency: str) -> int:
    """42.5 EUR -> 4250, exactly; MoneyError when the amount has more decimals than the
    currency's minor unit (42.505 EUR): money is not rounded. `amount` is finite."""
    places = minor_digits()[currency]
    _sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite: callers pass checked amounts
    while exponent < 0 and digits and digits[-1] == 0:  # 42.50 has the decimals of 42.5
        digits, exponent = digits[:-1], exponent + 1
    if -exponent > places:
        raise MoneyError(f"more decimals than {currency} has ({places}); round it first")
    return int("".join(map(str, digits)) or "0") * 10 ** (exponent + places)
