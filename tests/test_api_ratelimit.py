"""The per-key token bucket, kept in the database: on a fake clock, and shared by two apps
(as by the workers of one server) on both databases."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from helpers import add_user

from tracker.accounts import create_api_key
from tracker.api.ratelimit import RateLimiter
from tracker.db import Database
from tracker.db.models import User


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_per_interval(db: Database) -> None:
    clock = Clock()
    limiter = RateLimiter(db, per_hour=3, clock=clock)
    assert [limiter.take("k") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("k") == 1200  # one request every 1,200 s
    clock.now += 600
    assert limiter.take("k") == 600
    clock.now += 600
    assert limiter.take("k") == 0
    assert limiter.take("k") == 1200


def test_keys_are_independent_and_buckets_do_not_overfill(db: Database) -> None:
    clock = Clock()
    limiter = RateLimiter(db, per_hour=2, clock=clock)
    assert [limiter.take("a"), limiter.take("a"), limiter.take("a")] == [0, 0, 1800]
    assert limiter.take("b") == 0
    clock.now += 10 * 3600  # a long pause refills to the burst size, not more
    assert [limiter.take("a"), limiter.take("a"), limiter.take("a")] == [0, 0, 1800]


def test_limiters_sharing_a_database_enforce_one_limit(db: Database) -> None:
    clock = Clock()
    workers = [RateLimiter(db, per_hour=4, clock=clock) for _ in range(2)]
    answers = [workers[i % 2].take("k") for i in range(6)]
    assert answers == [0, 0, 0, 0, 900, 900]


def test_two_apps_on_one_database_answer_429_together(make_app: Callable[..., Flask]) -> None:
    first, second = make_app(api_rate_limit=3), make_app(api_rate_limit=3)
    user = add_user(first.extensions["tracker.db"], "owner@example.com", admin=False)
    with first.extensions["tracker.db"].session() as session:
        _, key = create_api_key(session, session.get(User, user.id))
    headers = {"Authorization": f"Bearer {key}"}
    url = "/api/v1/stats/realtime/visitors?site_id=none.example"
    clients = [first.test_client(), second.test_client()]
    statuses = [clients[i % 2].get(url, headers=headers).status_code for i in range(4)]
    assert statuses == [404, 404, 404, 429]  # 3 an hour in all, not 3 per app
