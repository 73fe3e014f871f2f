"""Flood control for beacons: events per minute from one client address, per process.

A token bucket per address, in memory only (addresses are never written anywhere): bursts
of up to the limit, refilled evenly over a minute. Over it, the collector answers 429 with
Retry-After. Each gunicorn worker counts on its own, so with N workers an address may send
up to N times the limit; the point is to stop one client flooding the store, not to meter.
Trusted senders (API keys) and imports are not limited.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

PRUNE_EVERY = 10_000  # new addresses between sweeps of the buckets that are full again


class ClientRateLimit:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)
        self._lock = threading.Lock()
        self._new = 0

    def take(self, address: str) -> int:
        """Spend one event of `address`'s allowance: 0 if allowed, else seconds to wait."""
        if self.capacity <= 0:
            return 0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(address)
            if bucket is None:
                self._count_new(now)
                tokens = self.capacity
            else:
                tokens = min(self.capacity, bucket[0] + (now - bucket[1]) * self.refill_per_second)
            if tokens >= 1:
                self._buckets[address] = (tokens - 1, now)
                return 0
            self._buckets[address] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.refill_per_second))

    def _count_new(self, now: float) -> None:
        self._new += 1
        if self._new >= PRUNE_EVERY:
            self._new = 0
            full_after = self.capacity / self.refill_per_second
            self._buckets = {
                address: bucket
                for address, bucket in self._buckets.items()
                if now - bucket[1] < full_after
            }
