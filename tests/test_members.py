"""Members and roles (issue 18): who sees which sites, changing roles, removing and leaving,
the last-owner rule, the Members section of the settings page, and the upgrade rule of
migration 0015 (a site's owner_id becomes its owner member). SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text

from tests.fixtures import PG_ADMIN_URL
from tests.helpers import add_user, csrf_token, log_in
from tracker.db import Database
from tracker.db.migrate import alembic_config, upgrade
from tracker.db.models import SiteMember, User
from tracker.members import (
    ADMIN,
    OWNER,
    VIEWER,
    MemberError,
    MemberForbidden,
    add_member,
    change_role,
    check_role,
    leave_site,
    list_members,
    remove_member,
    role_of,
)
from tracker.sites import add_site, find_site, list_sites

SITE = "shop.example"
SETTINGS = f"/sites/{SITE}/settings"


@pytest.fixture
def people(db: Database) -> dict[str, User]:
    """shop.example: ann owns it, bob is an admin, cy a viewer; root is a server admin."""
    users = {
        "ann": add_user(db, "ann@example.com", admin=False),
        "bob": add_user(db, "bob@example.com", admin=False),
        "cy": add_user(db, "cy@example.com", admin=False),
        "root": add_user(db, "root@example.com", admin=True),
    }
    with db.session() as session:
        site = add_site(session, SITE, owner=users["ann"])
        add_member(session, site, users["bob"], ADMIN)
        add_member(session, site, users["cy"], VIEWER)
        add_site(session, "elsewhere.example", owner=users["cy"])
    return users


def _roles(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {m.email: m.role for m in list_members(session, find_site(session, SITE))}


# The rules, without the web


def test_roles_and_what_each_user_sees(db: Database, people: dict[str, User]) -> None:
    with db.session() as session:
        site = find_site(session, SITE)
        assert [role_of(session, people[n], site) for n in ("ann", "bob", "cy", "root")] == [
            OWNER,
            ADMIN,
            VIEWER,
            OWNER,  # a server administrator acts as an owner of every site
        ]
        assert [s.domain for s in list_sites(session, people["bob"])] == [SITE]
        assert [s.domain for s in list_sites(session, people["cy"])] == [
            "elsewhere.example",
            SITE,
        ]
        assert len(list_sites(session, people["root"])) == 2
    assert _roles(db) == {
        "ann@example.com": OWNER,
        "bob@example.com": ADMIN,
        "cy@example.com": VIEWER,
    }


def test_unknown_role_is_a_sentence() -> None:
    with pytest.raises(MemberError, match="'boss' is not a role: choose owner, admin or viewer."):
        check_role("boss")


def test_the_last_owner_cannot_be_demoted_removed_or_leave(
    db: Database, people: dict[str, User]
) -> None:
    ann = people["ann"]
    last = "ann@example.com is the last owner of shop.example: make another member an owner"
    for attempt in (
        lambda s, site: change_role(s, site, OWNER, ann.id, ADMIN),
        lambda s, site: remove_member(s, site, OWNER, ann.id),
    ):
        with pytest.raises(MemberError, match=last), db.session() as session:
            attempt(session, find_site(session, SITE))
    with pytest.raises(MemberError, match="You are the last owner of shop.example"):
        with db.session() as session:
            leave_site(session, find_site(session, SITE), ann)
    assert _roles(db)["ann@example.com"] == OWNER  # nothing half-done

    # With a second owner, the first may step down.
    with db.session() as session:
        site = find_site(session, SITE)
        change_role(session, site, OWNER, people["bob"].id, OWNER)
        change_role(session, site, OWNER, ann.id, VIEWER)
    assert _roles(db) == {
        "bob@example.com": OWNER,
        "ann@example.com": VIEWER,
        "cy@example.com": VIEWER,
    }


def test_admins_manage_admins_and_viewers_not_owners(db: Database, people: dict[str, User]) -> None:
    with db.session() as session:
        site = find_site(session, SITE)
        with pytest.raises(MemberForbidden, match="Only an owner may make someone an owner"):
            change_role(session, site, ADMIN, people["cy"].id, OWNER)
        with pytest.raises(MemberForbidden):
            change_role(session, site, ADMIN, people["ann"].id, VIEWER)
        with pytest.raises(MemberForbidden):
            remove_member(session, site, ADMIN, people["ann"].id)
    with db.session() as session:
        change_role(session, find_site(session, SITE), ADMIN, people["cy"].id, ADMIN)
    assert _roles(db)["cy@example.com"] == ADMIN


def test_members_are_gone_with_their_site(db: Database, people: dict[str, User]) -> None:
    from tracker.sites import delete_site

    with db.session() as session:
        delete_site(session, find_site(session, SITE))
    with db.session() as session:
        assert session.scalars(select(SiteMember.user_id)).all() == [people["cy"].id]


# The Members section of the settings page


def _members(client: FlaskClient) -> str:
    html = client.get(SETTINGS).get_data(as_text=True)
    return html.split('id="members"')[1].split("</section>")[0]


def _post(client: FlaskClient, path: str, **data: str):
    return client.post(path, data={"csrf_token": csrf_token(client, "/sites"), **data})


def test_owner_sees_members_changes_a_role_and_removes_someone(
    client: FlaskClient, db: Database, people: dict[str, User]
) -> None:
    log_in(client, people["ann"])
    section = _members(client)
    assert re.findall(r"<td>([^<]+@example\.com)", section) == [
        "ann@example.com",
        "bob@example.com",
        "cy@example.com",
    ]
    assert 'ann@example.com <span class="muted">(you)</span>' in section
    assert '<option value="owner">owner</option>' in section  # owners may make owners

    cy = people["cy"].id
    changed = _post(client, f"{SETTINGS}/members/{cy}/role", role="admin")
    assert changed.status_code == 302 and changed.location.endswith("#members")
    page = client.get(changed.location).get_data(as_text=True)
    assert "cy@example.com is now admin of shop.example (was viewer)." in page
    assert _roles(db)["cy@example.com"] == ADMIN

    removed = _post(client, f"{SETTINGS}/members/{cy}/remove")
    assert removed.status_code == 302
    assert "cy@example.com (admin) no longer has access to shop.example." in (
        client.get(removed.location).get_data(as_text=True)
    )
    assert "cy@example.com" not in _roles(db)
    other = client.application.test_client()
    log_in(other, people["cy"])
    assert other.get(f"/sites/{SITE}").status_code == 404


def test_refusals_say_why_and_change_nothing(
    client: FlaskClient, db: Database, people: dict[str, User]
) -> None:
    log_in(client, people["ann"])
    ann = people["ann"].id
    demote = _post(client, f"{SETTINGS}/members/{ann}/role", role="viewer")
    assert demote.status_code == 400
    html = demote.get_data(as_text=True)
    assert (
        "ann@example.com is the last owner of shop.example: make another member an owner first."
        in html
    )
    assert 'id="members"' in html  # the settings page again, the sentence in its section
    unknown = _post(client, f"{SETTINGS}/members/{people['cy'].id}/role", role="boss")
    assert unknown.status_code == 400
    assert "&#39;boss&#39; is not a role: choose owner, admin or viewer." in unknown.get_data(
        as_text=True
    )
    gone = _post(client, f"{SETTINGS}/members/{people['root'].id}/remove")
    assert gone.status_code == 400
    assert "That person is not a member of this site (any more)." in gone.get_data(as_text=True)
    assert _roles(db) == {
        "ann@example.com": OWNER,
        "bob@example.com": ADMIN,
        "cy@example.com": VIEWER,
    }


def test_an_admin_cannot_touch_owners(
    client: FlaskClient, db: Database, people: dict[str, User]
) -> None:
    log_in(client, people["bob"])
    section = _members(client)
    assert '<option value="owner">' not in section  # not offered
    assert f"members/{people['ann'].id}/remove" not in section
    sneaky = _post(client, f"{SETTINGS}/members/{people['cy'].id}/role", role="owner")
    assert sneaky.status_code == 403
    assert "Only an owner may make someone an owner, or change an owner." in sneaky.get_data(
        as_text=True
    )
    assert _post(client, f"{SETTINGS}/members/{people['ann'].id}/remove").status_code == 403
    assert _roles(db)["ann@example.com"] == OWNER and _roles(db)["cy@example.com"] == VIEWER
    assert 'id="delete"' not in client.get(SETTINGS).get_data(as_text=True)  # owners' alone


def test_a_viewer_leaves_from_the_sites_page(
    client: FlaskClient, db: Database, people: dict[str, User]
) -> None:
    log_in(client, people["cy"])
    sites = client.get("/sites").get_data(as_text=True)
    assert "Your role: viewer" in sites and f"/sites/{SITE}/leave" in sites
    left = _post(client, f"/sites/{SITE}/leave")
    assert left.status_code == 302 and left.location.endswith("/sites")
    page = client.get("/sites").get_data(as_text=True)
    assert "You left shop.example." in page and f'href="/sites/{SITE}"' not in page
    assert client.get(f"/sites/{SITE}").status_code == 404


def test_the_last_owner_cannot_leave(
    client: FlaskClient, db: Database, people: dict[str, User]
) -> None:
    log_in(client, people["ann"])
    refused = _post(client, f"/sites/{SITE}/leave")
    assert refused.status_code == 400
    assert (
        "You are the last owner of shop.example: make another member an owner first, or "
        "delete the site." in refused.get_data(as_text=True)
    )
    assert _roles(db)["ann@example.com"] == OWNER


def test_emails_are_escaped_in_the_members_list(
    client: FlaskClient, db: Database, people: dict[str, User]
) -> None:
    odd = add_user(db, "<b>x</b>@example.com", admin=False)
    with db.session() as session:
        add_member(session, find_site(session, SITE), odd, VIEWER)
    log_in(client, people["ann"])
    section = _members(client)
    assert "&lt;b&gt;x&lt;/b&gt;@example.com" in section and "<b>x</b>" not in section


# The upgrade rule of migration 0015


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the shared ones are already at the latest revision)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) without a server
    name = f"tracker_upgrade_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_makes_each_sites_owner_its_owner_member(blank_url: str) -> None:
    upgrade(blank_url, "0014")
    engine = create_engine(blank_url)
    with engine.begin() as conn:
        for email, admin in (("ann@example.com", False), ("root@example.com", True)):
            conn.execute(
                text(
                    "INSERT INTO users (email, password_hash, is_admin, created_at, "
                    "session_generation) VALUES (:e, '-', :a, '2026-01-01', 0)"
                ),
                {"e": email, "a": admin},
            )
        ann = conn.execute(text("SELECT id FROM users WHERE email = 'ann@example.com'")).scalar()
        for domain, owner in (("ann.example", ann), ("cli.example", None)):
            conn.execute(
                text(
                    "INSERT INTO sites (domain, timezone, allowed_hostnames, public, "
                    "shared_export, honour_dnt, currency, owner_id, created_at) VALUES "
                    "(:d, 'UTC', '[]', false, false, false, '', :o, '2026-01-01')"
                ),
                {"d": domain, "o": owner},
            )
        site = conn.execute(text("SELECT id FROM sites WHERE domain = 'ann.example'")).scalar()
        conn.execute(
            text(
                "INSERT INTO goals (site_id, name, kind, pattern, event_name, prop_key, "
                "prop_value, currency, position, created_at, hits_built) VALUES "
                "(:s, 'Signup', 'page', '/thanks', '', '', '', '', 0, '2026-01-01', false)"
            ),
            {"s": site},
        )
    upgrade(blank_url)
    with engine.connect() as conn:
        members = conn.execute(
            text(
                "SELECT s.domain, u.email, m.role FROM site_members m "
                "JOIN sites s ON s.id = m.site_id JOIN users u ON u.id = m.user_id"
            )
        ).all()
        goals = conn.execute(text("SELECT count(*) FROM goals")).scalar()
    # The owner stays the owner; a site nobody owned stays the server administrators'; the
    # rebuilt sites table (SQLite) took none of its rows' children with it.
    assert [tuple(m) for m in members] == [("ann.example", "ann@example.com", "owner")]
    assert goals == 1
    command.downgrade(alembic_config(blank_url), "0014")
    with engine.connect() as conn:
        owners = conn.execute(text("SELECT domain, owner_id FROM sites ORDER BY domain")).all()
    assert [tuple(o) for o in owners] == [("ann.example", ann), ("cli.example", None)]
    engine.dispose()
