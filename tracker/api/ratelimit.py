"""A per-key token bucket: N requests per hour, in bursts of up to N, per process.

Each gunicorn worker keeps its own buckets, so the limit a key sees is per worker; that is
enough to stop a runaway script without a shared store.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

HOUR_SECONDS = 3600.0


class RateLimiter:
    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_hour)
        self.refill_per_second = per_hour / HOUR_SECONDS
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated at)
        self._lock = threading.Lock()

    def take(self, key: str) -> int:
        """Spend one request of `key`'s allowance: 0 if allowed, else seconds until one is."""
        now = self.clock()
        with self._lock:
            tokens, updated = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.refill_per_second)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0
            self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.refill_per_second))
