"""Server administrators manage users (issue 18): the page of users (/admin/users) and
`tracker users admin|delete`, over the functions both share (tracker.accounts). Each
action, each refusal with its sentence and nothing changed, the audit entry, and the
password link a new user chooses their password with."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.helpers import add_user, choose_password, csrf_token, log_in
from tracker.accounts import (
    AccountError,
    authenticate,
    create_api_key,
    create_user,
    delete_user,
    find_user,
    list_users,
    set_admin,
)
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import (
    ApiKey,
    AuditEntry,
    OutboxMail,
    PasswordReset,
    RecoveryCode,
    SiteMember,
    User,
)
from tracker.members import ADMIN, OWNER, VIEWER, add_member
from tracker.sites import add_site
from tracker.twofactor import confirm, start_enrolment

ROOT, ROOT_PASSWORD = "root@example.com", "root password"
ANN = "ann@example.com"
BASE = "https://stats.example.org"
LINK_RE = re.compile(r'id="password-link"[^>]*value="([^"]+)"')


@pytest.fixture
def root(db: Database) -> User:
    return add_user(db, ROOT, ROOT_PASSWORD, admin=True)


@pytest.fixture
def admin_client(app: Flask, root: User) -> FlaskClient:
    client = app.test_client()
    log_in(client, root)
    return client


def _post(client: FlaskClient, path: str, **data: str):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, "/account"), **data})


def _user(db: Database, email: str) -> User | None:
    with db.session() as session:
        return find_user(session, email)


def _audit(db: Database, action: str) -> list[tuple[str, str]]:
    with db.session() as session:
        rows = session.execute(
            select(AuditEntry.user_email, AuditEntry.detail)
            .where(AuditEntry.action == action)
            .order_by(AuditEntry.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def _count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _enrolled(db: Database, email: str) -> None:
    """Two-factor login on for the user, as the account page turns it on."""
    import pyotp

    with db.session() as session:
        user = find_user(session, email)
        assert user is not None
        secret = start_enrolment(user)
        confirm(session, user, pyotp.TOTP(secret).now())


# tracker.accounts: the rules both the page and the command line follow


def test_the_last_administrator_stays_one(db: Database, root: User) -> None:
    other = add_user(db, "second@example.com", "second password", admin=True)
    with db.session() as session:
        me = session.get(User, root.id)
        assert me is not None
        with pytest.raises(AccountError, match="your own administrator rights"):
            set_admin(session, me, False, by=me)
        assert set_admin(session, me, False, by=other) is True
    with db.session() as session:
        second = session.get(User, other.id)
        assert second is not None
        with pytest.raises(AccountError, match=r"second@example.com is the last server admin"):
            set_admin(session, second, False, by=None)
        with pytest.raises(AccountError, match="the last server administrator"):
            delete_user(session, second, by=None)
        assert set_admin(session, second, True, by=None) is False  # already: nothing to do
    with db.session() as session:
        assert [u.email for u in session.scalars(select(User).where(User.is_admin))] == [
            "second@example.com"
        ]


def test_deleting_the_last_owner_of_sites_is_refused_naming_them(db: Database, root: User) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    bob = add_user(db, "bob@example.com", "bob password", admin=False)
    with db.session() as session:
        add_site(session, "zeta.example", owner=ann)
        add_site(session, "alpha.example", owner=ann)
        shared = add_site(session, "shared.example", owner=ann)
        add_member(session, shared, bob, OWNER)
    with db.session() as session:
        user = session.get(User, ann.id)
        assert user is not None
        with pytest.raises(AccountError) as refused:
            delete_user(session, user, by=root)
    assert str(refused.value) == (
        "ann@example.com is the last owner of alpha.example, zeta.example: make another "
        "member an owner first, or delete the site."
    )
    assert _count(db, SiteMember) == 4 and _user(db, ANN) is not None


def test_deleting_a_user_takes_their_memberships_keys_codes_and_links(
    db: Database, root: User
) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    _enrolled(db, ANN)
    with db.session() as session:
        owner = create_user(session, "owner@example.com", "owner password")
        site = add_site(session, "shop.example", owner=owner)
        add_member(session, site, session.get(User, ann.id), ADMIN)
        create_api_key(session, session.get(User, ann.id), "sheet")
        create_api_key(session, owner, "other's")
        session.add(
            PasswordReset(
                user_id=ann.id, token_hash="x" * 64, expires_at=datetime(2030, 1, 1, tzinfo=UTC)
            )
        )
    with db.session() as session:
        user = session.get(User, ann.id)
        assert user is not None
        deleted = delete_user(session, user, by=root)
    assert deleted.detail == (
        "Deleted the account ann@example.com: its membership of 1 site(s) and its 1 API key(s)"
    )
    assert _user(db, ANN) is None
    with db.session() as session:
        assert session.scalar(select(func.count()).where(SiteMember.user_id == ann.id)) == 0
        assert [k.name for k in session.scalars(select(ApiKey))] == ["other's"]
        assert session.scalar(select(func.count()).where(RecoveryCode.user_id == ann.id)) == 0
        assert session.scalar(select(func.count()).where(PasswordReset.user_id == ann.id)) == 0


def test_list_users_counts_roles_and_keys(db: Database, root: User) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    with db.session() as session:
        first = add_site(session, "one.example", owner=ann)
        add_site(session, "two.example", owner=ann)
        add_site(session, "three.example", owner=root)
        add_member(session, first, session.get(User, root.id), VIEWER)
        create_api_key(session, session.get(User, ann.id))
        create_user(session, "new@example.com", None)
        session.get(User, ann.id).require_2fa = True  # type: ignore[union-attr]
    with db.session() as session:
        rows = {u.email: u for u in list_users(session)}
    assert list(rows) == [ANN, "new@example.com", ROOT]
    assert rows[ANN].roles == {OWNER: 2, ADMIN: 0, VIEWER: 0} and rows[ANN].sites == 2
    assert rows[ANN].api_keys == 1 and rows[ANN].require_2fa and not rows[ANN].two_factor
    assert rows[ROOT].roles == {OWNER: 1, ADMIN: 0, VIEWER: 1} and rows[ROOT].is_admin
    assert rows["new@example.com"].sites == 0 and not rows["new@example.com"].has_password


def test_an_account_without_a_password_logs_in_with_none(db: Database) -> None:
    with db.session() as session:
        create_user(session, ANN, None)
    with db.session() as session:
        assert authenticate(session, ANN, "!") is None
        assert authenticate(session, ANN, "") is None


def test_an_overlong_address_is_refused_with_its_limit(db: Database) -> None:
    with db.session() as session, pytest.raises(AccountError) as refused:
        create_user(session, "a" * 250 + "@example.com", None)
    assert str(refused.value) == "an email address is at most 254 characters"


# The page


def test_only_server_administrators_see_the_page(app: Flask, db: Database, root: User) -> None:
    anonymous = app.test_client().get("/admin/users")
    assert anonymous.status_code == 302 and "/login" in anonymous.location
    ann = add_user(db, ANN, "ann password", admin=False)
    with db.session() as session:
        add_site(session, "shop.example", owner=ann)
    member = app.test_client()
    log_in(member, ann)
    refused = member.get("/admin/users")
    assert refused.status_code == 403
    assert "Only server administrators manage users." in refused.get_data(as_text=True)
    assert 'href="/admin/users"' not in member.get("/account").get_data(as_text=True)
    admin = app.test_client()
    log_in(admin, root)
    assert 'href="/admin/users"' in admin.get("/sites").get_data(as_text=True)
    assert admin.get("/admin/users").status_code == 200


def test_the_page_lists_users_escaped(admin_client: FlaskClient, db: Database) -> None:
    odd = "<b>x</b>@example.com"
    ann = add_user(db, odd, "odd password", admin=False)
    with db.session() as session:
        add_site(session, "shop.example", owner=ann)
        session.get(User, ann.id).require_2fa = True  # type: ignore[union-attr]
    html = admin_client.get("/admin/users").get_data(as_text=True)
    assert "<b>x</b>@" not in html and "&lt;b&gt;x&lt;/b&gt;@example.com" in html
    row = re.search(rf'<tr id="user-{ann.id}">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]
    assert cells[1:7] == ["no", "off, required", "1 (1 owner)", "0", cells[5], "never"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", cells[5])
    mine = re.search(r'<tr id="user-\d+">\s*<td class="email">root@example.com', html)
    assert mine is not None and "(you)" in html


def test_the_last_login_is_listed(
    app: Flask, admin_client: FlaskClient, db: Database, database_url: str
) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    before = datetime.now(UTC).replace(microsecond=0)
    browser = app.test_client()
    token = csrf_token(browser, "/login")
    form = {"csrf_token": token, "email": ANN, "password": "ann password"}
    assert browser.post("/login", data=form).status_code == 302
    with db.session() as session:
        [summary] = [u for u in list_users(session) if u.id == ann.id]
    assert summary.last_login_at is not None and summary.last_login_at >= before
    html = admin_client.get("/admin/users").get_data(as_text=True)
    row = re.search(rf'<tr id="user-{ann.id}">(.*?)</tr>', html, re.S)
    assert row is not None
    assert summary.last_login_at.strftime("%Y-%m-%d %H:%M UTC") in row.group(1)
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_CONFIG": None}
    listed = CliRunner().invoke(cli, ["users", "list"], env=env)
    assert summary.last_login_at.strftime("%Y-%m-%d %H:%M") in listed.output


def test_an_administrator_adds_a_user_who_chooses_a_password(
    app: Flask, admin_client: FlaskClient, db: Database
) -> None:
    added = _post(admin_client, "/admin/users", email=" Ann@Example.com ")
    html = added.get_data(as_text=True)
    assert added.status_code == 201, html
    assert added.headers["Cache-Control"] == "no-store"
    assert "No mail server is set up, so send it yourself." in html
    link = LINK_RE.search(html)
    assert link is not None and link.group(1).startswith("http://localhost/reset/")
    ann = _user(db, ANN)
    assert ann is not None and not ann.is_admin
    assert _audit(db, "account.create") == [
        (ROOT, "Account ann@example.com added; its password link shown to copy")
    ]
    stranger = app.test_client()
    path = link.group(1).removeprefix("http://localhost")
    page = stranger.get(path).get_data(as_text=True)
    assert "Choose your password" in page and "ann@example.com" in page
    chosen = choose_password(stranger, path, "ann's password")
    assert chosen.status_code == 302 and chosen.location.endswith("/login")
    login = stranger.post(
        "/login",
        data={
            "csrf_token": csrf_token(stranger, "/login"),
            "email": ANN,
            "password": "ann's password",
        },
    )
    assert login.status_code == 302 and login.location.endswith("/sites")
    assert stranger.get(path).status_code == 410  # the link works once
    assert _audit(db, "account.password") == [(ANN, "First password chosen by link")]


def test_adding_an_administrator_mails_the_link_when_mail_is_set_up(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(smtp_host="smtp.invalid", mail_from="tracker@example.org", base_url=BASE)
    db: Database = app.extensions["tracker.db"]
    client = app.test_client()
    log_in(client, add_user(db, ROOT, ROOT_PASSWORD, admin=True))
    added = _post(client, "/admin/users", email=ANN, admin="y")
    html = added.get_data(as_text=True)
    assert added.status_code == 201 and "It was mailed to them" in html
    link = LINK_RE.search(html)
    assert link is not None and link.group(1).startswith(f"{BASE}/reset/")
    with db.session() as session:
        mail = session.scalars(select(OutboxMail)).one()
    assert (mail.recipient, mail.subject) == (ANN, "Your tracker account")
    assert (
        link.group(1) in mail.text_body and "root@example.com made you an account" in mail.text_body
    )
    user = _user(db, ANN)
    assert user is not None and user.is_admin
    root = _user(db, ROOT)
    assert root is not None
    reset = _post(client, f"/admin/users/{root.id}/password-link")
    assert reset.status_code == 201 and "It was mailed to them" in reset.get_data(as_text=True)
    with db.session() as session:
        mails = session.execute(select(OutboxMail.recipient, OutboxMail.subject)).all()
    assert sorted(mails) == [(ANN, "Your tracker account"), (ROOT, "Reset your tracker password")]
    assert _audit(db, "account.create") == [
        (ROOT, "Account ann@example.com added as a server administrator; its password link mailed")
    ]


@pytest.mark.parametrize(
    ("email", "status", "sentence"),
    [
        (ROOT, 400, "a user with email &#39;root@example.com&#39; already exists"),
        ("x" * 250 + "@example.com", 400, "an email address is at most 254 characters"),
        ("not an address", 400, "&#39;not an address&#39; is not a valid email address"),
    ],
)
def test_a_bad_address_adds_nobody(
    admin_client: FlaskClient, db: Database, email: str, status: int, sentence: str
) -> None:
    refused = _post(admin_client, "/admin/users", email=email)
    assert refused.status_code == status
    assert sentence in refused.get_data(as_text=True)
    assert _count(db, User) == 1 and _count(db, PasswordReset) == 0
    assert _audit(db, "account.create") == []


def test_an_address_added_meanwhile_by_another_request_is_refused_in_words(
    admin_client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two administrators adding one address at once: the second's check ran before the
    first's insert; the unique address then refuses it with the sentence, not a 500."""
    import tracker.accounts

    add_user(db, "twice@example.com", admin=False)
    monkeypatch.setattr(tracker.accounts, "find_user", lambda session, email: None)
    refused = _post(admin_client, "/admin/users", email="twice@example.com")
    assert refused.status_code == 400
    assert "already exists" in refused.get_data(as_text=True)
    assert _count(db, User) == 2 and _count(db, PasswordReset) == 0
    assert _audit(db, "account.create") == []


