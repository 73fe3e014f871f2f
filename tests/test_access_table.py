"""The access-control table (issue 18): every route that changes something, and every site
page and API read, tried by each role on both databases.

Roles: the site's owner, an admin, a viewer, a logged-in user who is not a member (and owns
another site), and a server administrator. A member whose role is too low gets 403 and a
non-member 404 (the answer for a site that does not exist), and nothing in the database
changes; a role that may gets through and the change is made. The page of users
(/admin/users) is the server administrators' alone: 403 for everyone else, as /audit.

The routes are read from the app's url_map: a new route that changes something (POST,
PUT, PATCH, DELETE) or a new site page without a row here fails `test_every_route_has_a_row`.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Dialect, Text, func, literal, literal_column, select
from sqlalchemy.orm import Session

from tests.fixtures import migrated_postgres_database
from tests.helpers import csrf_token, log_in, session_token
from tests.seeds import module_app, seeded_world
from tracker.accounts import create_api_key
from tracker.alerts import SPIKE, add_rule
from tracker.annotations import add_annotation
from tracker.budgets import set_budget
from tracker.costs import parse_cost_json, store_costs
from tracker.db import Database
from tracker.db.models import Base, User
from tracker.goals import add_funnel, add_goal
from tracker.invitations import create_invitation
from tracker.links import build_link, save_link
from tracker.members import ADMIN, OWNER, VIEWER, add_member
from tracker.sites import add_site, create_share_link
from tracker.subscribers import set_recipient

SITE = "shop.example"
SERVER = "server administrator"  # a route's need: the page of users
ROLES = ("owner", "admin", "viewer", "non-member", "server admin")
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
# Routes that change something but are not a site's: each has its own tests.
NOT_SITE_ROUTES = {
    ("auth.setup", "POST"): "first run: only while there is no user (test_web_auth)",
    ("auth.login", "POST"): "logging in (test_web_auth, test_web_login_guard)",
    ("auth.logout", "POST"): "logging out (test_web_auth)",
    ("ingest.event", "POST"): "the collector: anonymous beacons (test_ingest_http)",
    ("ingest.events", "POST"): "trusted ingestion: owners' and admins' keys "
    "(test_viewer_key_may_not_send_events below)",
    ("invitations.take", "POST"): "accepting an invitation: the link's token (test_invitations)",
    ("email_reports.unsubscribe_now", "POST"): "unsubscribing: the mail's signed link "
    "(test_email_reports)",
    ("auth.login_code", "POST"): "the two-factor step of logging in (test_twofactor)",
    # One's own account, whoever is logged in (test_account, test_twofactor).
    ("account.email", "POST"): "changing one's email address (test_account)",
    ("account.password", "POST"): "changing one's password (test_account)",
    ("account.end_other_sessions", "POST"): "logging out one's other sessions (test_account)",
    ("account.create_key", "POST"): "creating one's API key (test_account)",
    ("account.revoke_key", "POST"): "revoking one's own API key only (test_account)",
    ("twofactor.confirm_code", "POST"): "turning on one's two-factor login (test_twofactor)",
    ("twofactor.turn_off", "POST"): "turning off one's two-factor login (test_twofactor)",
    ("twofactor.renew_codes", "POST"): "one's new recovery codes (test_twofactor)",
    ("password_reset.forgot", "POST"): "asking for a reset link: anyone (test_password_reset)",
    ("password_reset.reset", "POST"): "a new password: the link's token (test_password_reset)",
}
COST_ROW = {
    "date": "2026-11-01",
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "Spring",
    "cost": "12.30",
    "currency": "EUR",
}
COST_CSV = "date,utm_source,utm_medium,utm_campaign,cost,currency\n2026-11-02,g,cpc,A,1,EUR\n"


@dataclass
class World:
    users: dict[str, User]
    keys: dict[str, str]
    ids: dict[str, int]


def _user(session: Session, email: str, admin: bool = False) -> User:
    """A user who never logs in by password (tests log in by session): no slow hashing."""
    user = User(email=email, password_hash="-", is_admin=admin)
    session.add(user)
    session.flush()
    return user


# `world`: the site with one of everything a route can change, its members and their keys,
# built once per module and worker on each database, each test that asks for it starting on
# a copy (tests/seeds.py): a build costs ~25 ms of CPU on SQLite, a copy well under one.
variant_seeds_sqlite, variant_seeds_postgres, variant, sqlite_seed, postgres_seed, world = (
    seeded_world("access_table", lambda app: build_world(app.extensions["tracker.db"]))
)


def build_world(db: Database) -> World:
    """The users, sites and everything else of `world`, stored in `db`."""
    with db.session() as session:
        users = {
            "owner": _user(session, "owner@example.com"),
            "admin": _user(session, "admin@example.com"),
            "viewer": _user(session, "viewer@example.com"),
            "non-member": _user(session, "outsider@example.com"),
            "server admin": _user(session, "root@example.com", admin=True),
        }
        target = _user(session, "target@example.com")
        # Two-factor login on, for the page of users to turn it off.
        target.totp_secret, target.totp_enabled_at = "JBSWY3DPEHPK3PXP", datetime.now(UTC)
        site = add_site(session, SITE, owner=users["owner"])
        add_member(session, site, users["admin"], ADMIN)
        add_member(session, site, users["viewer"], VIEWER)
        add_member(session, site, target, VIEWER)
        add_site(session, "other.example", owner=users["non-member"])
        first = add_goal(session, site, name="Signup", kind="event", event_name="Signup")
        second = add_goal(session, site, name="Thanks", kind="page", pattern="/thanks")
        funnel = add_funnel(session, site, name="Checkout", steps=[first.id, second.id])
        budget = set_budget(
            session, site, scope="campaign", name="spring", amount="100", currency="EUR"
        ).budget
        note = add_annotation(session, site, "2026-03-01", "Launch")
        link = save_link(
            session,
            site,
            build_link(
                "https://shop.example/",
                {"source": "news", "medium": "email", "campaign": "spring"},
                keep_case=False,
            ),
        )
        share = create_share_link(session, site, "Agency")
        recipient = set_recipient(
            session, site, "list@example.com", weekly=True, monthly=False, alerts=False
        )
        alert = add_rule(session, site, kind=SPIKE, threshold=100)
        store_costs(session, site, parse_cost_json([COST_ROW]).rows)
        invitation, _token = create_invitation(
            session,
            site,
            "pending@example.com",
            VIEWER,
            actor_role=OWNER,
            by=None,
            expiry=timedelta(hours=72),
        )
        keys = {
            role: create_api_key(session, session.get(User, user.id))[1]
            for role, user in users.items()
        }
        ids = {
            "goal": first.id,
            "second_goal": second.id,
            "funnel": funnel.id,
            "budget": budget.id,
            "note": note.id,
            "link": link.id,
            "share": share.id,
            "invitation": invitation.id,
            "target": target.id,
            "recipient": recipient.id,
            "alert": alert.id,
        }
    return World(users=users, keys=keys, ids=ids)


@dataclass(frozen=True)
class Case:
    """One route: who may (the lowest role; None: any logged-in user), the request, whether
    it changes the database when allowed, and answers that differ for some roles."""

    endpoint: str
    method: str
    need: str | None
    request: Callable[[dict[str, int]], dict[str, Any]]
    changes: bool = True
    special: dict[str, int] = field(default_factory=dict)

    @property
    def api(self) -> bool:
        return self.endpoint.startswith("api.")

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint}"


S = f"/sites/{SITE}"


def _form(path: str, **data: Any) -> Callable[[dict[str, int]], dict[str, Any]]:
    """A form POST to `path`, formatted with the world's ids ({goal}, {budget}...)."""
    return lambda ids: {"path": path.format(**ids), "data": {k: str(v) for k, v in data.items()}}


