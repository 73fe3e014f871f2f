"""Shared fixtures (loaded by tests/conftest.py): a fresh database per test (SQLite file or
PostgreSQL), and `make_app`.

Every test that uses `make_app`/`app`/`client` runs twice: on SQLite and on PostgreSQL.
PostgreSQL is the server on 127.0.0.1:5432 (user postgres, trust auth); each test session
creates its own database and drops it at the end. In CI (CI set), an unreachable PostgreSQL
fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, create_engine, make_url, text
from werkzeug.test import TestResponse

from tests import shortcuts
from tracker.app import create_app
from tracker.config import Settings
from tracker.db import Database
from tracker.db.migrate import upgrade
from tracker.db.models import Base
from tracker.ingest.views import INGEST_PATHS

PG_ADMIN_URL = os.environ.get(
    "TRACKER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = bool(os.environ.get("CI"))
# URL builders compiled once per process, passwords hashed cheaply: tests/shortcuts.py.
shortcuts.install()


def _postgres_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available ({reason}); run `make test` to start it")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "tracker.db"
    upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def migrated_postgres_database(suffix: str = "") -> Iterator[str]:
    """A new PostgreSQL database, migrated, dropped afterwards: its URL. Skips (fails in CI)
    when there is no server."""
    name = f"tracker_test_{os.getpid()}_{uuid.uuid4().hex[:8]}{suffix}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            # A test database need not survive a power cut: its commits do not wait for
            # the disk (the server is shared by every worker and every test).
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        admin.dispose()
        _postgres_unavailable(str(exc).splitlines()[0])
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    admin.dispose()
    try:
        upgrade(url)
        yield url
    finally:
        _drop_in_background(name)


def _drop_in_background(name: str) -> None:
    """DROP DATABASE waits for the server to write every dirty page out (a checkpoint):
    seconds while the other workers write, and a worker's last test waited up to 6.5 s for
    it. A process of its own drops the database while the tests go on or end."""
    dsn = make_url(PG_ADMIN_URL).set(drivername="postgresql")
    subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, psycopg\n"
            "psycopg.connect(sys.argv[1], autocommit=True).execute(sys.argv[2])",
            dsn.render_as_string(hide_password=False),
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        ],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def empty_postgres(postgres_url: str) -> Iterator[Callable[..., None]]:
    """Empties this session's PostgreSQL database (rows deleted, ids from 1 again), then
    fills it with a seed's rows when given one (`postgres_seed`).

    DELETE rather than TRUNCATE: TRUNCATE gives every table and index a new file, ten
    times slower on the nearly empty tables a test leaves; one round trip for all. Ids
    start again by setval, not ALTER SEQUENCE ... RESTART, which also gives each sequence
    a new file: 25 of them took 15-24 ms of every PostgreSQL test, setval 1."""
    # Pinged: a test may end every connection to the database (an outage it plays).
    engine = create_engine(postgres_url, pool_pre_ping=True)
    with engine.connect() as conn:
        starts = _sequences(conn)
    statements = [f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables)]
    statements += [_setval(name, start, called=False) for name, start in starts.items()]
    emptying = ";\n".join(statements)

    def empty(seed: str | None = None) -> None:
        with engine.begin() as conn:
            conn.execute(text(emptying if seed is None else f"{emptying};\n{seed}"))

    yield empty
    engine.dispose()


def _sequences(conn: Connection) -> dict[str, int]:
    """The schema's id sequences and the value each starts at."""
    rows = conn.execute(
        text(
            "SELECT sequencename, start_value FROM pg_sequences WHERE schemaname = current_schema()"
        )
    )
    return {name: start for name, start in rows}


def _setval(sequence: str, value: int, *, called: bool) -> str:
    """The statement that sets `sequence` where nextval gives `value` (called: after it)."""
    return f"SELECT setval('\"{sequence}\"', {value}, {str(called).lower()})"


def save_postgres_seed(url: str, name: str) -> str:
    """Keep the rows of the database at `url` as they are now, in the schema `name`: the
    seed, the statements that copy them back and set each id sequence where it stood. A
    module's `postgres_seed` fixture may give it: each of its PostgreSQL tests then starts on
    a copy of those rows (a few ms) instead of storing them again."""
    tables = [t.name for t in Base.metadata.sorted_tables]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
            for table in tables:
                conn.execute(text(f'CREATE TABLE "{name}"."{table}" AS TABLE "{table}"'))
            positions = {
                sequence: conn.execute(
                    text(f'SELECT last_value, is_called FROM "{sequence}"')
                ).one()
                for sequence in _sequences(conn)
            }
    finally:
        engine.dispose()
    statements = [f'INSERT INTO "{t}" SELECT * FROM "{name}"."{t}"' for t in tables]
    statements += [
        _setval(sequence, value, called=called) for sequence, (value, called) in positions.items()
    ]
    return ";\n".join(statements)


@pytest.fixture
def sqlite_seed(sqlite_template: Path) -> Path:
    """The file a SQLite test's database is a copy of: the migrated template, or what a
    module seeds it with (rows each of its tests would otherwise store again)."""
    return sqlite_template


@pytest.fixture
def postgres_seed() -> str | None:
    """The seed (`save_postgres_seed`) a PostgreSQL test's database is filled from once
    emptied: none unless a module gives one."""
    return None


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "tracker.db"
        shutil.copy(request.getfixturevalue("sqlite_seed"), path)
        return f"sqlite:///{path}"
    request.getfixturevalue("empty_postgres")(request.getfixturevalue("postgres_seed"))
    url: str = request.getfixturevalue("postgres_url")
    return url


def app_settings(database_url: str, data_dir: Path, /, **overrides: object) -> Settings:
    """A test app's settings: its database and data directory, no scheduler; `overrides`
    (any setting, these two too) win."""
    values: dict[str, object] = {
        "data_dir": str(data_dir),
        "database_url": database_url,
        "secret_key": "test-secret",
        "scheduler_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: object) -> Settings:
        return app_settings(database_url, tmp_path / "data", **overrides)

    return factory


class StoringClient(FlaskClient):
    """The test client, waiting after each collector request for the spool's writer to store
    what it accepted (moments later, in a server), so a test can read the database at once.
    Without the database, it waits at most store_timeout_seconds and goes on."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        if response.request.path.startswith(INGEST_PATHS) and response.status_code < 300:
            self.application.extensions["tracker.ingest"].flush()
        return response


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Flask]]:
    """Build an app on this test's fresh database; keyword arguments override settings."""
    apps: list[Flask] = []

    def factory(**overrides: object) -> Flask:
        app = create_app(make_settings(**overrides))
        app.config["TESTING"] = True
        app.test_client_class = StoringClient
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["tracker.ingest"].flush()  # nothing of this test stored in the next
        app.extensions["tracker.db"].dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def db(app: Flask) -> Database:
    return app.extensions["tracker.db"]
