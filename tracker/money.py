"""Money: amounts kept as integers of a currency's minor units, shown as decimal strings.

How many minor units a currency has (EUR 2, JPY 0, KWD 3) comes from ISO 4217
(tracker/data/iso4217.tab). Amounts are never floats and never converted between
currencies.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from importlib import resources


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


def format_minor(minor: int, currency: str) -> str:
    """4250, "EUR" -> "42.50"; 1000, "JPY" -> "1000"."""
    places = minor_digits().get(currency, 2)
    return str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places)))