def _json(path: str, body: dict[str, Any] | None = None) -> Callable[[dict[str, int]], Any]:
    return lambda ids: {"path": path.format(**ids), "json": body}


MUTATIONS = [
    Case("sites.index", "POST", None, _form("/sites", domain="new.example", timezone="UTC")),
    Case("site_settings.save", "POST", ADMIN,
         _form(f"{S}/settings", timezone="Europe/Paris", allowed_hostnames="", currency="")),
    Case("site_settings.add_share", "POST", ADMIN, _form(f"{S}/settings/shares", name="Board")),
    Case("site_settings.revoke_share", "POST", ADMIN,
         _form(f"{S}/settings/shares/{{share}}/revoke")),
    Case("site_settings.delete", "POST", OWNER, _form(f"{S}/settings/delete", confirm=SITE)),
    Case("site_settings.add_goal_view", "POST", ADMIN,
         _form(f"{S}/settings/goals", name="New", kind="page", pattern="/new")),
    Case("site_settings.rename_goal_view", "POST", ADMIN,
         _form(f"{S}/settings/goals/{{goal}}/rename", name="Renamed")),
    Case("site_settings.move_goal_view", "POST", ADMIN,
         _form(f"{S}/settings/goals/{{second_goal}}/move/up")),
    Case("site_settings.delete_goal_view", "POST", ADMIN,
         _form(f"{S}/settings/goals/{{goal}}/delete")),
    Case("site_settings.add_funnel_view", "POST", ADMIN,
         lambda ids: {"path": f"{S}/settings/funnels",
                      "data": {"name": "Again", "step_1": ids["second_goal"],
                               "step_2": ids["goal"]}}),
    Case("site_settings.edit_funnel_view", "POST", ADMIN,
         lambda ids: {"path": f"{S}/settings/funnels/{ids['funnel']}",
                      "data": {f"f{ids['funnel']}-name": "Renamed",
                               f"f{ids['funnel']}-step_1": ids["goal"],
                               f"f{ids['funnel']}-step_2": ids["second_goal"]}}),
    Case("site_settings.delete_funnel_view", "POST", ADMIN,
         _form(f"{S}/settings/funnels/{{funnel}}/delete")),
    # The preview checks a file and stores nothing, whoever sends it.
    Case("ad_spend.preview", "POST", ADMIN,
         lambda ids: {"path": f"{S}/settings/ad-spend/preview",
                      "data": {"file": (io.BytesIO(COST_CSV.encode()), "a.csv")},
                      "content_type": "multipart/form-data"},
         changes=False),
    Case("ad_spend.confirm", "POST", ADMIN,
         _form(f"{S}/settings/ad-spend/import", text=COST_CSV, name="a.csv")),
    Case("ad_spend.delete", "POST", ADMIN,
         _form(f"{S}/settings/ad-spend/delete", start="2026-11-01", end="2026-11-30")),
    # An upload is kept (its row and file) for the jobs process to import.
    Case("log_imports.upload", "POST", ADMIN,
         lambda ids: {"path": f"{S}/settings/logs",
                      "data": {"file": (io.BytesIO(b"x\n"), "a.log"), "log_format": "auto",
                               "timezone": "UTC"},
                      "content_type": "multipart/form-data"}),
    Case("budgets.set_view", "POST", ADMIN,
         _form(f"{S}/settings/budgets", scope="source", name="google", amount="50",
               currency="EUR")),
    Case("budgets.change_view", "POST", ADMIN,
         _form(f"{S}/settings/budgets/{{budget}}", amount="200", currency="")),
    Case("budgets.delete_view", "POST", ADMIN, _form(f"{S}/settings/budgets/{{budget}}/delete")),
    Case("annotations.add", "POST", ADMIN,
         _form(f"{S}/annotations", date="2026-03-02", text="Sale", back="settings")),
    Case("annotations.delete", "POST", ADMIN, _form(f"{S}/annotations/{{note}}/delete")),
    Case("links.save", "POST", ADMIN,
         _form(f"{S}/links", base_url="https://shop.example/a", source="ads", medium="cpc",
               campaign="autumn")),
    Case("links.delete", "POST", ADMIN, _form(f"{S}/links/{{link}}/delete")),
    Case("members.role_view", "POST", ADMIN,
         _form(f"{S}/settings/members/{{target}}/role", role="admin")),
    Case("members.remove_view", "POST", ADMIN, _form(f"{S}/settings/members/{{target}}/remove")),
    # Any member may leave, except the last owner; a server administrator is no member.
    Case("members.leave_view", "POST", VIEWER, _form(f"{S}/leave"),
         special={"owner": 400, "server admin": 400}),
    Case("members.invite_view", "POST", ADMIN,
         _form(f"{S}/settings/invitations", email="new@example.com", role="viewer")),
    Case("members.revoke_view", "POST", ADMIN,
         _form(f"{S}/settings/invitations/{{invitation}}/revoke")),
    Case("email_reports.add_recipient", "POST", ADMIN,
         _form(f"{S}/settings/email/recipients", email="new@example.com", monthly="on")),
    Case("email_reports.remove_recipient_view", "POST", ADMIN,
         _form(f"{S}/settings/email/recipients/{{recipient}}/remove")),
    # Queues a mail, which this app cannot send (no SMTP settings): 409 once let through.
    Case("email_reports.send_test", "POST", ADMIN, _form(f"{S}/settings/email/test"),
         special={"owner": 409, "admin": 409, "server admin": 409}),
    Case("alerts.add", "POST", ADMIN,
         _form(f"{S}/settings/alerts", kind="drop", threshold="50", cooldown_hours="6")),
    Case("alerts.delete", "POST", ADMIN, _form(f"{S}/settings/alerts/{{alert}}/delete")),
    Case("api.create_goal", "POST", ADMIN,
         _json("/api/v1/goals", {"site_id": SITE, "name": "API", "kind": "page",
                                 "pattern": "/api"})),
    Case("api.remove_goal", "DELETE", ADMIN, _json(f"/api/v1/goals/{{goal}}?site_id={SITE}")),
    Case("api.create_annotation", "POST", ADMIN,
         _json("/api/v1/annotations", {"site_id": SITE, "date": "2026-03-03", "text": "API"})),
    Case("api.remove_annotation", "DELETE", ADMIN,
         _json(f"/api/v1/annotations/{{note}}?site_id={SITE}")),
    Case("api.cost_import", "POST", ADMIN,
         _json("/api/v1/costs", {"site_id": SITE, "rows": [{**COST_ROW, "cost": "20"}]})),
    # The page of users: the target is a viewer of the site, with two-factor login on.
    Case("users.add", "POST", SERVER, _form("/admin/users", email="new@example.com")),
    Case("users.admin_rights", "POST", SERVER, _form("/admin/users/{target}/admin", on="yes")),
    Case("users.require_two_factor", "POST", SERVER,
         _form("/admin/users/{target}/require-2fa", on="yes")),
    Case("users.disable_two_factor", "POST", SERVER, _form("/admin/users/{target}/disable-2fa")),
    Case("users.password_link", "POST", SERVER, _form("/admin/users/{target}/password-link")),
    Case("users.delete", "POST", SERVER,
         _form("/admin/users/{target}/delete", confirm="target@example.com")),
]  # fmt: skip