def test_a_form_without_its_token_changes_nothing(
    admin_client: FlaskClient, db: Database, root: User
) -> None:
    for path in ("/admin/users", f"/admin/users/{root.id}/delete"):
        refused = admin_client.post(path, data={"email": ANN, "confirm": ROOT})
        assert refused.status_code == 400
        assert "The CSRF token is missing." in refused.get_data(as_text=True)
    assert _count(db, User) == 1


def test_administrator_rights_given_and_taken(
    app: Flask, admin_client: FlaskClient, db: Database, root: User
) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    made = _post(admin_client, f"/admin/users/{ann.id}/admin", on="yes")
    assert made.status_code == 302 and made.location.endswith(f"/admin/users#user-{ann.id}")
    assert _user(db, ANN).is_admin  # type: ignore[union-attr]
    again = _post(admin_client, f"/admin/users/{ann.id}/admin", on="yes")
    assert again.status_code == 302
    assert "ann@example.com is a server administrator already." in admin_client.get(
        "/admin/users"
    ).get_data(as_text=True)
    mine = _post(admin_client, f"/admin/users/{root.id}/admin", on="no")
    assert mine.status_code == 400
    assert "You cannot take away your own administrator rights: another administrator can." in (
        mine.get_data(as_text=True)
    )
    assert _user(db, ROOT).is_admin  # type: ignore[union-attr]
    taken = _post(admin_client, f"/admin/users/{ann.id}/admin", on="no")
    assert taken.status_code == 302 and not _user(db, ANN).is_admin  # type: ignore[union-attr]
    bad = _post(admin_client, f"/admin/users/{ann.id}/admin", on="maybe")
    assert bad.status_code == 400 and "Say yes or no." in bad.get_data(as_text=True)
    assert _audit(db, "account.admin") == [
        (ROOT, "ann@example.com is a server administrator."),
        (ROOT, "ann@example.com is no longer a server administrator."),
    ]


