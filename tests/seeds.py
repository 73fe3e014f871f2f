"""Worlds stored once per module and worker, each test starting on a copy of them.

A module whose tests all need the same rows (a site with its traffic, goals and costs; users
with their roles) stores them once on each database: in a SQLite file each test's database
is a copy of (`sqlite_seed`), and in a schema of the session's PostgreSQL database each
test's is filled from (`postgres_seed`, fixtures.save_postgres_seed). A copy costs a
millisecond or a few; storing the rows again through the collector cost each test tens.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask

from tests.fixtures import app_settings, save_postgres_seed
from tracker.app import create_app
from tracker.db import Database

T = TypeVar("T")


@contextmanager
def module_app(url: str, data_dir: Path) -> Iterator[Flask]:
    """A test app on a module's own database (a seed's, a module's shared one), its spool
    stored and its connections closed after (on SQLite the last one folds the log into the
    file, which may be copied next)."""
    app = create_app(app_settings(url, data_dir))
    app.config["TESTING"] = True
    try:
        yield app
    finally:
        app.extensions["tracker.ingest"].flush()
        db: Database = app.extensions["tracker.db"]
        db.dispose()


def seed_sqlite(template: Path, folder: Path, build: Callable[[Flask], T]) -> tuple[Path, T]:
    """A copy of the migrated `template` in `folder` holding what `build` stores, and what
    `build` returned."""
    path = folder / "seed.db"
    shutil.copy(template, path)
    with module_app(f"sqlite:///{path}", folder / "data") as app:
        built = build(app)
    return path, built


def seed_postgres(
    url: str, empty: Callable[[], None], name: str, folder: Path, build: Callable[[Flask], T]
) -> tuple[str, T]:
    """The seed `name` (fixtures.save_postgres_seed) of what `build` stores in the emptied
    session database at `url`, and what `build` returned."""
    empty()
    with module_app(url, folder / "data") as app:
        built = build(app)
    return save_postgres_seed(url, name), built


def seeded_world(name: str, build: Callable[[Flask], Any]) -> Any:
    """`seeded_variants` of one world, stored by `build(app)`: `variant` is not
    parametrized."""
    return seeded_variants(name, ("world",), lambda app, _variant: build(app))


def seeded_variants(name: str, variants: Sequence[str], build: Callable[[Flask, str], Any]) -> Any:
    """The fixtures of a module whose tests each start on one of `variants` of a world,
    stored by `build(app, variant)`; assign them to the module's names, in this order:

        variant_seeds_sqlite, variant_seeds_postgres, variant, sqlite_seed, postgres_seed,
        world = seeded_variants(...)

    `variant` is parametrized over `variants` (when there are several); `world` is what
    `build` returned for the test's variant on the test's database, and the tests that ask
    for it start on its copy. `name` names the PostgreSQL seeds' schemas: one per module."""

    @pytest.fixture(scope="module")
    def sqlite_worlds(
        tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
    ) -> dict[str, tuple[Path, Any]]:
        return {
            v: seed_sqlite(
                sqlite_template,
                tmp_path_factory.mktemp(f"seed-{name}"),
                lambda app, v=v: build(app, v),
            )
            for v in variants
        }

    @pytest.fixture(scope="module")
    def postgres_worlds(
        postgres_url: str,
        empty_postgres: Callable[[], None],
        tmp_path_factory: pytest.TempPathFactory,
    ) -> dict[str, tuple[str, Any]]:
        return {
            v: seed_postgres(
                postgres_url,
                empty_postgres,
                f"seed_{name}_{index}",
                tmp_path_factory.mktemp(f"seed-{name}"),
                lambda app, v=v: build(app, v),
            )
            for index, v in enumerate(variants)
        }

    @pytest.fixture(params=variants if len(variants) > 1 else None)
    def variant(request: pytest.FixtureRequest) -> str:
        chosen: str = getattr(request, "param", variants[0])
        return chosen

    # A test of the module that asks for no world starts on an empty database, as elsewhere.
    @pytest.fixture
    def sqlite_seed(request: pytest.FixtureRequest, sqlite_template: Path) -> Path:
        if "variant" not in request.fixturenames:
            return sqlite_template
        seed: Path = request.getfixturevalue("variant_seeds_sqlite")[_variant(request)][0]
        return seed

    @pytest.fixture
    def postgres_seed(request: pytest.FixtureRequest) -> str | None:
        if "variant" not in request.fixturenames:
            return None
        seed: str = request.getfixturevalue("variant_seeds_postgres")[_variant(request)][0]
        return seed

    @pytest.fixture
    def world(request: pytest.FixtureRequest, variant: str, db: Database) -> Any:
        worlds = "variant_seeds_sqlite" if db.is_sqlite else "variant_seeds_postgres"
        return request.getfixturevalue(worlds)[variant][1]

    return sqlite_worlds, postgres_worlds, variant, sqlite_seed, postgres_seed, world


def _variant(request: pytest.FixtureRequest) -> str:
    chosen: str = request.getfixturevalue("variant")
    return chosen
