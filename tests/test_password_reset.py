"""Password reset (issue 18): "Forgot password?" mails a single-use link for an hour, through
a real SMTP server; the same answer whether or not the address has an account; without mail
(or base_url) the page says the administrator resets it with the CLI."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import add_user, choose_password, csrf_token, log_in
from tests.mailserver import USER, SmtpServer
from tracker.db import Database
from tracker.db.models import PasswordReset, User
from tracker.mail import drain
from tracker.password_reset import request_reset
from tracker.twofactor import confirm, start_enrolment

EMAIL, PASSWORD = "ann@example.com", "first password"
BASE = "https://stats.example.org"


@pytest.fixture
def mailing_app(make_app: Callable[..., Flask], smtp_server: SmtpServer) -> Flask:
    """An app that mails through the test's SMTP server, with Ann's account."""
    app = make_app(**smtp_server.settings(base_url=BASE))
    add_user(app.extensions["tracker.db"], EMAIL, PASSWORD, admin=False)
    return app


def _forgot(client: FlaskClient, email: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/forgot", data={"csrf_token": csrf_token(client, "/forgot"), "email": email}
    )


def _log_in(client: FlaskClient, password: str):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "email": EMAIL, "password": password})


def _sent_links(app: Flask, smtp_server: SmtpServer) -> list[str]:
    drain(app.extensions["tracker.db"], app.extensions["tracker.settings"])
    return [
        path
        for message in smtp_server.inbox.to(EMAIL)
        for path in re.findall(re.escape(BASE) + r"(/reset/[\w-]+)", message.get_content())
    ]


def test_without_mail_the_page_points_to_the_administrator(
    client: FlaskClient, db: Database
) -> None:
    add_user(db, EMAIL, PASSWORD, admin=False)
    login = client.get("/login").get_data(as_text=True)
    assert 'href="/forgot">Forgot password?</a>' in login
    token = csrf_token(client, "/login")
    posted = client.post("/forgot", data={"csrf_token": token, "email": EMAIL})
    for answer in (client.get("/forgot"), posted):
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200 and 'name="email"' not in html
        assert "<code>tracker users password your@address</code>" in html


def test_without_base_url_no_link_is_mailed(
    make_app: Callable[..., Flask], smtp_server: SmtpServer
) -> None:
    app = make_app(**smtp_server.settings())  # the Host header would build the link
    assert "tracker users password" in app.test_client().get("/forgot").get_data(as_text=True)


def test_a_mailed_link_sets_a_new_password_once(
    mailing_app: Flask, smtp_server: SmtpServer
) -> None:
    app = mailing_app
    db: Database = app.extensions["tracker.db"]
    logged_in = app.test_client()
    assert _log_in(logged_in, PASSWORD).status_code == 302

    client = app.test_client()
    known = _forgot(client, "Ann@Example.com")
    unknown = _forgot(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.get_data() == unknown.get_data()  # says nothing about who has an account
    assert "If an account uses that address, a link" in known.get_data(as_text=True)
    [path] = _sent_links(app, smtp_server)
    [message] = smtp_server.inbox.messages
    assert message["Subject"] == "Reset your tracker password"
    with db.session() as session:
        stored = session.scalars(select(PasswordReset.token_hash)).one()
    assert path.rsplit("/", 1)[1] not in stored  # only a digest is kept

    differ = choose_password(client, path, "second password", "other")
    assert differ.status_code == 400 and "The passwords differ." in differ.get_data(as_text=True)
    assert choose_password(client, path, "second password").location.endswith("/login")
    assert logged_in.get("/sites").status_code == 302  # its session ended
    assert _log_in(app.test_client(), PASSWORD).status_code == 400
    assert _log_in(app.test_client(), "second password").status_code == 302
    used = client.get(path)
    assert used.status_code == 410 and "was used already" in used.get_data(as_text=True)
    assert choose_password(client, path, "third password").status_code == 410
    assert _log_in(app.test_client(), "third password").status_code == 400


def test_expired_unknown_and_repeated_requests(mailing_app: Flask, smtp_server: SmtpServer) -> None:
    app = mailing_app
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        made = request_reset(session, EMAIL, now=datetime.now(UTC) - timedelta(minutes=61))
    assert made is not None
    client = app.test_client()
    expired = client.get(f"/reset/{made[1]}")
    assert expired.status_code == 410 and "has expired" in expired.get_data(as_text=True)
    unknown = client.get("/reset/not-a-token")
    assert unknown.status_code == 404 and "is not valid" in unknown.get_data(as_text=True)
    _forgot(client, EMAIL)
    _forgot(client, EMAIL)  # within five minutes: nothing more is sent
    assert len(_sent_links(app, smtp_server)) == 1


def test_a_reset_leaves_two_factor_login_on(mailing_app: Flask, smtp_server: SmtpServer) -> None:
    app = mailing_app
    db: Database = app.extensions["tracker.db"]
    with db.session() as session:
        user = session.scalars(select(User)).one()
        confirm(session, user, pyotp.TOTP(start_enrolment(user)).now())
    client = app.test_client()
    _forgot(client, EMAIL)
    [path] = _sent_links(app, smtp_server)
    choose_password(client, path, "second password")
    assert _log_in(client, "second password").location.endswith("/login/code")


def test_an_undelivered_reset_mail_is_shown_to_server_administrators(
    make_app: Callable[..., Flask], smtp_server: SmtpServer
) -> None:
    app = make_app(**smtp_server.settings(base_url=BASE, smtp_user=USER, smtp_password="wrong"))
    db: Database = app.extensions["tracker.db"]
    ann = add_user(db, EMAIL, PASSWORD, admin=False)
    admin = add_user(db, "root@example.com", "root password")
    assert _forgot(app.test_client(), EMAIL).status_code == 200
    assert drain(db, app.extensions["tracker.settings"]).failed == 1
    client = app.test_client()
    log_in(client, admin)
    page = client.get("/account").get_data(as_text=True)
    assert 'id="server-mail"' in page and "Reset your tracker password" in page
    assert (
        f"authentication refused by 127.0.0.1:{smtp_server.port} for user &#39;mailer&#39;: "
        "535 5.7.8 Authentication credentials invalid"
    ) in page
    assert "1 attempt, retried at" in page
    log_in(client, ann)  # not an administrator: not hers to see
    page = client.get("/account").get_data(as_text=True)
    assert 'id="server-mail"' not in page and "535 5.7.8" not in page
