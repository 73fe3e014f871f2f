"""Invitations (issue 18): a single-use link that expires, stored hashed; duplicates, reuse,
revoking, expiry (an injected clock), bad input; accepting as a new or an existing account;
`tracker invite`. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.helpers import add_owner, add_user, csrf_token, log_in
from tests.mailserver import SmtpServer
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import AuditEntry, Invitation, User
from tracker.invitations import (
    InviteError,
    InviteUnusable,
    accept,
    accept_new_account,
    create_invitation,
    open_invitation,
    pending_invitations,
    revoke_invitation,
)
from tracker.mail import drain
from tracker.members import ADMIN, OWNER, VIEWER, MemberError, MemberForbidden, role_of
from tracker.sites import add_site, find_site

SITE = "shop.example"
SETTINGS = f"/sites/{SITE}/settings"
DAY = timedelta(hours=72)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ROLE_SENTENCE = "'boss' is not a role: choose owner, admin or viewer."
LONG_SENTENCE = "The email address is longer than 254 characters."
LINK_RE = re.compile(r'id="invite-link" aria-label="Invitation link" value="([^"]+)"')


@pytest.fixture
def owner(db: Database) -> User:
    return add_owner(db, SITE)


def _invite(
    db: Database, email: str = "new@example.com", role: str = VIEWER, now: datetime = T0
) -> str:
    with db.session() as session:
        _invitation, token = create_invitation(
            session, find_site(session, SITE), email, role, actor_role=OWNER, by=None,
            expiry=DAY, now=now,
        )  # fmt: skip
    return token


def _count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Invitation)) or 0


# The rules, with a clock


def test_the_token_is_stored_hashed(db: Database, owner: User) -> None:
    token = _invite(db)
    with db.session() as session:
        stored = session.scalars(select(Invitation)).one()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(stored.__dict__)


def test_a_link_expires_after_its_hours(db: Database, owner: User) -> None:
    token = _invite(db)
    with db.session() as session:
        assert open_invitation(session, token, now=T0 + DAY - timedelta(minutes=1))
        with pytest.raises(InviteUnusable, match="expired on 2026-12-04 09:00 UTC") as err:
            open_invitation(session, token, now=T0 + DAY)
        assert err.value.status == 410
        assert pending_invitations(session, find_site(session, SITE), now=T0 + DAY) == []
    # An expired invitation does not block a new one to the same address.
    assert _invite(db, now=T0 + DAY)


def test_a_link_works_once(db: Database, owner: User) -> None:
    token = _invite(db)
    with db.session() as session:
        user, _invitation, role = accept_new_account(session, token, "long password", now=T0)
        assert role == VIEWER and role_of(session, user, find_site(session, SITE)) == VIEWER
    with pytest.raises(InviteUnusable, match="already used"), db.session() as session:
        accept_new_account(session, token, "another password", now=T0)
    with pytest.raises(InviteUnusable, match="already used"), db.session() as session:
        accept(session, token, session.get(User, user.id), now=T0)


def test_a_revoked_link_opens_nothing(db: Database, owner: User) -> None:
    token = _invite(db)
    with db.session() as session:
        site = find_site(session, SITE)
        [pending] = pending_invitations(session, site, now=T0)
        assert revoke_invitation(session, site, pending.id, now=T0) is not None
        assert revoke_invitation(session, site, pending.id, now=T0) is None  # not pending now
    with pytest.raises(InviteUnusable, match="withdrawn"), db.session() as session:
        open_invitation(session, token, now=T0)
    assert _invite(db)  # and it no longer blocks a new one


def test_an_unknown_link_is_404(db: Database, owner: User) -> None:
    with pytest.raises(InviteUnusable, match="not valid") as err, db.session() as session:
        open_invitation(session, "made-up")
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("email", "role", "error", "message"),
    [
        ("new@example.com", "boss", MemberError, ROLE_SENTENCE),
        ("a" * 250 + "@example.com", VIEWER, InviteError, LONG_SENTENCE),
        ("not an address", VIEWER, InviteError, "'not an address' is not a valid email address."),
        ("owner@example.com", VIEWER, InviteError, "is already a member of shop.example (owner)"),
    ],
)
def test_bad_invitations_are_refused_with_a_sentence(
    db: Database, owner: User, email: str, role: str, error: type, message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        _invite(db, email, role)
    assert _count(db) == 0


def test_a_duplicate_is_refused(db: Database, owner: User) -> None:
    _invite(db, "New@Example.com")
    with pytest.raises(InviteError, match="new@example.com already has a pending invitation"):
        _invite(db, " new@example.com ")
    assert _count(db) == 1


def test_only_owners_invite_owners(db: Database, owner: User) -> None:
    with pytest.raises(MemberForbidden, match="Only an owner may invite an owner."):
        with db.session() as session:
            create_invitation(
                session, find_site(session, SITE), "x@example.com", OWNER, actor_role=ADMIN,
                by=None, expiry=DAY,
            )  # fmt: skip


def test_an_existing_account_joins_only_as_itself(db: Database, owner: User) -> None:
    token = _invite(db, "ann@example.com", ADMIN)
    ann = add_user(db, "ann@example.com", admin=False)
    bob = add_user(db, "bob@example.com", admin=False)
    with pytest.raises(InviteError, match="This invitation is for ann@example.com"):
        with db.session() as session:
            accept(session, token, bob, now=T0)
    with db.session() as session:
        _invitation, role = accept(session, token, ann, now=T0)
        assert role == ADMIN


# On the web


def _post(client: FlaskClient, path: str, **data: str):
    return client.post(path, data={"csrf_token": csrf_token(client, "/sites"), **data})


def test_invite_from_the_settings_page_then_accept_as_a_new_user(
    app: Flask, client: FlaskClient, db: Database, owner: User
) -> None:
    log_in(client, owner)
    made = _post(client, f"{SETTINGS}/invitations", email="Viewer@Example.com", role="viewer")
    assert made.status_code == 200
    html = made.get_data(as_text=True)
    assert "Invitation for viewer@example.com created." in html
    assert "expires in\n    72 hours" in html
    link = LINK_RE.search(html).group(1)
    assert link.startswith("http://localhost/invite/")
    pending = client.get(SETTINGS).get_data(as_text=True).split('id="members"')[1]
    assert "<td>viewer@example.com</td>" in pending and "invitation-link" not in pending
    assert LINK_RE.search(pending) is None  # shown once

    stranger = app.test_client()
    path = link.removeprefix("http://localhost")
    page = stranger.get(path)
    assert page.status_code == 200
    assert "Choose a password for your new account, viewer@example.com." in page.get_data(
        as_text=True
    )
    token = csrf_token(stranger, path)
    short = stranger.post(path, data={"csrf_token": token, "password": "short", "confirm": "short"})
    assert short.status_code == 400 and _count_users(db) == 1
    done = stranger.post(
        path,
        data={"csrf_token": token, "password": "viewer password", "confirm": "viewer password"},
    )
    assert done.status_code == 302 and "/login?next=/sites/shop.example" in done.location
    login_page = stranger.get(done.location).get_data(as_text=True)
    assert "Your account is ready and you joined shop.example as viewer. Log in to see it." in (
        login_page
    )
    with db.session() as session:
        user = session.scalar(select(User).where(User.email == "viewer@example.com"))
        assert role_of(session, user, find_site(session, SITE)) == VIEWER and not user.is_admin

    again = stranger.get(path)
    assert again.status_code == 410
    assert "This invitation was already used" in again.get_data(as_text=True)


def _count_users(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def test_an_existing_user_logs_in_and_joins(
    app: Flask, client: FlaskClient, db: Database, owner: User
) -> None:
    ann = add_user(db, "ann@example.com", admin=False)
    token = _invite(db, "ann@example.com", ADMIN, now=datetime.now(UTC))
    path = f"/invite/{token}"
    visitor = app.test_client()
    page = visitor.get(path).get_data(as_text=True)
    assert "You already have an account as ann@example.com" in page
    assert "/login?next=/invite/" in page

    bob = app.test_client()
    log_in(bob, add_user(db, "bob@example.com", admin=False))
    wrong = bob.get(path).get_data(as_text=True)
    assert "This invitation is for ann@example.com, and you are logged" in wrong
    assert bob.post(path, data={"csrf_token": csrf_token(bob, path)}).status_code == 400

    log_in(visitor, ann)
    assert "Join shop.example" in visitor.get(path).get_data(as_text=True)
    joined = visitor.post(path, data={"csrf_token": csrf_token(visitor, path)})
    assert joined.status_code == 302 and joined.location.endswith("/sites/shop.example")
    assert "You joined shop.example as admin." in visitor.get("/sites").get_data(as_text=True)
    assert visitor.get(SETTINGS).status_code == 200


@pytest.mark.parametrize(
    ("state", "status", "message"),
    [
        ("expired", 410, "This invitation expired on"),
        ("revoked", 410, "This invitation was withdrawn."),
        ("unknown", 404, "This invitation link is not valid"),
    ],
)
def test_dead_links_get_a_clear_page(
    app: Flask,
    client: FlaskClient,
    db: Database,
    owner: User,
    state: str,
    status: int,
    message: str,
) -> None:
    token = _invite(db, now=datetime.now(UTC) - (DAY if state == "expired" else timedelta()))
    if state == "revoked":
        with db.session() as session:
            site = find_site(session, SITE)
            revoke_invitation(session, site, pending_invitations(session, site)[0].id)
    path = f"/invite/{token if state != 'unknown' else 'nope'}"
    page = client.get(path)
    assert page.status_code == status and message in page.get_data(as_text=True)
    csrf = csrf_token(client, "/login")
    taken = client.post(
        path, data={"csrf_token": csrf, "password": "a long one", "confirm": "a long one"}
    )
    assert taken.status_code == status and _count_users(db) == 1


@pytest.mark.parametrize(
    ("email", "role", "message"),
    [
        ("x@example.com", "boss", ROLE_SENTENCE.replace("'", "&#39;")),
        ("a" * 300 + "@example.com", "viewer", LONG_SENTENCE),
        ("pending@example.com", "viewer", "pending@example.com already has a pending invitation"),
    ],
)
def test_web_refusals(
    client: FlaskClient, db: Database, owner: User, email: str, role: str, message: str
) -> None:
    _invite(db, "pending@example.com", now=datetime.now(UTC))
    log_in(client, owner)
    refused = _post(client, f"{SETTINGS}/invitations", email=email, role=role)
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert message in html and LINK_RE.search(html) is None
    assert _count(db) == 1


def test_pending_invitations_are_listed_and_revocable(
    client: FlaskClient, db: Database, owner: User
) -> None:
    _invite(db, "<i>x</i>@example.com", now=datetime.now(UTC))
    log_in(client, owner)
    section = client.get(SETTINGS).get_data(as_text=True).split('id="members"')[1]
    assert "&lt;i&gt;x&lt;/i&gt;@example.com" in section and "<i>x</i>" not in section
    invitation_id = re.search(r"/invitations/(\d+)/revoke", section).group(1)
    revoked = _post(client, f"{SETTINGS}/invitations/{invitation_id}/revoke")
    assert revoked.status_code == 302
    page = client.get(revoked.location).get_data(as_text=True)
    assert "revoked: its link no longer works." in page
    assert "/revoke" not in page.split('id="members"')[1].split("</section>")[0]
    again = _post(client, f"{SETTINGS}/invitations/{invitation_id}/revoke")
    assert "That invitation is no longer pending" in client.get(again.location).get_data(
        as_text=True
    )


def test_expiry_is_a_setting(make_app, db: Database) -> None:
    app = make_app(invite_expiry_hours=2)
    owner = add_user(app.extensions["tracker.db"], "o@example.com", admin=False)
    with app.extensions["tracker.db"].session() as session:
        add_site(session, SITE, owner=owner)
    client = app.test_client()
    log_in(client, owner)
    html = _post(client, f"{SETTINGS}/invitations", email="n@example.com").get_data(as_text=True)
    assert "expires in\n    2 hours" in html
    with app.extensions["tracker.db"].session() as session:
        invitation = session.scalars(select(Invitation)).one()
        lasts = invitation.expires_at - invitation.created_at
    assert lasts == timedelta(hours=2)


# The command line


def test_cli_invite_prints_the_link(
    app: Flask, db: Database, owner: User, database_url: str, tmp_path
) -> None:
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "d")}
    runner = CliRunner()
    result = runner.invoke(cli, ["invite", SITE, "c@example.com", "--role", "admin"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == "Invited c@example.com to shop.example as admin; the link works once, for 72 hours:"
    )
    assert lines[1].startswith("/invite/")
    assert "set base_url" in result.stderr
    page = app.test_client().get(lines[1])
    assert page.status_code == 200 and "as <strong>admin</strong>" in page.get_data(as_text=True)

    env["TRACKER_BASE_URL"] = "https://stats.example.org/"
    full = runner.invoke(cli, ["invite", SITE, "d@example.com"], env=env)
    assert full.stdout.splitlines()[1].startswith("https://stats.example.org/invite/")
    duplicate = runner.invoke(cli, ["invite", SITE, "d@example.com"], env=env)
    assert duplicate.exit_code == 1
    assert "d@example.com already has a pending invitation to shop.example" in duplicate.stderr
    unknown = runner.invoke(cli, ["invite", SITE, "e@example.com", "--role", "boss"], env=env)
    assert (
        unknown.exit_code == 2
        and "'boss' is not one of 'owner', 'admin', 'viewer'" in unknown.stderr
    )
    assert _count(db) == 2


def test_with_mail_the_link_is_mailed_too(
    make_app: Callable[..., Flask], smtp_server: SmtpServer, database_url: str, tmp_path: Path
) -> None:
    base = "https://stats.example.org"
    app = make_app(**smtp_server.settings(base_url=base))
    db: Database = app.extensions["tracker.db"]
    user = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=user)
    client = app.test_client()
    log_in(client, user)
    made = _post(client, f"{SETTINGS}/invitations", email="viewer@example.com", role="viewer")
    html = made.get_data(as_text=True)
    assert "Invitation mailed to viewer@example.com." in html
    shown = LINK_RE.search(html).group(1)  # type: ignore[union-attr]
    env = {
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_DATA_DIR": str(tmp_path / "d"),
        "TRACKER_BASE_URL": base,
        "TRACKER_SMTP_HOST": "127.0.0.1",
        "TRACKER_SMTP_PORT": str(smtp_server.port),
        "TRACKER_SMTP_SECURITY": "none",
        "TRACKER_MAIL_FROM": "tracker@example.org",
    }
    cli_made = CliRunner().invoke(
        cli, ["invite", SITE, "admin@example.com", "--role", "admin"], env=env
    )
    assert "as admin (mailed to admin@example.com);" in cli_made.stdout
    drain(db, app.extensions["tracker.settings"])
    [viewer_mail] = smtp_server.inbox.to("viewer@example.com")
    [admin_mail] = smtp_server.inbox.to("admin@example.com")
    assert viewer_mail["Subject"] == "You are invited to shop.example's analytics"
    text = viewer_mail.get_content()
    assert "owner@example.com invites you to see shop.example's web analytics as viewer." in text
    assert shown in text and shown.startswith(f"{base}/invite/")
    assert cli_made.stdout.splitlines()[1] in admin_mail.get_content()
    page = app.test_client().get(shown.removeprefix(base))
    assert "Choose a password for your new account, viewer@example.com." in page.get_data(True)
    with db.session() as session:
        details = list(session.scalars(select(AuditEntry.detail).order_by(AuditEntry.id)))
    assert details == [
        "viewer@example.com invited as viewer (mailed)",
        "admin@example.com invited as admin (mailed)",
    ]
