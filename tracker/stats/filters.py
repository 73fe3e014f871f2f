"""Filters as data: parsed from one URL parameter per dimension, shown as a sentence,
written back to a URL parameter, and compiled to a SQL clause by one function.

URL grammar (value of `?source=...`, `?page=...`):

    Google            is Google
    Google|Bing       is Google or Bing
    !Google           is not Google (`!A|B`: neither A nor B)
    ~goo              contains "goo", case-insensitive (`~a|b`: contains a or b)
    \\!x, a\\|b, \\\\    a literal `!` or `~` at the start, `|` or `\\` anywhere
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, not_, or_

from tracker.stats.dimensions import DIMENSIONS

OPS = ("is", "is_not", "contains")
_PREFIX = {"is_not": "!", "contains": "~", "is": ""}
_VERB = {"is": "is", "is_not": "is not", "contains": "contains"}
_JOIN = {"is": " or ", "is_not": " nor ", "contains": " or "}


@dataclass(frozen=True)
class Filter:
    dimension: str
    op: str
    values: tuple[str, ...]

    @property
    def label(self) -> str:
        return DIMENSIONS[self.dimension].label

    def sentence(self) -> str:
        """For the page: "Source is Google", "Page contains /blog", "Country is not FR"."""
        return f"{self.label} {_VERB[self.op]} {_JOIN[self.op].join(self.values)}"

    def param(self) -> tuple[str, str]:
        """The URL parameter (name, value) that parses back to this filter."""
        return DIMENSIONS[self.dimension].short, encode_values(self.op, self.values)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def encode_values(op: str, values: tuple[str, ...]) -> str:
    text = "|".join(_escape(v) for v in values)
    if op == "is" and text[:1] in ("!", "~"):
        text = "\\" + text
    return _PREFIX[op] + text


def decode_values(raw: str) -> tuple[str, tuple[str, ...]]:
    """(op, values) from a URL parameter value; ValueError if no value is left."""
    op = "is"
    if raw[:1] == "!":
        op, raw = "is_not", raw[1:]
    elif raw[:1] == "~":
        op, raw = "contains", raw[1:]
    values, current, escaped = [], [], False
    for char in raw:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    values.append("".join(current))
    if op == "contains":
        values = [v for v in values if v]
    if not values:
        raise ValueError("no value to filter on")
    return op, tuple(values)


def like_pattern(value: str) -> str:
    """`%value%` with LIKE's own wildcards escaped (ESCAPE '\\')."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def compile_filter(flt: Filter, column: Callable[[str], ColumnElement]) -> ColumnElement[bool]:
    """The WHERE clause for one filter; `column` maps a dimension name to its SQL column."""
    col = column(flt.dimension)
    if flt.op == "contains":
        return or_(*(col.ilike(like_pattern(v), escape="\\") for v in flt.values))
    clause = col == flt.values[0] if len(flt.values) == 1 else col.in_(flt.values)
    return not_(clause) if flt.op == "is_not" else clause


def compile_filters(
    filters: tuple[Filter, ...], column: Callable[[str], ColumnElement]
) -> ColumnElement[bool] | None:
    if not filters:
        return None
    return and_(*(compile_filter(f, column) for f in filters))
