"""The audit log (issue 18): changes made on the web, through the API and on the command line
each write an entry (who, which site, what, when) in their own transaction; site owners and
admins read their site's latest 100 on the settings page, server administrators every
site's at /audit. SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import add_owner, add_user, csrf_token, log_in
from tracker import audit
from tracker.accounts import create_api_key
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import ApiKey, AuditEntry, User
from tracker.members import VIEWER, add_member
from tracker.sites import add_site, find_site

SITE = "shop.example"
SETTINGS = f"/sites/{SITE}/settings"


@pytest.fixture
def owner(db: Database) -> User:
    return add_owner(db, SITE)


def _entries(db: Database) -> list[tuple[str, str, str, str]]:
    """(who, site, action, detail) of every entry, oldest first."""
    with db.session() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.user_email, e.site_domain, e.action, e.detail) for e in rows]


def _post(client: FlaskClient, path: str, **data: str):
    response = client.post(path, data={"csrf_token": csrf_token(client, "/sites"), **data})
    assert response.status_code in (200, 302), response.get_data(as_text=True)[:500]
    return response


def test_web_changes_are_recorded(client: FlaskClient, db: Database, owner: User) -> None:
    viewer = add_user(db, "viewer@example.com", admin=False)
    with db.session() as session:
        add_member(session, find_site(session, SITE), viewer, VIEWER)
    log_in(client, owner)
    _post(client, "/sites", domain="second.example", timezone="UTC")
    _post(client, f"{SETTINGS}/goals", name="Signup", kind="page", pattern="/thanks")
    _post(client, f"{SETTINGS}/budgets", scope="campaign", name="spring", amount="100",
          currency="EUR")  # fmt: skip
    _post(client, f"{SETTINGS}/ad-spend/import", name="a.csv",
          text="date,utm_source,utm_medium,utm_campaign,cost,currency\n"
               "2026-11-02,g,cpc,A,1,EUR\n")  # fmt: skip
    _post(client, f"{SETTINGS}/members/{viewer.id}/role", role="admin")
    _post(client, f"{SETTINGS}/invitations", email="new@example.com", role="viewer")
    _post(client, f"{SETTINGS}/shares", name="Board")
    _post(client, "/sites/second.example/settings/delete", confirm="second.example")
    who = {entry[0] for entry in _entries(db)}
    assert who == {"owner@example.com"}
    assert [(site, action, detail) for _who, site, action, detail in _entries(db)] == [
        ("second.example", "site.create", "second.example"),
        (SITE, "goal.add", "'Signup': Visit /thanks"),
        (SITE, "budget.set", "Budget for Campaign 'spring' set: 100.00 EUR a month."),
        (SITE, "cost.import", "Imported 1 cost rows of a.csv (0 of them replaced rows already "
                              "stored): 2026-11-02 to 2026-11-02, 1.00 EUR."),
        (SITE, "member.role", "viewer@example.com is now admin of shop.example (was viewer)."),
        (SITE, "invite.create", "new@example.com invited as viewer"),
        (SITE, "share.create", "Share link 'Board'"),
        ("second.example", "site.delete", "The site and its data"),
    ]  # fmt: skip


def test_a_refused_change_records_nothing(client: FlaskClient, db: Database, owner: User) -> None:
    log_in(client, owner)
    client.post(
        f"{SETTINGS}/members/{owner.id}/role",
        data={"csrf_token": csrf_token(client, "/sites"), "role": "viewer"},
    )  # the last owner
    client.post(
        f"{SETTINGS}/goals",
        data={"csrf_token": csrf_token(client, "/sites"), "name": "", "kind": "page"},
    )
    assert _entries(db) == []


def test_api_changes_name_the_keys_user(client: FlaskClient, db: Database, owner: User) -> None:
    with db.session() as session:
        _, key = create_api_key(session, session.get(User, owner.id))
    headers = {"Authorization": f"Bearer {key}"}
    created = client.post(
        "/api/v1/goals",
        json={"site_id": SITE, "name": "API goal", "kind": "event", "event_name": "Buy"},
        headers=headers,
    )
    assert created.status_code == 201
    client.delete(f"/api/v1/goals/{created.get_json()['id']}?site_id={SITE}", headers=headers)
    client.post("/api/v1/annotations", json={"site_id": SITE, "text": "Hi"}, headers=headers)
    assert [(who, action) for who, _site, action, _detail in _entries(db)] == [
        ("owner@example.com", "goal.add"),
        ("owner@example.com", "goal.delete"),
        ("owner@example.com", "annotation.add"),
    ]


def test_command_line_changes_name_no_user(
    db: Database, owner: User, database_url: str, tmp_path
) -> None:
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "d")}
    runner = CliRunner()
    for args in (
        ["apikeys", "create", "owner@example.com", "--name", "sheet"],
        ["goals", "add", "--site", SITE, "--name", "Buy", "--event", "Buy"],
        ["budgets", "set", "--site", SITE, "--campaign", "spring", "--amount", "5",
         "--currency", "EUR"],
        ["invite", SITE, "x@example.com"],
        ["sites", "delete", SITE, "--yes"],
    ):  # fmt: skip
        assert runner.invoke(cli, args, env=env).exit_code == 0, args
    entries = _entries(db)
    assert {who for who, *_ in entries} == {""}
    assert [(site, action) for _who, site, action, _detail in entries] == [
        ("", "apikey.create"),
        (SITE, "goal.add"),
        (SITE, "budget.set"),
        (SITE, "invite.create"),
        (SITE, "site.delete"),
    ]
    assert re.fullmatch(r"Key trk_\S+… \(sheet\), scope write, of owner@example.com", entries[0][3])
    with db.session() as session:
        key_id = session.scalars(select(ApiKey.id)).one()
    assert runner.invoke(cli, ["apikeys", "revoke", str(key_id)], env=env).exit_code == 0
    assert _entries(db)[-1][2] == "apikey.revoke"


def test_settings_page_shows_the_latest_100_escaped(
    client: FlaskClient, db: Database, owner: User
) -> None:
    with db.session() as session:
        site = find_site(session, SITE)
        user = session.get(User, owner.id)
        for number in range(105):
            audit.record(session, user, site, "goal.add", f"goal {number}")
        audit.record(session, user, site, "goal.add", "<script>alert(1)</script>")
    log_in(client, owner)
    section = client.get(SETTINGS).get_data(as_text=True).split('id="audit"')[1]
    section = section.split("</section>")[0]
    assert section.count("<tr>") == 1 + 100  # the header and the latest 100
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script>" not in section
    assert "goal 104" in section and "goal 6<" in section and "goal 5<" not in section


def test_only_server_administrators_read_every_sites_log(
    app: Flask, client: FlaskClient, db: Database, owner: User
) -> None:
    other = add_user(db, "other@example.com", admin=False)
    with db.session() as session:
        site = add_site(session, "other.example", owner=other)
        audit.record(session, session.get(User, other.id), site, "goal.add", "theirs")
        audit.record(session, None, None, "apikey.create", "a key")
    log_in(client, owner)
    assert client.get("/audit").status_code == 403
    assert "theirs" not in client.get(SETTINGS).get_data(as_text=True)  # another site's
    assert app.test_client().get("/audit").status_code == 302  # to the login page
    root = app.test_client()
    log_in(root, add_user(db, "root@example.com", admin=True))
    page = root.get("/audit").get_data(as_text=True)
    assert "theirs" in page and "<td>other.example</td>" in page and "command line" in page
    assert 'href="/audit"' in root.get("/sites").get_data(as_text=True)
