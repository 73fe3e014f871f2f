"""Managing goals and funnels: validation (nothing saved on bad input), order, broken
funnels, the `tracker goals|funnels` commands and the API listing, on both databases."""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from tests.helpers import add_user, openapi_spec
from tracker.accounts import create_api_key
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import Funnel, Goal, Site, User
from tracker.goals import (
    GoalError,
    add_funnel,
    add_goal,
    delete_goal,
    find_goal,
    funnel_problems,
    funnel_step_names,
    goal_label,
    list_goals,
    move_goal,
    pattern_matches,
    rename_goal,
    update_funnel,
)
from tracker.members import OWNER, add_member
from tracker.sites import add_site, delete_site, find_site

SITE = "shop.example"


@pytest.fixture
def site(db: Database) -> Site:
    with db.session() as session:
        return add_site(session, SITE)


def _add(db: Database, **fields: Any) -> Goal:
    with db.session() as session:
        return add_goal(session, find_site(session, SITE), **fields)


def _goal_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Goal)) or 0


BAD_GOALS = [
    ({"name": "", "kind": "page", "pattern": "/x"}, "name", "name is required"),
    ({"name": "   ", "kind": "page", "pattern": "/x"}, "name", "name is required"),
    ({"name": "x" * 121, "kind": "page", "pattern": "/x"}, "name", "at most 120 characters"),
    ({"name": "a\tb", "kind": "page", "pattern": "/x"}, "name", "control characters"),
    ({"name": "G", "kind": "visit", "pattern": "/x"}, "kind", "must be one of page, event"),
    ({"name": "G", "kind": "page", "pattern": ""}, "pattern", "page pattern is required"),
    ({"name": "G", "kind": "page", "pattern": "thank-you"}, "pattern", "must start with /"),
    ({"name": "G", "kind": "page", "pattern": "https://shop.example/x"}, "pattern", "start with /"),
    ({"name": "G", "kind": "page", "pattern": "/x?a=1"}, "pattern", "without ?query"),
    ({"name": "G", "kind": "page", "pattern": "/" + "a" * 500}, "pattern", "at most 500"),
    ({"name": "G", "kind": "page", "pattern": "/a\nb"}, "pattern", "control characters"),
    ({"name": "G", "kind": "page", "pattern": "/a\x00"}, "pattern", "control characters"),
    ({"name": "G", "kind": "page", "pattern": "/a\u2028b"}, "pattern", "control characters"),
    ({"name": "G", "kind": "click", "pattern": ""}, "pattern", "link target pattern is required"),
    ({"name": "G", "kind": "click", "pattern": "*" * 501}, "pattern", "at most 500"),
    ({"name": "G", "kind": "click", "pattern": "*.p\rdf"}, "pattern", "control characters"),
    ({"name": "G", "kind": "event"}, "event_name", "event name is required"),
    ({"name": "G", "kind": "event", "event_name": "x" * 201}, "event_name", "at most 200"),
    ({"name": "G", "kind": "event", "event_name": "Sign\x7fup"}, "event_name", "control"),
    ({"name": "G", "kind": "event", "event_name": "S", "prop_key": "plan"}, "property", "both"),
    ({"name": "G", "kind": "event", "event_name": "S", "prop_value": "pro"}, "property", "both"),
    (
        {"name": "G", "kind": "event", "event_name": "S", "prop_key": "k" * 101, "prop_value": "v"},
        "property",
        "at most 100",
    ),
    ({"name": "G", "kind": "page", "pattern": "/x", "currency": "EURO"}, "currency", "ISO 4217"),
    ({"name": "G", "kind": "page", "pattern": "/x", "currency": "E1R"}, "currency", "ISO 4217"),
    ({"name": "G", "kind": "page", "pattern": "/x", "currency": "€"}, "currency", "ISO 4217"),
    ({"name": "G", "kind": "page", "pattern": "/x", "currency": "ABC"}, "currency", "ISO 4217"),
    ({"name": "G", "kind": "page", "pattern": "/x", "currency": "xxx"}, "currency", "ISO 4217"),
]


@pytest.mark.parametrize(("fields", "field", "message"), BAD_GOALS)
def test_bad_goals_are_refused_naming_the_field(db, site, fields, field, message) -> None:
    with pytest.raises(GoalError, match=re.escape(message)) as caught:
        _add(db, **fields)
    assert caught.value.field == field
    assert _goal_count(db) == 0