READ_ONLY = [
    ("stats.dashboard", f"{S}", VIEWER),
    ("stats.report", f"{S}/reports/sources", VIEWER),
    ("stats.report_csv", f"{S}/reports/sources.csv", VIEWER),
    ("stats.chart_csv", f"{S}/chart.csv", VIEWER),
    ("stats.campaigns", f"{S}/campaigns", VIEWER),
    ("stats.campaigns_csv", f"{S}/campaigns.csv", VIEWER),
    ("stats.card", f"{S}/cards/sources", VIEWER),
    ("stats.funnel_csv", f"{S}/funnel.csv?funnel=Checkout", VIEWER),
    ("stats.status", f"{S}/status.json", VIEWER),
    ("stats.live", f"{S}/live.json", VIEWER),
    ("stats.realtime", f"{S}/realtime", VIEWER),
    ("export.site_export", f"{S}/export/events.csv", VIEWER),
    ("links.index", f"{S}/links", VIEWER),
    ("site_settings.show", f"{S}/settings", ADMIN),
    ("log_imports.status", f"{S}/settings/logs/status.json", ADMIN),
    ("email_reports.preview", f"{S}/settings/email/preview", ADMIN),
    ("api.aggregate", f"/api/v1/stats/aggregate?site_id={SITE}&metrics=visitors", VIEWER),
    ("api.timeseries", f"/api/v1/stats/timeseries?site_id={SITE}", VIEWER),
    ("api.breakdown", f"/api/v1/stats/breakdown?site_id={SITE}&property=visit:source", VIEWER),
    ("api.realtime_visitors", f"/api/v1/stats/realtime/visitors?site_id={SITE}", VIEWER),
    ("api.funnel_steps", f"/api/v1/stats/funnel?site_id={SITE}&funnel=Checkout", VIEWER),
    ("api.goals", f"/api/v1/goals?site_id={SITE}", VIEWER),
    ("api.funnels", f"/api/v1/funnels?site_id={SITE}", VIEWER),
    ("api.annotation_list", f"/api/v1/annotations?site_id={SITE}", VIEWER),
    ("api.cost_list", f"/api/v1/costs?site_id={SITE}&from=2026-11-01&to=2026-11-30", VIEWER),
]
# Not behind a role: the API's description. (The share link's copies of the stats pages,
# /share/<token>/..., are opened by the token alone: test_web_access.)
NOT_ROLE_PAGES = {"api.openapi"}
ROLE_RANK = {VIEWER: 1, ADMIN: 2, OWNER: 3}
RANK_OF = {"owner": 3, "admin": 2, "viewer": 1, "server admin": 3}


