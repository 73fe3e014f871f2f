"""Visitor id: a keyed hash of (daily salt, site, IP, user agent); salts rotate daily.

The salt is random and lives in the database only for today and yesterday (yesterday's lets
a visit that crosses midnight continue); `rotate_salts` deletes older ones, after which
nobody can link a day's ids to an IP address or to another day's ids.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import date, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from tracker.db import Database
from tracker.db.models import DailySalt

SALT_BYTES = 32
KEEP_DAYS = 2  # today and yesterday
CACHE_SECONDS = 3600.0


def visitor_id(salt: bytes, site_id: int, ip: str, user_agent: str) -> int:
    """A signed 64-bit id (fits BIGINT on both databases)."""
    digest = hashlib.blake2b(
        f"{site_id}\x00{ip}\x00{user_agent}".encode(), key=salt, digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _insert_ignore(db: Database, day: date, secret: bytes) -> None:
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(DailySalt).values(day=day, secret=secret).on_conflict_do_nothing()
    with db.session() as session:
        session.execute(stmt)


def ensure_salt(db: Database, day: date) -> bytes:
    """The salt of `day`, created if missing (first writer wins across processes)."""
    _insert_ignore(db, day, secrets.token_bytes(SALT_BYTES))
    with db.session() as session:
        secret = session.scalar(select(DailySalt.secret).where(DailySalt.day == day))
    assert secret is not None
    return bytes(secret)


def rotate_salts(db: Database, today: date) -> None:
    """Create today's salt and delete those older than yesterday. Idempotent."""
    ensure_salt(db, today)
    with db.session() as session:
        session.execute(delete(DailySalt).where(DailySalt.day < today - timedelta(KEEP_DAYS - 1)))


class Salts:
    """Per-process cache of salts by day. Entries expire after an hour, so a salt that
    rotation deleted is forgotten by every process soon after."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[date, tuple[float, bytes | None]] = {}
        self._lock = threading.Lock()

    def _cached(self, day: date) -> tuple[bool, bytes | None]:
        entry = self._cache.get(day)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def _remember(self, day: date, secret: bytes | None) -> None:
        with self._lock:
            self._cache[day] = (time.monotonic() + CACHE_SECONDS, secret)

    def for_day(self, day: date) -> bytes:
        """The salt of `day`, created when missing."""
        _, secret = self._cached(day)
        if secret is None:
            secret = ensure_salt(self.db, day)
            self._remember(day, secret)
        return secret

    def existing(self, day: date) -> bytes | None:
        """The salt of `day` if the database still has it (yesterday's, for midnight)."""
        found, secret = self._cached(day)
        if not found:
            with self.db.session() as session:
                stored = session.scalar(select(DailySalt.secret).where(DailySalt.day == day))
            secret = bytes(stored) if stored is not None else None
            self._remember(day, secret)
        return secret


class RunSalts(Salts):
    """Salts of one process run, one random per day, never stored: an access-log import's.

    Its visitor ids can be linked to no live traffic, no other import and, once the run
    ends, to no address, however long ago the day was: a day's stored salt exists only
    for today and yesterday, and a past day's could not be made again without keeping a
    secret that links every day's ids. Within the run, a day's salt is one, so the run's
    files count a visitor once per day and a visit continues past midnight."""

    def __init__(self) -> None:
        self._secrets: dict[date, bytes] = {}

    def for_day(self, day: date) -> bytes:
        secret = self._secrets.get(day)
        if secret is None:
            secret = self._secrets[day] = secrets.token_bytes(SALT_BYTES)
        return secret

    def existing(self, day: date) -> bytes | None:
        return self._secrets.get(day)
