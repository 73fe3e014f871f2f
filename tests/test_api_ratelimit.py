"""The per-key token bucket, on a fake clock."""

from __future__ import annotations

from tracker.api.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(per_hour=3, clock=clock)
    assert [limiter.take("k") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("k") == 1200  # one request every 1,200 s
    clock.now += 600
    assert limiter.take("k") == 600
    clock.now += 600
    assert limiter.take("k") == 0
    assert limiter.take("k") == 1200


def test_keys_are_independent_and_buckets_do_not_overfill() -> None:
    clock = Clock()
    limiter = RateLimiter(per_hour=2, clock=clock)
    assert [limiter.take("a"), limiter.take("a"), limiter.take("a")] == [0, 0, 1800]
    assert limiter.take("b") == 0
    clock.now += 10 * 3600  # a long pause refills to the burst size, not more
    assert [limiter.take("a"), limiter.take("a"), limiter.take("a")] == [0, 0, 1800]