def test_two_factor_required_and_turned_off(
    app: Flask, admin_client: FlaskClient, db: Database
) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    required = _post(admin_client, f"/admin/users/{ann.id}/require-2fa", on="yes")
    assert required.status_code == 302 and _user(db, ANN).require_2fa  # type: ignore[union-attr]
    lifted = _post(admin_client, f"/admin/users/{ann.id}/require-2fa", on="no")
    assert lifted.status_code == 302 and not _user(db, ANN).require_2fa  # type: ignore[union-attr]
    none = _post(admin_client, f"/admin/users/{ann.id}/disable-2fa")
    assert none.status_code == 400
    assert "ann@example.com has no two-factor login to turn off" in none.get_data(as_text=True)
    _enrolled(db, ANN)
    ann_browser = app.test_client()
    log_in(ann_browser, _user(db, ANN))  # type: ignore[arg-type]
    assert ann_browser.get("/account").status_code == 200
    off = _post(admin_client, f"/admin/users/{ann.id}/disable-2fa")
    assert off.status_code == 302
    user = _user(db, ANN)
    assert user is not None and user.totp_enabled_at is None and user.totp_secret is None
    assert _count(db, RecoveryCode) == 0
    assert ann_browser.get("/account").status_code == 302  # her sessions ended
    assert [d for _who, d in _audit(db, "account.2fa_required")] == [
        "Two-factor login required of ann@example.com",
        "Two-factor login no longer required of ann@example.com",
    ]
    assert _audit(db, "account.2fa_off") == [
        (ROOT, "Two-factor login of ann@example.com turned off")
    ]


