"""Flood control of beacons: a token bucket per client address, in memory."""

from __future__ import annotations

from tracker.ingest import ratelimit
from tracker.ingest.ratelimit import ClientRateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bursts_up_to_the_limit_then_one_event_per_share_of_the_minute() -> None:
    clock = Clock()
    limit = ClientRateLimit(3, clock)
    assert [limit.take("198.51.100.1") for _ in range(4)] == [0, 0, 0, 20]
    assert limit.take("198.51.100.2") == 0  # each address has its own bucket
    clock.now += 19
    assert limit.take("198.51.100.1") == 1
    clock.now += 1
    assert limit.take("198.51.100.1") == 0
    assert limit.take("198.51.100.1") == 20
    clock.now += 600
    assert [limit.take("198.51.100.1") for _ in range(4)] == [0, 0, 0, 20]  # full again


def test_zero_means_no_limit() -> None:
    limit = ClientRateLimit(0)
    assert {limit.take("198.51.100.1") for _ in range(10_000)} == {0}


def test_buckets_that_are_full_again_are_forgotten(monkeypatch) -> None:
    monkeypatch.setattr(ratelimit, "PRUNE_EVERY", 3)
    clock = Clock()
    limit = ClientRateLimit(60, clock)  # full again 60 s after the last event
    limit.take("a")
    clock.now += 61
    limit.take("b")
    limit.take("c")  # the third new address sweeps: "a" is full again, so forgotten
    assert set(limit._buckets) == {"b", "c"}
