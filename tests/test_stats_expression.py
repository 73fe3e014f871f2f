"""The Stats API's `filters=` grammar: expression in, Filters out (or a QueryError naming it)."""

from __future__ import annotations

import pytest

from tracker.stats import Filter, QueryError, parse_expression
from tracker.stats.filters import decode_values


@pytest.mark.parametrize(
    ("text", "filters"),
    [
        ("", ()),
        ("visit:source==Google", (Filter("visit:source", "is", ("Google",)),)),
        ("visit:source==Google|Bing", (Filter("visit:source", "is", ("Google", "Bing")),)),
        ("visit:country!=FR|DE", (Filter("visit:country", "is_not", ("FR", "DE")),)),
        ("event:page~blog", (Filter("event:page", "contains", ("blog",)),)),
        ("event:page~a||b", (Filter("event:page", "contains", ("a", "b")),)),
        ("visit:utm_campaign==", (Filter("visit:utm_campaign", "is", ("",)),)),
        (
            "visit:source==Google;event:page==/blog",
            (Filter("visit:source", "is", ("Google",)), Filter("event:page", "is", ("/blog",))),
        ),
        ("visit:source==Google;", (Filter("visit:source", "is", ("Google",)),)),
        (r"event:name==a\|b|c\;d", (Filter("event:name", "is", ("a|b", "c;d")),)),
        (r"event:name==back\\slash", (Filter("event:name", "is", ("back\\slash",)),)),
        ("event:page==/a==b", (Filter("event:page", "is", ("/a==b",)),)),
        ("event:page==/x~y", (Filter("event:page", "is", ("/x~y",)),)),
        (" visit:os == Linux", (Filter("visit:os", "is", (" Linux",)),)),
    ],
)
def test_parses(text: str, filters: tuple[Filter, ...]) -> None:
    assert parse_expression(text) == filters


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("visit:source", "has no operator"),
        ("visit:source=Google", "has no operator"),
        ("source==Google", "'source' is not a dimension"),
        ("time:day==2026-03-01", "'time:day' is not a dimension"),
        ("visit:source!=", "needs a value"),
        ("event:page~", "needs a value"),
        ("visit:os==Linux;visit:os==Mac", "appears twice"),
    ],
)
def test_errors_name_the_parameter(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as info:
        parse_expression(text)
    assert str(info.value).startswith("filters: ")


def test_round_trips_through_the_page_parameter() -> None:
    # The API hands filters to parse_query as the page's URL parameters.
    for flt in parse_expression(r"event:name==!odd\|one|~x;visit:source~Goo|Bi"):
        _, value = flt.param()
        assert decode_values(value) == (flt.op, flt.values)
