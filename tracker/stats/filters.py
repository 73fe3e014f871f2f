"""Filters as data: parsed from one URL parameter per dimension, shown as a sentence,
written back to a URL parameter, and compiled to a SQL clause by one function.

URL grammar (value of `?source=...`, `?page=...`):

    Google            is Google
    Google|Bing       is Google or Bing
    !Google           is not Google (`!A|B`: neither A nor B)
    /blog*, *shop*    matches: `*` stands for any characters (starts with /blog, contains
                      shop); case-sensitive as `is`; `!/blog*` does not match
    ~goo              contains "goo", case-insensitive (`~a|b`: contains a or b)
    \\!x, a\\|b, \\*, \\\\ a literal `!` or `~` at the start, `|`, `*` or `\\` anywhere

A `matches` filter's values are patterns: `*` is the wildcard, `\\*` and `\\\\` a literal star
and backslash. Values with no wildcard mean equality, so `Google|Bing*` is fine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, and_, func, literal, not_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.visitors import InternalTraversal

from tracker.enrich.source import canonical_source
from tracker.stats.dimensions import DIMENSIONS

SOURCE = "visit:source"

OPS = ("is", "is_not", "contains", "matches", "matches_not")
_PREFIX = {"is_not": "!", "contains": "~", "is": "", "matches": "", "matches_not": "!"}
_VERB = {
    "is": "is",
    "is_not": "is not",
    "contains": "contains",
    "matches": "matches",
    "matches_not": "does not match",
}
_JOIN = {
    "is": " or ",
    "is_not": " nor ",
    "contains": " or ",
    "matches": " or ",
    "matches_not": " nor ",
}
# The op a value list takes when one of its values has a wildcard.
_WILD = {"is": "matches", "is_not": "matches_not"}
WILDCARD = "*"


@dataclass(frozen=True)
class Filter:
    dimension: str
    op: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        # Sources are stored canonical (a known name, else case-folded): `?source=Newsletter`
        # and `?source=fb` must find what `utm_source=newsletter` and `utm_source=FB` stored.
        if self.dimension == SOURCE and self.op in ("is", "is_not"):
            object.__setattr__(self, "values", tuple(canonical_source(v) for v in self.values))

    @property
    def label(self) -> str:
        return DIMENSIONS[self.dimension].label

    def sentence(self) -> str:
        """For the page: "Source is Google", "Page contains /blog", "Country is not FR"."""
        return f"{self.label} {_VERB[self.op]} {_JOIN[self.op].join(self.values)}"

    def param(self) -> tuple[str, str]:
        """The URL parameter (name, value) that parses back to this filter."""
        return DIMENSIONS[self.dimension].short, encode_values(self.op, self.values)


def tagged_only(dimensions: tuple[str, ...]) -> tuple[Filter, ...]:
    """The filters a breakdown by `dimensions` adds: no row for visits without an
    optional tag (no campaign, no referrer, no known country)."""
    return tuple(Filter(d, "is_not", ("",)) for d in dimensions if DIMENSIONS[d].optional)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


def encode_values(op: str, values: tuple[str, ...]) -> str:
    if op in ("matches", "matches_not"):
        # Patterns keep their own escapes (\\* and \\\\); only the list separator is added.
        text = "|".join(v.replace("|", "\\|") for v in values)
    else:
        text = "|".join(_escape(v) for v in values)
    if op in ("is", "matches") and text[:1] in ("!", "~"):
        text = "\\" + text
    return _PREFIX[op] + text


def decode_list(raw: str, op: str) -> tuple[str, tuple[str, ...]]:
    """(op, values) of a `|`-separated list with backslash escapes, for `op` "is",
    "is_not" or "contains": an unescaped `*` in an is/is_not list makes it a pattern list."""
    values: list[str] = []  # as plain text
    patterns: list[str] = []  # as patterns (a literal * or \\ escaped)
    value: list[str] = []
    pattern: list[str] = []
    wild = escaped = False
    for char in raw:
        if escaped:
            value.append(char)
            pattern.append("\\" + char if char in ("*", "\\") else char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            values.append("".join(value))
            patterns.append("".join(pattern))
            value, pattern = [], []
        else:
            value.append(char)
            pattern.append(char)
            wild = wild or (char == WILDCARD and op in _WILD)
    if escaped:  # a trailing lone backslash is itself
        value.append("\\")
        pattern.append("\\\\")
    values.append("".join(value))
    patterns.append("".join(pattern))
    if op == "contains":
        values = [v for v in values if v]
    return (_WILD[op], tuple(patterns)) if wild else (op, tuple(values))


def decode_values(raw: str) -> tuple[str, tuple[str, ...]]:
    """(op, values) from a URL parameter value; ValueError if no value is left."""
    op = "is"
    if raw[:1] == "!":
        op, raw = "is_not", raw[1:]
    elif raw[:1] == "~":
        op, raw = "contains", raw[1:]
    op, values = decode_list(raw, op)
    if not values:
        raise ValueError("no value to filter on")
    return op, values


def like_pattern(value: str) -> str:
    """`%value%` with LIKE's own wildcards escaped (ESCAPE '\\')."""
    return f"%{_like_literal(value)}%"


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _glob_literal(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def pattern_parts(pattern: str) -> list[str]:
    """The literal texts between a pattern's wildcards (one part: no wildcard)."""
    parts, current, escaped = [], [], False
    for char in pattern:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == WILDCARD:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


class _matches(ColumnElement[bool]):  # noqa: N801 - a SQL predicate
    """A column matches a wildcard pattern, case-sensitively, on either database: GLOB on
    SQLite (whose LIKE ignores case), LIKE elsewhere; the pattern's other characters are
    escaped for each, so `%`, `_`, `?` and `[` stay literal."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("glob_pattern", InternalTraversal.dp_clauseelement),
        ("like_pattern", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement, parts: list[str]) -> None:
        self.column = column
        self.glob_pattern = literal("*".join(_glob_literal(p) for p in parts), String)
        self.like_pattern = literal("%".join(_like_literal(p) for p in parts), String)


@compiles(_matches)
def _matches_like(element: _matches, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"({column} LIKE {compiler.process(element.like_pattern, **kw)} ESCAPE '\\')"


@compiles(_matches, "sqlite")
def _matches_glob(element: _matches, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"({column} GLOB {compiler.process(element.glob_pattern, **kw)})"


def match_pattern(col: ColumnElement, pattern: str) -> ColumnElement[bool]:
    """`col` matches a pattern whose `*` stands for any characters (`\\*`: a star)."""
    parts = pattern_parts(pattern)
    return col == parts[0] if len(parts) == 1 else _matches(col, parts)


def compile_filter(flt: Filter, column: Callable[[str], ColumnElement]) -> ColumnElement[bool]:
    """The WHERE clause for one filter; `column` maps a dimension name to its SQL column."""
    col = column(flt.dimension)
    if flt.op == "contains":
        return or_(*(col.ilike(like_pattern(v), escape="\\") for v in flt.values))
    if flt.op in ("matches", "matches_not"):
        patterns = flt.values
        if flt.dimension == SOURCE:
            # Unknown sources are stored case-folded and shown in their usual spelling:
            # `Bing*` must find "Bingo" whichever way it was stored.
            col, patterns = func.lower(col), tuple(v.lower() for v in patterns)
        clause = or_(*(match_pattern(col, v) for v in patterns))
        return not_(clause) if flt.op == "matches_not" else clause
    clause = col == flt.values[0] if len(flt.values) == 1 else col.in_(flt.values)
    return not_(clause) if flt.op == "is_not" else clause


class FilterClause(ColumnElement[bool]):
    """One filter's WHERE clause (`clause`), marked with the filter it says (`filter`), so
    that a reader may answer the filter another way: the columnar store answers a page
    filter by the path numbers it keeps (tracker.columnar.engine). The SQL is the clause's."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals = [
        ("clause", InternalTraversal.dp_clauseelement),
        ("filter", InternalTraversal.dp_plain_obj),
    ]

    def __init__(self, flt: Filter, clause: ColumnElement[bool]) -> None:
        self.filter = flt
        self.clause = clause


@compiles(FilterClause)
def _filter_clause(element: FilterClause, compiler: Any, **kw: Any) -> str:
    # Parenthesized as a term of AND needs (an OR of values), as where it stood unmarked.
    return str(compiler.process(element.clause.self_group(against=operators.and_), **kw))


def compile_filters(
    filters: tuple[Filter, ...], column: Callable[[str], ColumnElement]
) -> ColumnElement[bool] | None:
    if not filters:
        return None
    return and_(*(FilterClause(f, compile_filter(f, column)) for f in filters))