def test_every_route_has_a_row(app: Flask) -> None:
    changing = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) & CHANGES
    }
    listed = {(case.endpoint, case.method) for case in MUTATIONS}
    assert changing - set(NOT_SITE_ROUTES) == listed
    site_pages = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set())
        and (rule.rule.startswith("/sites/<domain>") or rule.rule.startswith("/api/v1/"))
    }
    assert site_pages - NOT_ROLE_PAGES == {endpoint for endpoint, _path, _need in READ_ONLY}


VOLATILE = ("api_keys", "last_used_at")


# What `snapshot` reads: every row of every table but the API's rate counts (a key's last
# use moves too); built once, as each test takes two snapshots or more.
SNAPSHOT_READS = {
    table.name: select(*(c for c in table.columns if (table.name, c.name) != VOLATILE))
    for table in Base.metadata.sorted_tables
    if table.name != "api_rate_limits"
}


def snapshot(db: Database) -> dict[str, list[str]]:
    """Every row of every table but the API's rate counts, as text (SNAPSHOT_READS)."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return _snapshot_in_one_round_trip(conn)
        return {
            name: sorted(repr(tuple(row)) for row in conn.execute(read))
            for name, read in SNAPSHOT_READS.items()
        }


def _snapshot_in_one_round_trip(conn: Connection) -> dict[str, list[str]]:
    """The same reads as one statement, each table's rows as a JSON array: a PostgreSQL
    test took two snapshots or more, one round trip per table each (10 ms a snapshot, 5
    this way)."""
    tables = conn.exec_driver_sql(_snapshot_sql(conn.dialect)).scalar_one()
    return {
        name: sorted(json.dumps(row, sort_keys=True) for row in rows or [])
        for name, rows in tables.items()
    }


@functools.cache
def _snapshot_sql(dialect: Dialect) -> str:
    """Compiled once: SQLAlchemy's cache key of a statement this size cost more CPU than the
    statement."""
    arguments = [
        argument
        for name, read in SNAPSHOT_READS.items()
        for argument in (
            literal(name, Text),
            select(func.json_agg(literal_column("snapshot_row")))
            .select_from(read.subquery("snapshot_row"))
            .scalar_subquery(),
        )
    ]
    statement = select(func.json_build_object(*arguments))
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _allowed(role: str, need: str | None) -> bool:
    if need == SERVER:
        return role == "server admin"
    return need is None or (role in RANK_OF and RANK_OF[role] >= ROLE_RANK[need])


def _expected(role: str, need: str | None) -> int | None:
    """None: allowed; else the refusal: 404 for a non-member, 403 for a member below (and
    for anyone but a server administrator on the page of users)."""
    if _allowed(role, need):
        return None
    return 404 if role == "non-member" and need != SERVER else 403


def _client(app: Flask, world: World, role: str, api: bool) -> tuple[FlaskClient, dict[str, str]]:
    client = app.test_client()
    if api:
        return client, {"Authorization": f"Bearer {world.keys[role]}"}
    log_in(client, world.users[role])
    return client, {}


def _send(client: FlaskClient, case: Case, world: World, headers: dict[str, str]) -> Any:
    """The case's request; a form carries a valid CSRF token (the session's)."""
    request = case.request(world.ids)
    if "data" in request:
        request["data"]["csrf_token"] = session_token(client)
    return client.open(method=case.method, headers=headers, **request)


def _leaves_unchanged(case: Case, role: str) -> bool:
    """Whether the case's request by this role is answered without changing anything: a
    refusal, or one of the case's special answers."""
    return role in case.special or _expected(role, case.need) is not None


