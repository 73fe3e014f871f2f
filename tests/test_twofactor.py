"""Two-factor login (issue 18): enrolling, the code step of logging in, recovery codes, the
login limit counting wrong codes, the server setting for administrators, and the CLI."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import add_user, csrf_token
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import AuditEntry, RecoveryCode, User
from tracker.members import ADMIN, VIEWER, add_member
from tracker.sites import add_site
from tracker.twofactor import TwoFactorError, check_code, confirm, start_enrolment

EMAIL, PASSWORD = "ann@example.com", "first password"
NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _password_step(client: FlaskClient, email: str = EMAIL, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password})


def _code_step(client: FlaskClient, code: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/login/code", data={"csrf_token": csrf_token(client, "/login/code"), "code": code}
    )


def _enrol_on_the_page(client: FlaskClient) -> str:
    """Set up two-factor login on /account/2fa as its user would; the page as first shown."""
    page = client.get("/account/2fa").get_data(as_text=True)
    secret = re.search(r'value="([A-Z2-7]{32})"', page)
    assert secret is not None
    token = csrf_token(client, "/account/2fa")
    code = pyotp.TOTP(secret[1]).now()
    client.post("/account/2fa", data={"csrf_token": token, "code": code, "password": PASSWORD})
    return page


def _enrolled(db: Database, email: str = EMAIL) -> tuple[str, list[str]]:
    """The user's secret and recovery codes, enrolled as the page does it."""
    with db.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        secret = start_enrolment(user)
        # The previous step's code (accepted: a clock a step behind), so that the current
        # one, which a test logs in with, is not yet taken.
        earlier = datetime.now(UTC) - timedelta(seconds=30)
        codes = confirm(session, user, pyotp.TOTP(secret).at(earlier))
    return secret, codes


def test_a_code_confirms_enrolment_and_each_code_works_once(db: Database) -> None:
    user = add_user(db, EMAIL, PASSWORD, admin=False)
    with db.session() as session:
        me = session.get(User, user.id)
        assert me is not None
        secret = start_enrolment(me)
        totp = pyotp.TOTP(secret)
        assert not check_code(session, me, totp.at(NOON))  # not on before it is confirmed
        with pytest.raises(TwoFactorError, match="That code does not match"):
            confirm(session, me, totp.at(NOON - timedelta(minutes=2)), now=NOON)
        codes = confirm(session, me, totp.at(NOON), now=NOON)
        assert len(codes) == 10 and len(set(codes)) == 10
        assert all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", code) for code in codes)
        # The confirming code is taken; so is any of its step or earlier.
        assert not check_code(session, me, totp.at(NOON), now=NOON)
        assert not check_code(session, me, totp.at(NOON - timedelta(seconds=30)), now=NOON)
        later = NOON + timedelta(minutes=1)
        assert check_code(
            session, me, totp.at(later + timedelta(seconds=30)), now=later
        )  # clock ahead
        assert not check_code(session, me, totp.at(later + timedelta(minutes=5)), now=later)
        assert check_code(session, me, codes[0].upper().replace("-", " "), now=later)
        assert not check_code(session, me, codes[0], now=later)
    with db.session() as session:
        stored = list(session.scalars(select(RecoveryCode.code_hash)))
    assert len(stored) == 10 and not any(code in stored for code in codes)  # only digests


