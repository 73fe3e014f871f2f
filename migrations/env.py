"""Alembic environment: runs migrations online against the configured URL."""

from alembic import context
from sqlalchemy import Connection

from tracker.db.engine import make_engine
from tracker.db.models import Base

target_metadata = Base.metadata


def _check_foreign_keys(connection: Connection) -> None:
    """With foreign keys off, nothing stopped a migration from leaving a dangling one."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table by dropping it; with foreign keys on, that
            # drop would cascade into every table referring to it (dropping `sites` would
            # delete every event). The pragma only takes effect outside a transaction.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                _check_foreign_keys(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `tracker migrate`")
run_migrations_online()