def test_a_password_link_resets_a_forgotten_password(
    app: Flask, admin_client: FlaskClient, db: Database
) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    given = _post(admin_client, f"/admin/users/{ann.id}/password-link")
    html = given.get_data(as_text=True)
    assert given.status_code == 201 and "to choose a new password" in html
    link = LINK_RE.search(html)
    assert link is not None
    path = link.group(1).removeprefix("http://localhost")
    client = app.test_client()
    assert "Choose a new password" in client.get(path).get_data(as_text=True)
    with db.session() as session:
        reset = session.scalars(select(PasswordReset)).one()
        lifetime = reset.expires_at - reset.created_at
    assert lifetime.total_seconds() == 3600
    chosen = choose_password(client, path, "new one!")
    assert chosen.status_code == 302
    with db.session() as session:
        assert authenticate(session, ANN, "new one!") is not None
    assert _audit(db, "account.reset_link") == [
        (ROOT, "Password link of ann@example.com shown to copy")
    ]


def test_deleting_a_user_ends_their_sessions_and_keys(
    app: Flask, admin_client: FlaskClient, db: Database, root: User
) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    with db.session() as session:
        site = add_site(session, "shop.example", owner=root)
        add_member(session, site, session.get(User, ann.id), VIEWER)
        _key, plain = create_api_key(session, session.get(User, ann.id))
    ann_browser = app.test_client()
    log_in(ann_browser, ann)
    assert ann_browser.get("/sites").status_code == 200
    stats = "/api/v1/stats/aggregate?site_id=shop.example&metrics=visitors"
    assert (
        app.test_client().get(stats, headers={"Authorization": f"Bearer {plain}"}).status_code
        == 200
    )

    typo = _post(admin_client, f"/admin/users/{ann.id}/delete", confirm="ann@example.org")
    assert typo.status_code == 400
    assert "Type ann@example.com in the box to delete that account." in typo.get_data(as_text=True)
    assert _user(db, ANN) is not None
    deleted = _post(admin_client, f"/admin/users/{ann.id}/delete", confirm=" ANN@example.com")
    assert deleted.status_code == 302
    assert _user(db, ANN) is None
    assert ann_browser.get("/sites").status_code == 302
    assert (
        app.test_client().get(stats, headers={"Authorization": f"Bearer {plain}"}).status_code
        == 401
    )
    message = (
        "Deleted the account ann@example.com: its membership of 1 site(s) and its 1 API key(s)"
    )
    assert _audit(db, "account.delete") == [(ROOT, message)]
    assert message in admin_client.get("/admin/users").get_data(as_text=True)
    # SQLite gives the largest id to the next user again: the old cookie must not open it.
    reused = add_user(db, "carol@example.com", "carol password", admin=False)
    assert ann_browser.get("/sites").status_code == 302, f"id {reused.id} (was {ann.id})"
    gone = _post(admin_client, f"/admin/users/{ann.id + 100}/delete", confirm=ANN)
    assert gone.status_code == 404
    assert f"There is no user with id {ann.id + 100}: deleted already?" in gone.get_data(
        as_text=True
    )


