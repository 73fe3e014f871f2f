"""Filter expressions as the Stats API takes them (Plausible's v1 grammar), parsed to Filters.

    visit:source==Google;event:page~/blog;visit:country!=FR|DE

- filters are separated by `;` and all apply (AND);
- `dimension==a|b` is a or b, `dimension!=a|b` neither a nor b, `dimension~text`
  contains text (case-insensitive; `~a|b`: contains a or b);
- in `==` and `!=` values `*` stands for any characters, as in Plausible: `==/blog*`
  starts with /blog, `==*shop*` contains shop (case-sensitive), `!=/admin*` does not;
- `\\|`, `\\;` and `\\*` are a literal `|`, `;` or `*` inside a value, `\\\\` a backslash;
- dimensions are the full names of DIMENSIONS (`visit:source`, `event:page`, ...).
"""

from __future__ import annotations

from tracker.stats.dimensions import DIMENSIONS
from tracker.stats.filters import Filter, decode_list
from tracker.stats.query import QueryError

_OPERATORS = (("!=", "is_not"), ("==", "is"), ("~", "contains"))


def _split(text: str, separator: str) -> list[str]:
    """Split on `separator` except where a backslash escapes it; escapes stay in the parts."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\\\")
    parts.append("".join(current))
    return parts


def _parse_one(text: str) -> Filter:
    found = min(
        ((text.find(token), token, op) for token, op in _OPERATORS if token in text),
        default=None,
    )
    if found is None:
        raise QueryError(
            f"filters: {text!r} has no operator; write dimension==value, "
            "dimension!=value or dimension~value."
        )
    at, token, op = found
    name, raw = text[:at].strip(), text[at + len(token) :]
    dimension = DIMENSIONS.get(name)
    if dimension is None or dimension.is_time:
        known = ", ".join(n for n, d in DIMENSIONS.items() if not d.is_time)
        raise QueryError(f"filters: {name!r} is not a dimension to filter on; use one of {known}.")
    op, values = decode_list(raw, op)
    if not values or (values == ("",) and op not in ("is", "matches")):
        raise QueryError(f"filters: {name} needs a value after {token}.")
    return Filter(dimension.name, op, values)


def parse_expression(text: str) -> tuple[Filter, ...]:
    """Filters from a `filters=` expression; QueryError naming what is wrong."""
    filters = [_parse_one(part) for part in _split(text, ";") if part.strip()]
    seen: set[str] = set()
    for flt in filters:
        if flt.dimension in seen:
            raise QueryError(
                f"filters: {flt.dimension} appears twice; list several values as a|b instead."
            )
        seen.add(flt.dimension)
    return tuple(filters)