def test_goal_names_are_unique_per_site_ignoring_case(db, site) -> None:
    _add(db, name="Signup", kind="event", event_name="Signup")
    with pytest.raises(GoalError, match="already used") as caught:
        _add(db, name=" signup ", kind="page", pattern="/x")
    assert caught.value.field == "name"
    with db.session() as session:
        other = add_site(session, "other.example")
        add_goal(session, other, name="Signup", kind="page", pattern="/x")  # another site: fine
    assert _goal_count(db) == 2


def test_goals_are_cleaned_ordered_and_labelled(db, site) -> None:
    page = _add(db, name=" Thanks ", kind="page", pattern=" /thank-you ", event_name="ignored")
    event = _add(
        db, name="Pro signup", kind="event", event_name="Signup", prop_key="plan",
        prop_value="pro", currency="eur", pattern="/ignored",
    )  # fmt: skip
    click = _add(db, name="Calendly", kind="click", pattern="https://calendly.com/*")
    assert (page.name, page.pattern, page.event_name) == ("Thanks", "/thank-you", "")
    assert (event.pattern, event.currency) == ("", "EUR")
    assert [page.position, event.position, click.position] == [0, 1, 2]
    assert goal_label(page) == "Visit /thank-you"
    assert goal_label(event) == "Event Signup where plan = pro"
    assert goal_label(click) == "Click https://calendly.com/*"
    assert goal_label(_add(db, name="Any signup", kind="event", event_name="Signup")) == (
        "Event Signup"
    )


def test_rename_and_move(db, site) -> None:
    for name in ("A", "B", "C"):
        _add(db, name=name, kind="page", pattern=f"/{name.lower()}")
    with db.session() as session:
        shop = find_site(session, SITE)
        goal_c = find_goal(session, shop, "c")  # found ignoring case
        assert move_goal(session, shop, goal_c, -1) is True
        assert move_goal(session, shop, find_goal(session, shop, "A"), -1) is False  # top
        rename_goal(session, shop, goal_c, "C")  # its own name: fine
        with pytest.raises(GoalError, match="already used"):
            rename_goal(session, shop, goal_c, "b")
        with pytest.raises(GoalError, match="name is required"):
            rename_goal(session, shop, goal_c, " ")
        rename_goal(session, shop, goal_c, " Contact ")
    with db.session() as session:
        shop = find_site(session, SITE)
        assert [g.name for g in list_goals(session, shop)] == ["A", "Contact", "B"]
        assert move_goal(session, shop, find_goal(session, shop, "B"), 1) is False  # bottom
        assert move_goal(session, shop, find_goal(session, shop, "A"), 1) is True
    with db.session() as session:
        assert [g.name for g in list_goals(session, find_site(session, SITE))] == [
            "Contact",
            "A",
            "B",
        ]


def test_funnel_validation(db, site) -> None:
    ids = [_add(db, name=n, kind="page", pattern=f"/{n}").id for n in "abcdefghi"]
    with db.session() as session:
        other = add_site(session, "other.example")
        foreign = add_goal(session, other, name="x", kind="page", pattern="/x").id
    bad = [
        ([ids[0]], "2 to 8 steps"),
        ([], "2 to 8 steps"),
        (ids, "2 to 8 steps (got 9)"),
        ([ids[0], 99999], "Step 2 is not one of this site's goals"),
        ([ids[0], foreign], "Step 2 is not one of this site's goals"),
        ([ids[0], ids[1], ids[1]], "Steps 2 and 3 are the same goal"),
    ]
    with db.session() as session:
        shop = find_site(session, SITE)
        for steps, message in bad:
            with pytest.raises(GoalError, match=re.escape(message)) as caught:
                add_funnel(session, shop, name="F", steps=steps)
            assert caught.value.field == "steps"
        for name, message in (("", "name is required"), ("n" * 121, "at most 120")):
            with pytest.raises(GoalError, match=message):
                add_funnel(session, shop, name=name, steps=ids[:2])
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Funnel)) == 0
        shop = find_site(session, SITE)
        # A goal may come back later in the funnel, just not twice in a row.
        add_funnel(session, shop, name="Loop", steps=[ids[0], ids[1], ids[0]])
        add_funnel(session, shop, name="Longest", steps=ids[:8])
        with pytest.raises(GoalError, match="already used"):
            add_funnel(session, shop, name="loop", steps=ids[:2])