def test_login_asks_for_the_code_after_the_password(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    secret, codes = _enrolled(db)
    client = app.test_client()
    assert client.get("/login/code").status_code == 302  # no password step yet
    answer = _password_step(client)
    assert answer.status_code == 302 and answer.location.endswith("/login/code")
    assert client.get("/sites").status_code == 302  # not logged in yet
    wrong = _code_step(client, "000000")
    assert wrong.status_code == 400
    assert "That code is not right, or was used already." in wrong.get_data(as_text=True)
    right = _code_step(client, pyotp.TOTP(secret).now())
    assert right.status_code == 302 and right.location.endswith("/sites")
    assert client.get("/sites").status_code == 200
    assert client.get("/login/code").status_code == 302  # the note is gone

    recovery = app.test_client()
    _password_step(recovery)
    assert _code_step(recovery, codes[3]).status_code == 302
    assert recovery.get("/sites").status_code == 200
    again = app.test_client()
    _password_step(again)
    assert _code_step(again, codes[3]).status_code == 400  # used


def test_wrong_codes_count_toward_the_login_limit(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    secret, _codes = _enrolled(db)
    client = app.test_client()
    _password_step(client)
    for _ in range(10):  # login_guard.ACCOUNT_FAILURES_PER_HOUR
        assert _code_step(client, "123456").status_code == 400
    limited = _code_step(client, pyotp.TOTP(secret).now())
    assert limited.status_code == 429 and limited.headers["Retry-After"]
    assert "Too many failed logins for this account" in limited.get_data(as_text=True)
    assert client.get("/sites").status_code == 302
    # The password step is refused too, right password or not.
    assert _password_step(app.test_client()).status_code == 429


def test_turning_off_and_new_recovery_codes_ask_the_password(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    secret, codes = _enrolled(db)
    client = app.test_client()
    _password_step(client)
    _code_step(client, pyotp.TOTP(secret).now())
    page = client.get("/account").get_data(as_text=True)
    assert "<strong>On.</strong>" in page and "Recovery codes left: <strong>10</strong>" in page
    token = csrf_token(client, "/account")
    wrong = client.post("/account/2fa/disable", data={"csrf_token": token, "password": "x"})
    assert wrong.status_code == 400
    renewed = client.post(
        "/account/2fa/recovery-codes", data={"csrf_token": token, "password": PASSWORD}
    )
    new_codes = re.findall(r"<code>([a-z2-9-]{11})</code>", renewed.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    off = client.post("/account/2fa/disable", data={"csrf_token": token, "password": PASSWORD})
    assert off.status_code == 302
    assert _password_step(app.test_client()).location.endswith("/sites")  # password alone
    with db.session() as session:
        assert session.scalars(select(RecoveryCode)).all() == []
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["account.2fa_codes", "account.2fa_off"]


def test_enrolling_in_the_browser_pages(app: Flask, db: Database) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    client = app.test_client()
    _password_step(client)
    page = client.get("/account/2fa").get_data(as_text=True)
    assert '<svg width="' in page and 'class="segno"' in page and "<img" not in page
    secret = re.search(r'id="totp-secret" aria-label="Secret key" value="([A-Z2-7]+)"', page)
    assert secret is not None
    assert secret.group(1) in client.get("/account/2fa").get_data(as_text=True)  # kept on reload
    token = csrf_token(client, "/account/2fa")
    code = pyotp.TOTP(secret.group(1)).now()
    wrong = client.post(
        "/account/2fa", data={"csrf_token": token, "code": "000000", "password": PASSWORD}
    )
    assert wrong.status_code == 400 and "That code does not match" in wrong.get_data(True)
    no_password = client.post(
        "/account/2fa", data={"csrf_token": token, "code": code, "password": "a thief's guess"}
    )
    assert no_password.status_code == 400
    assert "That is not your current password." in no_password.get_data(as_text=True)
    right = client.post(
        "/account/2fa", data={"csrf_token": token, "code": code, "password": PASSWORD}
    )
    assert right.status_code == 200 and right.headers["Cache-Control"] == "no-store"
    assert len(re.findall(r"<code>[a-z2-9-]{11}</code>", right.get_data(as_text=True))) == 10
    assert client.get("/account/2fa").status_code == 302  # on: nothing to set up


def test_the_server_can_require_it_of_administrators(make_app: Callable[..., Flask]) -> None:
    app = make_app(require_2fa_for_admins=True)
    db: Database = app.extensions["tracker.db"]
    admin = add_user(db, "admin@example.com", PASSWORD, admin=False)
    add_user(db, "viewer@example.com", PASSWORD, admin=False)
    with db.session() as session:
        site = add_site(session, "shop.example")
        add_member(session, site, session.get(User, admin.id), ADMIN)
        viewer = session.scalars(select(User).where(User.email == "viewer@example.com")).one()
        add_member(session, site, viewer, VIEWER)
    reader = app.test_client()
    _password_step(reader, "viewer@example.com")
    assert reader.get("/sites").status_code == 200  # a viewer is not asked

    client = app.test_client()
    _password_step(client, "admin@example.com")
    sent = client.get("/sites/shop.example/settings")
    assert sent.status_code == 302 and sent.location.endswith("/account/2fa")
    assert client.get("/account").location.endswith("/account/2fa")
    assert "requires two-factor login of your account" in _enrol_on_the_page(client)
    assert client.get("/sites/shop.example/settings").status_code == 200
    assert "it cannot be turned off" in client.get("/account").get_data(as_text=True)
    off = client.post(
        "/account/2fa/disable",
        data={"csrf_token": csrf_token(client, "/account"), "password": PASSWORD},
    )
    assert off.status_code == 403
    with db.session() as session:
        assert session.get(User, admin.id).totp_enabled_at is not None  # type: ignore[union-attr]


def test_an_administrator_can_require_it_of_one_user(
    app: Flask, db: Database, database_url: str
) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    add_user(db, "bob@example.com", PASSWORD, admin=False)
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_CONFIG": None}
    runner = CliRunner()
    required = runner.invoke(cli, ["users", "require-2fa", "Ann@Example.com"], env=env)
    assert required.exit_code == 0, required.output
    assert "after their password they are sent to set it up" in required.output
    assert re.search(
        r"ann@example.com\s+no\s+off, required",
        runner.invoke(cli, ["users", "list"], env=env).output,
    )
    with db.session() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None and entry.action == "account.2fa_required"
        assert entry.detail == "Two-factor login required of ann@example.com"

    bob = app.test_client()
    assert _password_step(bob, "bob@example.com").location.endswith("/sites")
    assert bob.get("/sites").status_code == 200  # required of Ann alone
    client = app.test_client()
    _password_step(client)
    sent = client.get("/sites")
    assert sent.status_code == 302 and sent.location.endswith("/account/2fa")
    page = _enrol_on_the_page(client)
    assert "This server requires two-factor login of your account: set it up to go on." in page
    assert client.get("/sites").status_code == 200
    off = client.post(
        "/account/2fa/disable",
        data={"csrf_token": csrf_token(client, "/account"), "password": PASSWORD},
    )
    assert off.status_code == 403
    assert "requires two-factor login of your account: it stays on." in off.get_data(as_text=True)

    lifted = runner.invoke(cli, ["users", "require-2fa", EMAIL, "--off"], env=env)
    assert lifted.exit_code == 0, lifted.output
    off = client.post(
        "/account/2fa/disable",
        data={"csrf_token": csrf_token(client, "/account"), "password": PASSWORD},
    )
    assert off.status_code == 302
    unknown = runner.invoke(cli, ["users", "require-2fa", "nobody@example.com"], env=env)
    assert unknown.exit_code == 1 and "no user with email 'nobody@example.com'" in unknown.output


def test_cli_turns_it_off_and_resets_a_password(
    app: Flask, db: Database, database_url: str
) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    _enrolled(db)
    client = app.test_client()
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_CONFIG": None}
    runner = CliRunner()
    listed = runner.invoke(cli, ["users", "list"], env=env).output
    assert re.search(r"ann@example.com\s+no\s+on", listed)
    off = runner.invoke(cli, ["users", "disable-2fa", EMAIL], env=env)
    assert off.exit_code == 0 and "Two-factor login is off for ann@example.com" in off.output
    again = runner.invoke(cli, ["users", "disable-2fa", EMAIL], env=env)
    assert again.exit_code == 1 and "has no two-factor login to turn off" in again.output
    assert _password_step(client).location.endswith("/sites")
    reset = runner.invoke(cli, ["users", "password", EMAIL], input="new password 1\n" * 2, env=env)
    assert reset.exit_code == 0, reset.output
    assert client.get("/sites").status_code == 302  # the session ended with the reset
    assert _password_step(app.test_client()).status_code == 400
    assert _password_step(app.test_client(), EMAIL, "new password 1").status_code == 302
    short = runner.invoke(cli, ["users", "password", EMAIL, "--password", "short"], env=env)
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    unknown = runner.invoke(cli, ["users", "password", "nobody@example.com"], env=env)
    assert unknown.exit_code == 1 and "no user with email" in unknown.output
