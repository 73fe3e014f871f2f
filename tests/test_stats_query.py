"""Query parsing: URL parameters in, a Query (or a QueryError sentence) out; and back."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tracker.stats import Filter, Query, QueryError, SiteRef, parse_query
from tracker.stats.filters import decode_values, encode_values

SITE = SiteRef(id=1, domain="example.com", timezone="Europe/Paris")
# 23:30 UTC on the 14th is already the 15th in Paris.
NOW = datetime(2026, 3, 14, 23, 30, tzinfo=UTC)


def parse(**args: str) -> Query:
    return parse_query(SITE, args, now=NOW)


def test_defaults() -> None:
    query = parse()
    assert query.period.kind == "30d"
    assert (query.period.start, query.period.end) == (date(2026, 2, 14), date(2026, 3, 15))
    assert query.metrics == ("visitors",)
    assert query.dimensions == ()
    assert query.filters == ()
    assert query.compare is None
    assert query.limit is None and query.offset == 0


def test_keyword_defaults_are_overridden_by_args() -> None:
    query = parse_query(
        SITE, {"period": "7d"}, now=NOW, period="today", metrics=("visits", "pageviews")
    )
    assert query.period.kind == "7d"
    assert query.metrics == ("visits", "pageviews")


def test_full_query() -> None:
    query = parse(
        period="custom",
        **{"from": "2026-01-01", "to": "2026-01-31"},
        metrics="visitors,bounce_rate",
        dimension="source",
        limit="20",
        offset="40",
        order="bounce_rate:asc",
        compare="previous_period",
    )
    assert (query.period.start, query.period.end) == (date(2026, 1, 1), date(2026, 1, 31))
    assert query.dimensions == ("visit:source",)
    assert query.order_by == (("bounce_rate", "asc"),)
    assert (query.limit, query.offset) == (20, 40)
    assert query.compare_period is not None
    assert (query.compare_period.start, query.compare_period.end) == (
        date(2025, 12, 1),
        date(2025, 12, 31),
    )


def test_date_anchors_the_period() -> None:
    query = parse(period="month", date="2025-02-10")
    assert (query.period.start, query.period.end) == (date(2025, 2, 1), date(2025, 2, 28))


def test_property_is_an_alias_of_dimension() -> None:
    assert parse(property="visit:country").dimensions == ("visit:country",)


@pytest.mark.parametrize(
    ("raw", "op", "values"),
    [
        ("Google", "is", ("Google",)),
        ("Google|Bing", "is", ("Google", "Bing")),
        ("!Google", "is_not", ("Google",)),
        ("~goo", "contains", ("goo",)),
        ("~a|b", "contains", ("a", "b")),
        ("\\!bang", "is", ("!bang",)),
        ("a\\|b", "is", ("a|b",)),
        ("back\\\\slash", "is", ("back\\slash",)),
    ],
)
def test_filter_grammar(raw: str, op: str, values: tuple[str, ...]) -> None:
    assert decode_values(raw) == (op, values)
    assert decode_values(encode_values(op, values)) == (op, values)


def test_filters_from_short_and_full_names() -> None:
    query = parse(source="Google", **{"visit:country": "!FR"}, page="~/blog")
    assert set(query.filters) == {
        Filter("visit:source", "is", ("Google",)),
        Filter("visit:country", "is_not", ("FR",)),
        Filter("event:page", "contains", ("/blog",)),
    }


@pytest.mark.parametrize(
    ("flt", "sentence"),
    [
        (Filter("visit:source", "is", ("Google",)), "Source is Google"),
        (Filter("visit:source", "is", ("Google", "Bing")), "Source is Google or Bing"),
        (Filter("visit:country", "is_not", ("FR",)), "Country is not FR"),
        (Filter("event:page", "contains", ("/blog",)), "Page contains /blog"),
        (Filter("visit:utm_campaign", "is", ("spring",)), "UTM campaign is spring"),
    ],
)
def test_filter_sentence(flt: Filter, sentence: str) -> None:
    assert flt.sentence() == sentence


def test_params_round_trip() -> None:
    query = parse(period="7d", date="2026-03-01", source="!Google", compare="year_over_year")
    params = query.params()
    assert params == {
        "period": "7d",
        "date": "2026-03-01",
        "source": "!Google",
        "compare": "year_over_year",
    }
    again = parse_query(SITE, params, now=NOW)
    assert (again.period, again.filters, again.compare) == (
        query.period,
        query.filters,
        query.compare,
    )


def test_add_and_remove_filter_links() -> None:
    query = parse(source="Google", offset="10")
    added = query.with_filter(Filter("visit:country", "is", ("FR",)))
    assert added.params() == {"period": "30d", "source": "Google", "country": "FR"}
    assert added.offset == 0
    assert query.without_filter("visit:source").params() == {"period": "30d"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"period": "fortnight"}, "period: 'fortnight' is not a known period"),
        ({"period": "custom", "from": "2026-01-01"}, "period=custom needs both from and to"),
        (
            {"period": "custom", "from": "2026-02-30", "to": "2026-03-01"},
            "from: '2026-02-30' is not a date",
        ),
        ({"period": "custom", "from": "2026-03-02", "to": "2026-03-01"}, "is after to"),
        ({"date": "yesterday"}, "date: 'yesterday' is not a date"),
        ({"metrics": "visitors,revenue"}, "metrics: 'revenue' is not a known metric"),
        ({"dimension": "visit:shoe_size"}, "dimension: 'visit:shoe_size' is not a known"),
        ({"dimension": "time:day,time:hour"}, "at most one time dimension"),
        ({"compare": "last_decade"}, "compare: 'last_decade' must be one of"),
        ({"limit": "0"}, "limit: '0' is not a whole number from 1 to"),
        ({"limit": "ten"}, "limit: 'ten' is not a whole number"),
        ({"offset": "-1"}, "offset: '-1' is not a whole number"),
        ({"order": "pageviews"}, "order: 'pageviews' is not one of this report's"),
        ({"order": "visitors:up"}, "order: 'up' must be asc or desc"),
        ({"source": "~"}, "source: give a value to filter on"),
    ],
)
def test_query_errors_name_the_parameter(args: dict[str, str], message: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(SITE, args, now=NOW)
    assert message in str(caught.value)


def test_bad_site_time_zone() -> None:
    with pytest.raises(QueryError, match="time zone 'Mars/Olympus' is not known"):
        parse_query(SiteRef(1, "example.com", "Mars/Olympus"), {}, now=NOW)