def _pairs(unchanged: bool) -> list[Any]:
    return [
        pytest.param(case, role, id=f"{case}-{role}")
        for case in MUTATIONS
        for role in ROLES
        if _leaves_unchanged(case, role) == unchanged
    ]


def _check_answer(case: Case, role: str, response: Any, before: Any, after: Any) -> None:
    refused = _expected(role, case.need)
    body = response.get_data(as_text=True)[:300]
    if role in case.special:
        assert response.status_code == case.special[role], body
        assert after == before
    elif refused is not None:
        assert response.status_code == refused, body
        assert after == before, "a refused request changed the database"
    else:
        assert response.status_code in (200, 201, 302), body
        assert (after != before) == case.changes, "the allowed request did not change anything"


@pytest.mark.parametrize(("case", "role"), _pairs(unchanged=False))
def test_mutation_by_role(app: Flask, db: Database, world: World, case: Case, role: str) -> None:
    """A role that may: on a fresh world, as the change is made."""
    client, headers = _client(app, world, role, case.api)
    before = snapshot(db)
    response = _send(client, case, world, headers)
    _check_answer(case, role, response, before, snapshot(db))


@pytest.mark.parametrize(("case", "role"), _pairs(unchanged=True))
def test_refused_mutation_by_role(shared: SharedWorld, case: Case, role: str) -> None:
    """A role that may not (or gets a special answer): on the shared world, which the
    request must leave as it was built (every test on it checks that it left it so)."""
    client, headers = shared.client(role, case.api)
    response = _send(client, case, shared.world, headers)
    _check_answer(case, role, response, shared.unchanged, snapshot(shared.db))


