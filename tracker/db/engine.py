"""Engine set-up: SQLite pragmas for the embedded default, a connection pool for PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from tracker.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 5000
# The PostgreSQL statement timeout of transactions begun in this context (thread), in ms;
# 0: none. Set for web and API reads (tracker.web.database), never for jobs or writers.
statement_timeout_ms: ContextVar[int] = ContextVar("statement_timeout_ms", default=0)


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the single writer; NORMAL sync keeps every committed
        # transaction across a process crash (kill -9), losing at most the last ones on
        # power loss.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def make_engine(url: str, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any) -> Engine:
    """An engine; on SQLite, a lock held longer than busy_timeout_ms fails the statement."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "begin", _apply_statement_timeout)
    return engine


def _apply_statement_timeout(conn: Connection) -> None:
    """SET LOCAL, so it lasts this transaction only and the pooled connection goes back
    without it. On the DBAPI cursor: the driver begins the transaction with it."""
    timeout_ms = statement_timeout_ms.get()
    if timeout_ms:
        cursor = conn.connection.cursor()
        try:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        finally:
            cursor.close()


def open_database(settings: Settings) -> Database:
    """The database of `settings`. A writer waits for the SQLite lock at most half of a
    waiting request's patience, then retries, so the request can still be answered within
    store_timeout_seconds."""
    busy_timeout_ms = min(SQLITE_BUSY_TIMEOUT_MS, settings.store_timeout_seconds * 500)
    return Database(settings.resolved_database_url(), busy_timeout_ms=busy_timeout_ms)


class Database:
    """An engine and its session factory; one per app (per process)."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # The columnar store's directory (tracker.columnar), set by the app from its
        # settings; None: reports read the database alone.
        self.columnar_root: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