def test_deleting_a_goal_breaks_its_funnels_until_fixed(db, site) -> None:
    a, b, c = (_add(db, name=n, kind="page", pattern=f"/{n}") for n in "abc")
    with db.session() as session:
        shop = find_site(session, SITE)
        funnel = add_funnel(session, shop, name="Checkout", steps=[a.id, b.id, c.id])
        assert funnel_problems(session, funnel) == []
        broken = delete_goal(session, shop, session.get(Goal, b.id))
        assert broken == ["Checkout"]
    with db.session() as session:
        shop = find_site(session, SITE)
        funnel = session.scalar(select(Funnel))
        assert funnel.steps == [a.id, b.id, c.id]  # kept: the page shows what to fix
        assert funnel_problems(session, funnel) == ["Step 2: its goal was deleted."]
        assert funnel_step_names(session, funnel) == ["a", None, "c"]
        with pytest.raises(GoalError, match="Step 2 is not one of this site's goals"):
            update_funnel(session, shop, funnel, name="Checkout", steps=funnel.steps)
        update_funnel(session, shop, funnel, name="Checkout 2", steps=[a.id, c.id])
    with db.session() as session:
        funnel = session.scalar(select(Funnel))
        assert funnel.name == "Checkout 2" and funnel_problems(session, funnel) == []


def test_deleting_a_site_deletes_its_goals_and_funnels(db, site) -> None:
    a, b = (_add(db, name=n, kind="page", pattern=f"/{n}") for n in "ab")
    with db.session() as session:
        add_funnel(session, find_site(session, SITE), name="F", steps=[a.id, b.id])
    with db.session() as session:
        delete_site(session, find_site(session, SITE))
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Funnel)) == 0
    assert _goal_count(db) == 0


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("/thank-you", "/thank-you", True),
        ("/thank-you", "/thank-you/", False),
        ("/order/*/done", "/order/42/done", True),
        ("/order/*/done", "/order/done", False),
        ("/blog*", "/blog", True),
        ("*.pdf", "https://x.example/a.pdf", True),
        ("*.pdf", "https://x.example/a.PDF", False),
        ("/a\\*b", "/a*b", True),
        ("/a\\*b", "/axb", False),
        ("/50%_off", "/50%_off", True),
        ("/50%_off", "/50x-off", False),
    ],
)
def test_pattern_matches(pattern, text, expected) -> None:
    assert pattern_matches(pattern, text) is expected


# The CLI


def _cli(args: list[str], env: dict[str, Any]) -> Any:
    result = CliRunner().invoke(cli, args, env=env, prog_name="tracker")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def env(database_url, tmp_path) -> dict[str, Any]:
    environ = {
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_DATA_DIR": str(tmp_path / "data"),
        "TRACKER_CONFIG": None,
    }
    assert _cli(["sites", "add", SITE], environ).exit_code == 0
    return environ