def test_deletions_refused(admin_client: FlaskClient, db: Database, root: User) -> None:
    ann = add_user(db, ANN, "ann password", admin=False)
    with db.session() as session:
        add_site(session, "shop.example", owner=ann)
    mine = _post(admin_client, f"/admin/users/{root.id}/delete", confirm=ROOT)
    assert mine.status_code == 400
    assert "You cannot delete your own account: another administrator can." in (
        mine.get_data(as_text=True)
    )
    owner = _post(admin_client, f"/admin/users/{ann.id}/delete", confirm=ANN)
    assert owner.status_code == 400
    assert "ann@example.com is the last owner of shop.example: make another member an owner" in (
        owner.get_data(as_text=True)
    )
    assert _count(db, User) == 2 and _count(db, SiteMember) == 1
    assert _audit(db, "account.delete") == []


# The command line: the same functions


def test_cli_admin_and_delete(db: Database, database_url: str, root: User) -> None:
    add_user(db, ANN, "ann password", admin=False)
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_CONFIG": None}
    runner = CliRunner()
    made = runner.invoke(cli, ["users", "admin", ANN], env=env)
    assert made.exit_code == 0 and "ann@example.com is a server administrator." in made.output
    taken = runner.invoke(cli, ["users", "admin", ROOT, "--off"], env=env)
    assert taken.exit_code == 0, taken.output
    last = runner.invoke(cli, ["users", "admin", ANN, "--off"], env=env)
    assert last.exit_code == 1
    assert "ann@example.com is the last server administrator" in last.output
    with db.session() as session:
        add_site(session, "shop.example", owner=find_user(session, ROOT))
    owner = runner.invoke(cli, ["users", "delete", ROOT, "--yes"], env=env)
    assert owner.exit_code == 1 and "root@example.com is the last owner of shop.example" in (
        owner.output
    )
    asked = runner.invoke(cli, ["users", "delete", ANN], input="n\n", env=env)
    assert asked.exit_code == 1 and _user(db, ANN) is not None
    alone = runner.invoke(cli, ["users", "delete", ANN, "--yes"], env=env)
    assert alone.exit_code == 1 and "the last server administrator" in alone.output
    unknown = runner.invoke(cli, ["users", "delete", "nobody@example.com", "--yes"], env=env)
    assert unknown.exit_code == 1 and "no user with email" in unknown.output
    assert runner.invoke(cli, ["users", "admin", ROOT], env=env).exit_code == 0
    gone = runner.invoke(cli, ["users", "delete", ANN, "--yes"], env=env)
    assert gone.exit_code == 0 and "Deleted the account ann@example.com" in gone.output
    assert _user(db, ANN) is None
    assert [who for who, _ in _audit(db, "account.delete")] == [""]  # the command line
