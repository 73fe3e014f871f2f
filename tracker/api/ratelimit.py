"""A per-key token bucket: N requests per hour, in bursts of up to N, shared by every worker.

The bucket lives in the database (table api_rate_limits, one row per key), so all gunicorn
workers of a server (and all servers on one PostgreSQL) count against one limit. Taking a
request is one statement: an upsert that refills the bucket for the time since its last
request and spends a token only if one is there, atomically (SQLite's write lock, or
PostgreSQL's row lock), so concurrent workers cannot both spend the last token. A refused
request reads the bucket once more to say how long to wait. Failed logins are counted in
the same table (tracker/web/login_guard.py), under keys no API key hash can equal.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import BigInteger, Insert, Select, String, Table, bindparam, case, select, text
from sqlalchemy.dialects import postgresql, sqlite

from tracker.db import Database
from tracker.db.models import ApiRateLimit

HOUR_SECONDS = 3600.0

limits = cast(Table, ApiRateLimit.__table__)


@functools.cache
def _statements(
    dialect_name: str, capacity: float, refill_per_ms: float
) -> tuple[Insert, Select[Any]]:
    """The upsert that takes a token and the bucket's read, for one dialect and allowance:
    built once per process (building them cost more than running them, for every app)."""
    key, now_ms = bindparam("key", type_=String), bindparam("now_ms", type_=BigInteger)
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    full = limits.c.tokens + (now_ms - limits.c.updated_ms) * refill_per_ms
    refilled = case((full > capacity, capacity), else_=full)
    take = (
        dialect.insert(limits)
        .values(key_hash=key, tokens=capacity - 1, updated_ms=now_ms)
        .on_conflict_do_update(
            index_elements=[limits.c.key_hash],
            set_={"tokens": refilled - 1, "updated_ms": now_ms},
            where=refilled >= 1,  # no token: the row stays and nothing is returned
        )
        .returning(limits.c.tokens)
    )
    bucket = select(limits.c.tokens, limits.c.updated_ms).where(limits.c.key_hash == key)
    return take, bucket


class RateLimiter:
    def __init__(self, db: Database, per_hour: int, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.capacity = float(per_hour)
        self.refill_per_ms = per_hour / HOUR_SECONDS / 1000
        self.clock = clock  # wall-clock seconds: every process must read the same time
        self.postgresql = db.engine.dialect.name == "postgresql"
        self._take, self._bucket = _statements(
            db.engine.dialect.name, self.capacity, self.refill_per_ms
        )

    def wait(self, key: str) -> int:
        """Seconds until `key` may spend one request (0: now), spending nothing."""
        now_ms = int(self.clock() * 1000)
        with self.db.engine.connect() as conn:
            bucket = conn.execute(self._bucket, {"key": key}).first()
        if bucket is None:
            return 0
        return self._seconds_until_token(bucket.tokens, now_ms - bucket.updated_ms)

    def take(self, key: str) -> int:
        """Spend one request of `key`'s allowance: 0 if allowed, else seconds until one is."""
        params = {"key": key, "now_ms": int(self.clock() * 1000)}
        with self.db.engine.begin() as conn:
            if self.postgresql:
                # A bucket lost in a crash costs nothing; waiting for the disk on every
                # API request would cost milliseconds.
                conn.execute(text("SET LOCAL synchronous_commit = off"))
            if conn.execute(self._take, params).first() is not None:
                return 0
            tokens, updated_ms = conn.execute(self._bucket, params).one()
        return max(1, self._seconds_until_token(tokens, params["now_ms"] - updated_ms))

    def _seconds_until_token(self, tokens: float, elapsed_ms: int) -> int:
        refilled = min(self.capacity, tokens + elapsed_ms * self.refill_per_ms)
        if refilled >= 1:
            return 0
        return max(1, math.ceil((1 - refilled) / (self.refill_per_ms * 1000)))
