"""The server's wall clock, in milliseconds since the Unix epoch (UTC), as stored times are.

One function for every part that stamps "now": the collector when a beacon arrives, the
writer when it changes a past day's visit (tracker.storage.changes), the columnar store's
builder when it takes a provisional part's snapshot. The last two are compared, so they
must read the same clock.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
