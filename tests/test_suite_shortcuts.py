"""The test suite's own shortcuts (tests/shortcuts.py, tests/helpers.openapi_spec) keep what
they shorten working: URL building, compiled templates and SQL shared between apps, logins
with cheaply hashed passwords, the OpenAPI document loaded once."""

from __future__ import annotations

import shutil
import uuid

import pytest
from flask import url_for
from sqlalchemy import event, select
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter, Map, Rule

from tests.helpers import add_user, csrf_token, openapi_spec
from tests.shortcuts import TEST_PASSWORD_HASH
from tracker import accounts
from tracker.accounts import find_user
from tracker.db.models import Site
from tracker.sites import add_site


def test_apps_share_compiled_url_builders_and_build_their_own_urls(make_app):
    first, second = make_app(), make_app()
    builders = {(rule.rule, rule.endpoint): rule._build for rule in first.url_map.iter_rules()}
    for rule in second.url_map.iter_rules():
        # The same function, bound to each app's own rule.
        assert rule._build.__func__ is builders[rule.rule, rule.endpoint].__func__
        assert rule._build.__self__ is rule
    for app in (first, second):
        with app.test_request_context():
            assert url_for("static", filename="a b.css") == "/assets/a%20b.css"
            assert url_for("stats.report", domain="x.example", key="pages", period="7d") == (
                "/sites/x.example/reports/pages?period=7d"
            )
            assert url_for("export.site_export", domain="x.example", table="events") == (
                "/sites/x.example/export/events.csv"
            )
            assert url_for(
                "site_settings.move_goal_view", domain="x.example", goal_id=3, direction="up"
            ) == ("/sites/x.example/settings/goals/3/move/up")


def test_apps_share_parsed_url_rules_and_match_with_their_own_converters(make_app):
    first, second = make_app(), make_app()
    parts = {(rule.rule, rule.endpoint): rule._parts for rule in first.url_map.iter_rules()}
    for rule in second.url_map.iter_rules():
        assert rule._parts == parts[rule.rule, rule.endpoint]
        assert all(c.map is second.url_map for c in rule._converters.values())
    for app in (first, second):
        adapter = app.url_map.bind("localhost")
        assert adapter.match("/sites/x.example/settings/goals/3/move/up", method="POST") == (
            "site_settings.move_goal_view",
            {"domain": "x.example", "goal_id": 3, "direction": "up"},
        )


def test_the_same_rule_text_under_other_converters_is_parsed_again():
    class LowerCaseOnly(BaseConverter):
        regex = "[a-z]+"  # a part of the parsed rule

    plain = Map([Rule("/a/<name>", endpoint="a")])
    lower = Map([Rule("/a/<name>", endpoint="a")], converters={"default": LowerCaseOnly})
    assert plain.bind("localhost").match("/a/B") == ("a", {"name": "B"})
    with pytest.raises(NotFound):
        lower.bind("localhost").match("/a/B")


def test_users_get_the_cheap_password_hash_and_log_in_with_it(app, db):
    add_user(db, "ann@example.com", "right password")
    with db.session() as session:
        user = find_user(session, "ann@example.com")
        assert user is not None
        assert user.password_hash.startswith(TEST_PASSWORD_HASH + "$")
    client = app.test_client()
    for password, status in (("wrong password", 400), ("right password", 302)):
        response = client.post(
            "/login",
            data={
                "csrf_token": csrf_token(client, "/login"),
                "email": "ann@example.com",
                "password": password,
            },
        )
        assert response.status_code == status
    # An unknown address is checked against a hash of the same (cheap) work factor.
    assert accounts._dummy_hash().startswith(TEST_PASSWORD_HASH + "$")


def test_apps_share_compiled_templates(make_app, monkeypatch):
    first, second = make_app(), make_app()
    expected = first.test_client().get("/login", follow_redirects=True)
    assert expected.status_code == 200
    compiled: list[str | None] = []
    compile_template = second.jinja_env.compile

    def counting_compile(source, name=None, *args, **kwargs):
        compiled.append(name)
        return compile_template(source, name, *args, **kwargs)

    monkeypatch.setattr(second.jinja_env, "compile", counting_compile)
    page = second.test_client().get("/login", follow_redirects=True)
    assert page.status_code == 200 and "<form" in page.get_data(as_text=True)
    assert compiled == []  # the first app's code, loaded
    # A template whose source differs from the cached code's is compiled again.
    # (The source is new to this process: another test ran this one on another database.)
    marker = uuid.uuid4().hex
    second.jinja_env.loader.get_source = lambda env, name: (f"{{{{ 1 + 1 }}}} {marker}", None, None)
    assert second.jinja_env.get_template("other.html").render() == f"2 {marker}"
    assert compiled == ["other.html"]


def test_engines_share_compiled_statements_and_read_their_own_database(
    make_app, tmp_path, sqlite_template
):
    first = make_app().extensions["tracker.db"]
    if first.is_sqlite:  # another file
        shutil.copy(sqlite_template, tmp_path / "second.db")
        second = make_app(database_url=f"sqlite:///{tmp_path / 'second.db'}")
    else:  # the test's one database, through another engine
        second = make_app()
    second_db = second.extensions["tracker.db"]
    hits = []

    def note_hit(conn, cursor, statement, parameters, context, executemany):
        hits.append((statement.split()[0], context.cache_hit))

    for db, domain in ((first, "first.example"), (second_db, "second.example")):
        event.listen(db.engine, "after_cursor_execute", note_hit)
        with db.session() as session:
            add_site(session, domain)
    # The ORM's statements too (its INSERT is kept per mapper): the second add_site finds
    # what the first compiled.
    second_half = hits[len(hits) // 2 :]
    assert ("INSERT", second_db.engine.dialect.CACHE_HIT) in second_half
    assert {hit for _, hit in second_half} == {second_db.engine.dialect.CACHE_HIT}
    domains = select(Site.domain).order_by(Site.domain)
    answers = []
    for db in (first, second_db):
        assert db.engine._compiled_cache is first.engine._compiled_cache
        with db.engine.connect() as conn:
            result = conn.execute(domains)
            answers.append((result.scalars().all(), result.context.cache_hit))
    # The second engine found the statement compiled, and each read its own database.
    assert answers[1][1] == second_db.engine.dialect.CACHE_HIT
    if first.is_sqlite:
        assert [rows for rows, _ in answers] == [["first.example"], ["second.example"]]
    else:
        assert [rows for rows, _ in answers] == [["first.example", "second.example"]] * 2


def test_the_openapi_document_is_loaded_once_per_process(client):
    spec = openapi_spec(client)
    assert openapi_spec(client) is spec
    assert "/api/v1/stats/aggregate" in spec.spec / "paths"
