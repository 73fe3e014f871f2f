"""Wildcards in `==` / `!=` filter values (Plausible v1): parsed, written back, and matched
by both databases case-sensitively, with `%`, `_`, `?` and `[` always literal."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import add_user, store_events

from tracker.accounts import create_api_key
from tracker.db.models import User
from tracker.sites import find_site
from tracker.stats import Filter, parse_expression, parse_query, run
from tracker.stats.filters import decode_values, encode_values

SITE = "wild.example"
PAGES = ["/blog/post", "/blog_x", "/blogpost", "/Blog/a", "/a_b", "/axb", "/100%off", "/shop"]
SOURCES = ["Google", "Bing", "Bingo", "Google", "Bing", "Bingo", "Google", "Bing"]
NAMES = ["[beta] signup", "signup?", "Signup"]


@pytest.mark.parametrize(
    ("text", "flt"),
    [
        ("event:page==/blog*", Filter("event:page", "matches", ("/blog*",))),
        ("event:page!=/admin*", Filter("event:page", "matches_not", ("/admin*",))),
        ("visit:source==Google|Bing*", Filter("visit:source", "matches", ("Google", "Bing*"))),
        ("visit:source==*oo*", Filter("visit:source", "matches", ("*oo*",))),
        (r"event:page==/a\*b", Filter("event:page", "is", ("/a*b",))),
        (r"event:page==/a\*b*", Filter("event:page", "matches", (r"/a\*b*",))),
        ("event:page~a*", Filter("event:page", "contains", ("a*",))),
    ],
)
def test_parses_and_round_trips_through_the_page_parameter(text: str, flt: Filter) -> None:
    (parsed,) = parse_expression(text)
    assert parsed == flt
    _, value = flt.param()
    assert decode_values(value) == (flt.op, flt.values)


def test_page_parameters_take_wildcards_and_escape_literal_stars() -> None:
    assert decode_values("/blog*") == ("matches", ("/blog*",))
    assert decode_values("!*shop*") == ("matches_not", ("*shop*",))
    assert decode_values(r"/a\*") == ("is", ("/a*",))
    # An exact value holding a star is written back escaped, so it stays exact.
    assert encode_values("is", ("/a*",)) == r"/a\*"
    assert Filter("event:page", "matches_not", ("/a*",)).sentence() == "Page does not match /a*"


@pytest.fixture
def site(app: Flask) -> object:
    events = [
        {"url": f"https://{SITE}{page}?utm_source={source}", "ip": f"198.51.100.{i}"}
        for i, (page, source) in enumerate(zip(PAGES, SOURCES, strict=True))
    ]
    events += [
        {"type": "event", "name": name, "url": f"https://{SITE}/", "ip": "198.51.100.99"}
        for name in NAMES
    ]
    store_events(app, [dict(e, timestamp="2026-03-02T10:00:00Z") for e in events], site=SITE)
    with app.extensions["tracker.db"].session() as session:
        return find_site(session, SITE)


def count(app: Flask, site: object, metric: str, **filters: str) -> int:
    params = {"period": "custom", "from": "2026-03-02", "to": "2026-03-02", **filters}
    query = parse_query(site, {**params, "metrics": metric})
    return run(app.extensions["tracker.db"], query, rollups=False).totals[metric]


@pytest.mark.parametrize(
    ("page", "pageviews"),
    [
        ("/blog*", 3),  # starts with; case-sensitive (/Blog/a is out)
        ("*log*", 4),
        ("!/blog*", 5),  # the other 5 of the 8 pages
        ("/a_b", 1),  # no wildcard: equality
        ("/a_*", 1),  # `_` is literal: /axb is out
        ("*%*", 1),  # `%` is literal
        ("/100%*|/shop", 2),  # alternatives, with and without a wildcard
        (r"/blog\*", 0),  # a literal star
        ("*", 8),
    ],
)
def test_pages_match_on_both_databases(app: Flask, site: object, page: str, pageviews: int) -> None:
    assert count(app, site, "pageviews", page=page) == pageviews


def test_glob_characters_are_literal(app: Flask, site: object) -> None:
    assert count(app, site, "events", event="[beta]*") == 1
    assert count(app, site, "events", event="*?") == 1
    assert count(app, site, "events", event="?*") == 0
    assert count(app, site, "events", event="signup*") == 1  # not Signup


def test_api_filters_with_wildcards(app: Flask, client: FlaskClient, site: object) -> None:
    user = add_user(app.extensions["tracker.db"], "admin@example.com", admin=True)
    with app.extensions["tracker.db"].session() as session:
        _, key = create_api_key(session, session.get(User, user.id))

    def visits(filters: str) -> int:
        response = client.get(
            "/api/v1/stats/aggregate",
            query_string={"site_id": SITE, "period": "custom", "date": "2026-03-02,2026-03-02",
                          "metrics": "visits", "filters": filters},
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert response.status_code == 200, response.get_json()
        return response.get_json()["results"]["visits"]["value"]

    # Sources of the 8 page visits: Google 3, Bing 3, Bingo 2; the custom events': direct.
    assert visits("visit:source==Bing*") == 5
    assert visits("visit:source==Google|Bingo") == 5
    assert visits("visit:source==*o*;event:page==/blog*") == 2  # /blog/post, /blogpost
    assert visits("visit:source!=Bing*") == 4