def test_cli_goals_and_funnels_round_trip(env) -> None:
    site = ["--site", SITE]
    assert "No goals yet" in _cli(["goals", "list", *site], env).stdout
    added = _cli(["goals", "add", *site, "--name", "Thanks", "--page", "/thank-you"], env)
    assert added.exit_code == 0, added.stderr
    assert added.stdout.strip() == "Added goal 'Thanks': Visit /thank-you."
    args = ["--name", "Pro", "--event", "Signup", "--prop", "plan=pro", "--currency", "usd"]
    assert _cli(["goals", "add", *site, *args], env).exit_code == 0
    assert _cli(["goals", "add", *site, "--name", "PDF", "--click", "*.pdf"], env).exit_code == 0
    listed = _cli(["goals", "list", *site], env).stdout.splitlines()
    assert listed[0].split() == ["#", "NAME", "KIND", "COUNTS", "CURRENCY"]
    assert listed[1].split() == ["1", "Thanks", "page", "Visit", "/thank-you", "-"]
    assert "Event Signup where plan = pro" in listed[2] and listed[2].endswith("USD")
    assert "Click *.pdf" in listed[3]

    assert "No funnels yet" in _cli(["funnels", "list", *site], env).stdout
    steps = ["--step", "Thanks", "--step", "pro", "--step", "PDF"]
    funnel = _cli(["funnels", "add", *site, "--name", "Path", *steps], env)
    assert funnel.exit_code == 0, funnel.stderr
    assert "Thanks -> pro -> PDF" in funnel.stdout
    assert "ok" in _cli(["funnels", "list", *site], env).stdout

    deleted = _cli(["goals", "delete", *site, "Pro"], env)
    assert deleted.exit_code == 0
    assert "Funnel 'Path' used it and is now broken" in deleted.stdout
    listed_funnels = _cli(["funnels", "list", *site], env).stdout
    assert "Thanks -> (deleted goal) -> PDF" in listed_funnels
    assert "broken: Step 2: its goal was deleted." in listed_funnels
    assert "Pro" not in _cli(["goals", "list", *site], env).stdout

    assert _cli(["funnels", "delete", *site, "path"], env).exit_code == 0
    assert "No funnels yet" in _cli(["funnels", "list", *site], env).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["goals", "add", "--name", "G", "--page", "thanks"], "must start with /"),
        (["goals", "add", "--name", "G"], "exactly one of --page, --event or --click"),
        (["goals", "add", "--name", "G", "--page", "/a", "--click", "*"], "exactly one of"),
        (["goals", "add", "--name", "G", "--page", "/a", "--prop", "a=b"], "use it with --event"),
        (["goals", "add", "--name", "G", "--event", "S", "--prop", "plan"], "KEY=VALUE"),
        (["goals", "add", "--name", "G", "--event", "S", "--prop", "plan="], "both a key"),
        (["goals", "add", "--name", "G", "--page", "/a", "--currency", "euro"], "ISO 4217"),
        (["goals", "add", "--name", "", "--page", "/a"], "name is required"),
        (["goals", "add", "--name", "G", "--page", "/a\tb"], "control characters"),
        (["goals", "delete", "Nope"], "no goal 'Nope'"),
        (["funnels", "add", "--name", "F", "--step", "Nope", "--step", "X"], "step 1: no goal"),
        (["funnels", "add", "--name", "F", "--step", "Existing"], "2 to 8 steps"),
        (["funnels", "add", "--name", "F", "--step", "Existing", "--step", "existing"], "same"),
        (["funnels", "delete", "Nope"], "no funnel 'Nope'"),
    ],
)
def test_cli_bad_input_is_one_line_error_and_nothing_saved(env, db, args, message) -> None:
    assert _cli(["goals", "add", "--site", SITE, "--name", "Existing", "--page", "/e"], env)
    result = _cli([*args[:2], "--site", SITE, *args[2:]], env)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    with db.session() as session:
        assert [g.name for g in list_goals(session, find_site(session, SITE))] == ["Existing"]
        assert session.scalar(select(func.count()).select_from(Funnel)) == 0


def test_cli_unknown_site(env) -> None:
    result = _cli(["goals", "list", "--site", "missing.example"], env)
    assert result.exit_code == 1 and "no site 'missing.example'" in result.stderr


# The API


@pytest.fixture
def owner(db: Database, site: Site) -> User:
    user = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_member(session, site, user, OWNER)
    return user