@dataclass
class SharedWorld:
    """One app and world per module and database for the tests that change nothing, with a
    logged-in client and an API key's headers for each role; `unchanged` is the database
    as built, which each of those tests checks it left as it was."""

    app: Flask
    db: Database
    world: World
    web: dict[str, FlaskClient]
    api: dict[str, tuple[FlaskClient, dict[str, str]]]
    unchanged: dict[str, list[str]]

    def client(self, role: str, api: bool) -> tuple[FlaskClient, dict[str, str]]:
        return self.api[role] if api else (self.web[role], {})


def _module_database(
    request: pytest.FixtureRequest, data_dir: Path, sqlite_template: Path
) -> Generator[str, None, None]:
    """A database of its own for the shared world: a copy of the migrated SQLite file, or a
    new PostgreSQL database (the session's is emptied before each test that uses it)."""
    if request.param == "sqlite":
        path = data_dir / "shared.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    with migrated_postgres_database("_access") as url:
        yield url


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def shared(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[SharedWorld]:
    """Building an app and a world costs more than the request a read test sends: the ~130
    read tests of each database share one (each worker of xdist builds its own)."""
    data_dir = tmp_path_factory.mktemp("access_shared")
    databases = _module_database(request, data_dir, sqlite_template)
    try:
        with module_app(next(databases), data_dir / "data") as app:
            db: Database = app.extensions["tracker.db"]
            world = build_world(db)
            web = {}
            for role in ROLES:
                web[role] = app.test_client()
                log_in(web[role], world.users[role])
            api = {
                role: (app.test_client(), {"Authorization": f"Bearer {world.keys[role]}"})
                for role in ROLES
            }
            yield SharedWorld(app, db, world, web, api, snapshot(db))
    finally:
        databases.close()


@pytest.fixture
def reader(shared: SharedWorld) -> Iterator[SharedWorld]:
    """The shared world, checked after the test to be as built: a test that changed it
    would change what the next one reads."""
    yield shared
    assert snapshot(shared.db) == shared.unchanged, "a read-only test changed the database"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("endpoint", "path", "need"), READ_ONLY, ids=[r[0] for r in READ_ONLY])
