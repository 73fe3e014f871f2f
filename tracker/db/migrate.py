"""Alembic, driven from code: the `tracker migrate` command and tests use these."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from tracker.db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Percent signs in passwords would be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> bool:
    """Migrate the database to `revision`; returns whether any migration ran."""
    before = current_revision(database_url)
    command.upgrade(alembic_config(database_url), revision)
    return current_revision(database_url) != before


def current_revision(database_url: str) -> str | None:
    """The database's Alembic revision (None: not migrated yet)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