@pytest.fixture
def api(app: Flask, client: FlaskClient, db: Database, owner: User):
    """Call the API with the owner's key; every answer is checked against the OpenAPI."""
    with db.session() as session:
        _, key = create_api_key(session, session.get(User, owner.id))
    headers = {"Authorization": f"Bearer {key}"}
    spec = openapi_spec(client)

    def call(method: str, path: str, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("query_string", {"site_id": SITE})
        args = {"path": f"/api/v1/{path}", "method": method, "headers": headers, **kwargs}
        response = client.open(EnvironBuilder(**args))
        # The app read the body of the request it got: validate against an unread twin.
        request = WerkzeugOpenAPIRequest(Request(EnvironBuilder(**args).get_environ()))
        spec.validate_response(request, WerkzeugOpenAPIResponse(response))
        return response

    return call


def test_api_lists_goals_and_funnels(api, db) -> None:
    assert api("GET", "goals").get_json() == {"goals": []}
    assert api("GET", "funnels").get_json() == {"funnels": []}
    thanks = _add(db, name="Thanks", kind="page", pattern="/thank-you")
    pro = _add(
        db, name="Pro", kind="event", event_name="Signup", prop_key="plan", prop_value="pro",
        currency="EUR",
    )  # fmt: skip
    with db.session() as session:
        add_funnel(session, find_site(session, SITE), name="Signup", steps=[thanks.id, pro.id])
    goals = api("GET", "goals").get_json()["goals"]
    assert goals == [
        {"id": thanks.id, "name": "Thanks", "kind": "page", "pattern": "/thank-you",
         "event_name": "", "property": None, "currency": "", "position": 0},
        {"id": pro.id, "name": "Pro", "kind": "event", "pattern": "", "event_name": "Signup",
         "property": {"key": "plan", "value": "pro"}, "currency": "EUR", "position": 1},
    ]  # fmt: skip
    funnels = api("GET", "funnels").get_json()["funnels"]
    assert funnels == [
        {"id": funnels[0]["id"], "name": "Signup", "steps": ["Thanks", "Pro"], "broken": False}
    ]
    assert api("DELETE", f"goals/{pro.id}").get_json() == {
        "deleted": pro.id,
        "broken_funnels": ["Signup"],
    }
    assert api("GET", "funnels").get_json()["funnels"][0] == {
        "id": funnels[0]["id"],
        "name": "Signup",
        "steps": ["Thanks", None],
        "broken": True,
    }
    assert api("DELETE", f"goals/{pro.id}").status_code == 404


def test_api_creates_goals_with_the_same_validation(api, db) -> None:
    created = api(
        "POST",
        "goals",
        json={"name": "Pro", "kind": "event", "event_name": "Signup",
              "property": {"key": "plan", "value": "pro"}, "currency": "eur"},
    )  # fmt: skip
    assert created.status_code == 201
    assert created.get_json()["currency"] == "EUR"
    assert created.get_json()["property"] == {"key": "plan", "value": "pro"}
    # site_id may come in the body too.
    body = {"site_id": SITE, "name": "Thanks", "kind": "page", "pattern": "/thanks"}
    assert api("POST", "goals", json=body, query_string={}).status_code == 201
    bad = [
        ({"name": "X", "kind": "page", "pattern": "thanks"}, "pattern: "),
        ({"name": "X", "kind": "page", "pattern": ""}, "pattern: "),
        ({"name": "X", "kind": "page", "pattern": "/a\u0007"}, "pattern: "),
        ({"name": "X", "kind": "click", "pattern": "x" * 501}, "pattern: "),
        ({"name": "pro", "kind": "page", "pattern": "/x"}, "name: "),
        ({"kind": "page", "pattern": "/x"}, "name: "),
        ({"name": 5, "kind": "page", "pattern": "/x"}, "name: "),
        ({"name": "X", "kind": "goal"}, "kind: "),
        ({"name": "X", "kind": "event"}, "event_name: "),
        ({"name": "X", "kind": "event", "event_name": "S", "property": {"key": "k"}}, "property: "),
        ({"name": "X", "kind": "event", "event_name": "S", "property": "k=v"}, "property: "),
        ({"name": "X", "kind": "page", "pattern": "/x", "currency": "EURO"}, "currency: "),
    ]
    for payload, prefix in bad:
        response = api("POST", "goals", json=payload)
        assert response.status_code == 400, payload
        assert response.get_json()["error"].startswith(prefix), response.get_json()
    assert api("POST", "goals", data="not json").status_code == 400
    assert [g["name"] for g in api("GET", "goals").get_json()["goals"]] == ["Pro", "Thanks"]


def test_api_goals_need_a_key_and_a_site_the_key_can_manage(app, client, api, db) -> None:
    assert client.get("/api/v1/goals", query_string={"site_id": SITE}).status_code == 401
    assert client.post("/api/v1/goals", json={}).status_code == 401
    with db.session() as session:
        add_site(session, "someone-else.example")
    for method in ("GET", "POST"):
        response = api(method, "goals", query_string={"site_id": "someone-else.example"},
                       json={"name": "X", "kind": "page", "pattern": "/x"})  # fmt: skip
        assert response.status_code == 404
    assert _goal_count(db) == 0