def test_read_by_role(reader: SharedWorld, endpoint: str, path: str, need: str, role: str) -> None:
    client, headers = reader.client(role, endpoint.startswith("api."))
    response = client.get(path, headers=headers)
    refused = _expected(role, need)
    assert response.status_code == (refused or 200), response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("role", ROLES)
def test_the_page_of_users_by_role(reader: SharedWorld, role: str) -> None:
    client, _ = reader.client(role, api=False)
    assert client.get("/admin/users").status_code == (200 if role == "server admin" else 403)


def test_a_viewer_is_told_which_role_it_takes(app: Flask, world: World) -> None:
    client, _ = _client(app, world, "viewer", api=False)
    page = client.post(
        f"{S}/settings/delete", data={"confirm": SITE, "csrf_token": csrf_token(client, "/sites")}
    )
    assert page.status_code == 403
    assert "Your role on shop.example is viewer: only an owner of the site may do this." in (
        page.get_data(as_text=True)
    )
    api, headers = _client(app, world, "viewer", api=True)
    answer = api.post("/api/v1/goals", json={"site_id": SITE, "name": "X"}, headers=headers)
    assert answer.status_code == 403
    assert answer.get_json() == {
        "error": "Your role on shop.example is viewer: only an admin or an owner of the site "
        "may do this."
    }
    admin, _ = _client(app, world, "admin", api=False)
    token = csrf_token(admin, "/sites")
    assert (
        admin.post(f"{S}/settings/delete", data={"confirm": SITE, "csrf_token": token}).status_code
        == 403
    )


def test_viewer_key_may_not_send_events(app: Flask, world: World) -> None:
    body = [{"site": SITE, "type": "pageview", "url": f"https://{SITE}/"}]
    client = app.test_client()
    for role, status in (("viewer", 403), ("non-member", 403), ("admin", 202), ("owner", 202)):
        headers = {"Authorization": f"Bearer {world.keys[role]}"}
        assert client.post("/api/events", json=body, headers=headers).status_code == status, role


def test_sites_list_shows_only_member_sites(reader: SharedWorld) -> None:
    viewer, _ = reader.client("viewer", api=False)
    html = viewer.get("/sites").get_data(as_text=True)
    assert SITE in html and "other.example" not in html and "Your role: viewer" in html
    assert f'data-site="{SITE}"' not in html  # the script tag is for who can install it
    root, _ = reader.client("server admin", api=False)
    html = root.get("/sites").get_data(as_text=True)
    assert SITE in html and "other.example" in html
