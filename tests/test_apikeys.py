"""API keys: revoking one (`tracker apikeys revoke`) and changing its user's admin flag
count from the very next request, on every app sharing the database (no per-worker cache)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.orm import Session

from tests.helpers import DEFAULT_USER_AGENT, add_user
from tests.test_members import blank_url  # noqa: F401 - the fixture: an empty database
from tracker.accounts import api_key_caller, create_api_key, hash_api_key
from tracker.cli import cli
from tracker.db import Database
from tracker.db.migrate import upgrade
from tracker.db.models import AdCost, ApiKey, Event, User
from tracker.sites import add_site

SITE = "example.com"


def revoke(database_url: str, key: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["apikeys", "revoke", key],
        env={"TRACKER_DATABASE_URL": database_url, "TRACKER_CONFIG": None},
        prog_name="tracker",
    )
    return result.exit_code, result.output


def send(app: Flask, key: str) -> int:
    """A trusted batch of one event; its status."""
    response = app.test_client().post(
        "/api/events",
        json=[{"site": SITE, "type": "pageview", "url": f"https://{SITE}/", "ip": "203.0.113.9"}],
        headers={"Authorization": f"Bearer {key}", "User-Agent": DEFAULT_USER_AGENT},
    )
    assert response.status_code != 400, response.get_data(as_text=True)
    return response.status_code


def stats(app: Flask, key: str) -> int:
    response = app.test_client().get(
        f"/api/v1/stats/aggregate?site_id={SITE}", headers={"Authorization": f"Bearer {key}"}
    )
    return response.status_code


def new_key(db: Database, user: User, name: str = "") -> str:
    with db.session() as session:
        return create_api_key(session, session.get(User, user.id), name)[1]


@pytest.fixture
def two_apps(make_app: Callable[..., Flask]) -> tuple[Flask, Flask]:
    """Two apps on one database: two workers, or two servers."""
    first, second = make_app(), make_app()
    with first.extensions["tracker.db"].session() as session:
        add_site(session, SITE)
    return first, second


def test_a_revoked_key_is_refused_on_the_next_request(
    two_apps: tuple[Flask, Flask], database_url: str
) -> None:
    first, second = two_apps
    db = first.extensions["tracker.db"]
    key = new_key(db, add_user(db))
    for app in two_apps:  # each has seen the key work
        assert send(app, key) == 202
        assert stats(app, key) == 200

    code, output = revoke(database_url, key[:12] + "…")  # as `tracker apikeys list` shows it
    assert code == 0, output
    assert f"Revoked {key[:12]}… of admin@example.com" in output

    for app in (second, first):
        assert send(app, key) == 401
        assert stats(app, key) == 401


def test_a_changed_admin_flag_counts_on_the_next_request(two_apps: tuple[Flask, Flask]) -> None:
    db = two_apps[0].extensions["tracker.db"]
    user = add_user(db, "ops@example.com", admin=False)  # not the site's owner
    key = new_key(db, user)

    def make_admin(flag: bool) -> None:
        with db.session() as session:
            session.execute(update(User).where(User.id == user.id).values(is_admin=flag))

    assert [send(app, key) for app in two_apps] == [403, 403]
    make_admin(True)
    assert [send(app, key) for app in two_apps] == [202, 202]
    make_admin(False)
    assert [send(app, key) for app in two_apps] == [403, 403]


def test_revoke_by_id_prefix_or_key_and_its_errors(app: Flask, database_url: str) -> None:
    db = app.extensions["tracker.db"]
    user = add_user(db)
    keys = [new_key(db, user, name) for name in ("ci", "backend", "shop")]
    with db.session() as session:
        ids = list(session.scalars(select(ApiKey.id).order_by(ApiKey.id)))

    listed = (
        CliRunner()
        .invoke(cli, ["apikeys", "list"], env={"TRACKER_DATABASE_URL": database_url})
        .output
    )
    assert listed.splitlines()[0].split()[:2] == ["ID", "KEY"]
    assert [str(ids[0]), f"{keys[0][:12]}…"] == listed.splitlines()[1].split()[:2]

    assert revoke(database_url, str(ids[0]))[0] == 0  # by id
    assert revoke(database_url, keys[1])[0] == 0  # the whole key
    assert revoke(database_url, keys[2][:9])[0] == 0  # the start of its prefix
    with db.session() as session:
        assert session.scalars(select(ApiKey)).all() == []

    for ident, message in [
        (str(ids[0]), f"no API key with id {ids[0]}"),
        ("trk_", "at least 8 characters"),
        ("trk_zzzzzzzz", "no API key starts with 'trk_zzzzzzzz'"),
    ]:
        code, output = revoke(database_url, ident)
        assert code == 1
        assert message in output
        assert len(output.strip().splitlines()) == 1


def test_an_ambiguous_prefix_names_the_ids(app: Flask, database_url: str) -> None:
    db = app.extensions["tracker.db"]
    user = add_user(db)
    new_key(db, user)
    new_key(db, user)
    with db.session() as session:  # two keys whose prefixes start alike
        first, second = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
        second.prefix = first.prefix[:10] + "zz"
        same = first.prefix[:10]
    code, output = revoke(database_url, same)
    assert code == 1
    assert f"2 API keys start with {same!r} (ids {first.id}, {second.id}): give the id" in output


def test_last_use_is_written_at_most_once_a_minute(app: Flask) -> None:
    db = app.extensions["tracker.db"]
    with db.session() as session:
        add_site(session, SITE)
    key = new_key(db, add_user(db))

    def last_used() -> datetime | None:
        with db.session() as session:
            moment = session.scalar(select(ApiKey.last_used_at))
        return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)

    def set_last_used(moment: datetime) -> None:
        with db.session() as session:
            session.execute(update(ApiKey).values(last_used_at=moment))

    assert last_used() is None
    assert send(app, key) == 202
    assert last_used() is not None
    recent = datetime.now(UTC) - timedelta(seconds=20)
    set_last_used(recent)
    assert send(app, key) == 202
    assert last_used() == recent  # not written again within the minute
    old = datetime.now(UTC) - timedelta(minutes=2)
    set_last_used(old)
    assert stats(app, key) == 200
    used = last_used()
    assert used is not None and used > recent


def test_a_read_key_reads_and_may_not_write(app: Flask, db: Database) -> None:
    owner = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=session.get(User, owner.id))
        read_key = create_api_key(session, session.get(User, owner.id), "sheet", "read")[1]
        write_key = create_api_key(session, session.get(User, owner.id), "backend", "write")[1]
    client = app.test_client()
    row = {"date": "2026-11-01", "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "A",
           "cost": "1", "currency": "EUR"}  # fmt: skip
    for key, allowed in ((read_key, False), (write_key, True)):
        bearer = {"Authorization": f"Bearer {key}"}
        assert stats(app, key) == 200
        costs = client.post("/api/v1/costs", json={"site_id": SITE, "rows": [row]}, headers=bearer)
        goal = client.post(
            "/api/v1/goals",
            json={"site_id": SITE, "name": "Buy", "kind": "event", "event_name": "Buy"},
            headers=bearer,
        )
        if allowed:
            assert (costs.status_code, goal.status_code) == (200, 201)
            assert send(app, key) == 202
            continue
        for answer in (costs, goal):
            assert answer.status_code == 403
            assert answer.get_json() == {
                "error": "This API key's scope is read: it reads stats only. Create a key with "
                "the write scope to send events, costs, goals or notes."
            }
        assert send(app, key) == 403
        beacon = client.post(
            "/api/event",
            json={"site": SITE, "type": "pageview", "url": f"https://{SITE}/"},
            headers=bearer,
        )
        assert beacon.status_code == 403 and "scope is read" in beacon.get_json()["error"]
    with db.session() as session:
        assert session.scalar(select(func.count(AdCost.id))) == 1
        assert session.scalar(select(func.count(Event.id))) == 1


def test_cli_keys_are_write_keys_unless_told(app: Flask, database_url: str) -> None:
    add_user(app.extensions["tracker.db"], "owner@example.com", admin=False)
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_CONFIG": None}
    runner = CliRunner()
    for args in (["--name", "old"], ["--name", "sheet", "--scope", "read"]):
        result = runner.invoke(cli, ["apikeys", "create", "owner@example.com", *args], env=env)
        assert result.exit_code == 0, result.output
    bad = runner.invoke(cli, ["apikeys", "create", "owner@example.com", "--scope", "all"], env=env)
    assert bad.exit_code == 2 and "'all' is not one of 'read', 'write'" in bad.output
    listed = runner.invoke(cli, ["apikeys", "list"], env=env).output
    assert [line.split()[4] for line in listed.splitlines()[1:]] == ["write", "read"]


def test_keys_from_before_scopes_become_write_keys(blank_url: str) -> None:  # noqa: F811
    url = blank_url
    upgrade(url, "0016")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (email, password_hash, is_admin, created_at, "
                "session_generation) VALUES ('ann@example.com', '-', false, '2026-01-01', 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) "
                "SELECT id, 'old', 'trk_old', :h, '2026-01-01' FROM users"
            ),
            {"h": hash_api_key("trk_old-key")},
        )
    upgrade(url)
    with Session(engine) as session:
        caller = api_key_caller(session, "trk_old-key")
        assert caller is not None and caller.scope == "write" and caller.may_write
        session.rollback()
    engine.dispose()
