"""The test suite's own shortcuts (tests/shortcuts.py) keep what they
shorten working: URL building shared between apps, and logins with cheaply hashed passwords."""

from __future__ import annotations

from flask import url_for

from tests.helpers import add_user, csrf_token
from tests.shortcuts import TEST_PASSWORD_HASH
from tracker.accounts import find_user


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
