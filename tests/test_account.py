"""The account page (issue 18): email, password, other sessions, API keys with scopes."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import add_user, csrf_token
from tracker.db import Database
from tracker.db.models import ApiKey, AuditEntry, User
from tracker.members import VIEWER, add_member
from tracker.sites import add_site

EMAIL, PASSWORD = "ann@example.com", "first password"
SITE = "shop.example"


def _log_in(client: FlaskClient, email: str = EMAIL, password: str = PASSWORD) -> None:
    token = csrf_token(client, "/login")
    answer = client.post("/login", data={"csrf_token": token, "email": email, "password": password})
    assert answer.status_code == 302, answer.get_data(as_text=True)


def _post(client: FlaskClient, path: str, **data: str):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, "/account"), **data})


def _actions(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_account_page_needs_a_login(client: FlaskClient) -> None:
    answer = client.get("/account")
    assert answer.status_code == 302 and "/login" in answer.location


def test_change_password_asks_the_current_one_and_ends_other_sessions(
    app: Flask, db: Database
) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    here, elsewhere = app.test_client(), app.test_client()
    _log_in(here)
    _log_in(elsewhere)
    wrong = _post(here, "/account/password", current="not it", new="second password",
                  confirm="second password")  # fmt: skip
    assert wrong.status_code == 400
    assert "That is not your current password." in wrong.get_data(as_text=True)
    differ = _post(here, "/account/password", current=PASSWORD, new="second password",
                   confirm="other")  # fmt: skip
    assert differ.status_code == 400 and "The new passwords differ." in differ.get_data(True)
    short = _post(here, "/account/password", current=PASSWORD, new="short", confirm="short")
    assert short.status_code == 400
    ok = _post(here, "/account/password", current=PASSWORD, new="second password",
               confirm="second password")  # fmt: skip
    assert ok.status_code == 302 and ok.location.endswith("/account#password")
    assert here.get("/account").status_code == 200  # this browser stays logged in
    assert elsewhere.get("/account").status_code == 302  # the other one is logged out
    fresh = app.test_client()
    token = csrf_token(fresh, "/login")
    old = fresh.post("/login", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD})
    assert old.status_code == 400
    _log_in(fresh, EMAIL, "second password")
    assert _actions(db) == ["account.password"]


def test_wrong_current_passwords_count_toward_the_login_limit(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    client = app.test_client()
    _log_in(client)
    for _ in range(10):  # login_guard.ACCOUNT_FAILURES_PER_HOUR
        answer = _post(client, "/account/email", email="new@example.com", password="guess")
        assert answer.status_code == 400
    limited = _post(client, "/account/email", email="new@example.com", password=PASSWORD)
    assert limited.status_code == 400
    assert "Too many failed logins for this account" in limited.get_data(as_text=True)
    with db.session() as session:
        assert session.scalar(select(User.email)) == EMAIL


def test_change_email_asks_the_password_and_must_be_unused(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    add_user(db, "bob@example.com", "bob's password", admin=False)
    client = app.test_client()
    _log_in(client)
    taken = _post(client, "/account/email", email="BOB@example.com", password=PASSWORD)
    assert taken.status_code == 400
    assert "another account already uses &#39;bob@example.com&#39;" in taken.get_data(True)
    bad = _post(client, "/account/email", email="not an address", password=PASSWORD)
    assert bad.status_code == 400
    ok = _post(client, "/account/email", email="Ann.New@Example.com", password=PASSWORD)
    assert ok.status_code == 302
    assert "You log in as <strong>ann.new@example.com</strong>" in client.get("/account").get_data(
        as_text=True
    )
    fresh = app.test_client()
    _log_in(fresh, "ann.new@example.com", PASSWORD)
    with db.session() as session:
        entry = session.scalars(select(AuditEntry)).one()
    assert (entry.action, entry.detail) == (
        "account.email",
        "Email changed from ann@example.com to ann.new@example.com",
    )


def test_log_out_other_sessions(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    here, elsewhere = app.test_client(), app.test_client()
    _log_in(here)
    _log_in(elsewhere)
    answer = _post(here, "/account/sessions")
    assert answer.status_code == 302
    assert here.get("/account").status_code == 200
    assert elsewhere.get("/account").status_code == 302


def test_api_keys_created_listed_and_revoked_in_the_browser(app: Flask, db: Database) -> None:
    user = add_user(db, EMAIL, PASSWORD, admin=False)
    with db.session() as session:
        add_member(session, add_site(session, SITE), session.get(User, user.id), VIEWER)
    client = app.test_client()
    _log_in(client)
    assert "No API keys yet." in client.get("/account").get_data(as_text=True)
    created = _post(client, "/account/apikeys", name="Weekly <sheet>", scope="read")
    html = created.get_data(as_text=True)
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    assert "Weekly &lt;sheet&gt;" in html and "<sheet>" not in html
    plain = html.split('id="new-key-value" aria-label="New API key" value="')[1].split('"')[0]
    assert plain.startswith("trk_")
    assert plain not in client.get("/account").get_data(as_text=True)  # shown once
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {plain}"}
    assert api.get(f"/api/v1/goals?site_id={SITE}", headers=bearer).status_code == 200
    page = client.get("/account").get_data(as_text=True)
    assert "never" not in page.split('id="api-keys"')[1]  # last used is now
    with db.session() as session:
        key = session.scalars(select(ApiKey)).one()
    assert (key.name, key.scope, key.user_id) == ("Weekly <sheet>", "read", user.id)
    revoked = _post(client, f"/account/apikeys/{key.id}/revoke")
    assert revoked.status_code == 302
    assert api.get(f"/api/v1/goals?site_id={SITE}", headers=bearer).status_code == 401
    assert _actions(db) == ["apikey.create", "apikey.revoke"]


def test_a_key_is_revoked_only_by_its_owner(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    add_user(db, "bob@example.com", "bob's password", admin=False)
    bob = app.test_client()
    _log_in(bob, "bob@example.com", "bob's password")
    _post(bob, "/account/apikeys", name="bob's", scope="write")
    client = app.test_client()
    _log_in(client)
    with db.session() as session:
        key_id = session.scalars(select(ApiKey.id)).one()
    assert _post(client, f"/account/apikeys/{key_id}/revoke").status_code == 404
    with db.session() as session:
        assert session.scalars(select(ApiKey.id)).all() == [key_id]


def test_bad_key_forms_are_refused(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    client = app.test_client()
    _log_in(client)
    unknown = _post(client, "/account/apikeys", name="x", scope="admin")
    assert unknown.status_code == 400 and "Not a valid choice" in unknown.get_data(as_text=True)
    long = _post(client, "/account/apikeys", name="x" * 101, scope="read")
    assert long.status_code == 400
    assert "Field cannot be longer than 100 characters." in long.get_data(as_text=True)
    with db.session() as session:
        assert session.scalars(select(ApiKey)).all() == []
