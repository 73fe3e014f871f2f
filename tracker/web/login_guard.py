"""What stands between a password guesser and the password check.

Two limits, both needed (README "Deployment"):

- **Failed logins** per account and per client address, as token buckets in the database
  (tracker/api/ratelimit.py), so every worker and server counts against one limit. Only
  failures spend; a limited account or address is refused before any hashing, even with
  the right password (else the limit would only slow the guesser down).
- **Concurrent password hashing** per process: a hash costs tens of milliseconds of CPU on a
  request thread, so a burst of logins would slow every other request. Past a few at once,
  a login is refused at once instead of queueing.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tracker.db import Database

ACCOUNT_FAILURES_PER_HOUR = 10
ADDRESS_FAILURES_PER_HOUR = 30
HASHING_SLOTS = 2  # per process; each hash keeps a core busy
HASHING_WAIT_SECONDS = 0.2  # long enough for a hash ahead to finish, short enough to be quick


class TooManyLogins(Exception):
    """A login refused before checking the password; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: int, status: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


def _bucket_key(kind: str, value: str) -> str:
    # The table keys buckets by a SHA-256 (API keys are stored only hashed); the kind keeps
    # an address, an email and an API key from ever sharing a bucket.
    return hashlib.sha256(f"login-{kind}\0{value}".encode()).hexdigest()


class LoginGuard:
    def __init__(self, db: Database) -> None:
        # Here, not at the top: tracker.api's package imports the web views, which import this.
        from tracker.api.ratelimit import RateLimiter

        self.accounts = RateLimiter(db, ACCOUNT_FAILURES_PER_HOUR)
        self.addresses = RateLimiter(db, ADDRESS_FAILURES_PER_HOUR)
        self.hashing = threading.BoundedSemaphore(HASHING_SLOTS)

    def check_allowed(self, email: str, address: str) -> None:
        """Raise TooManyLogins when the account or the address has failed too often."""
        account_wait = self.accounts.wait(_bucket_key("account", email))
        address_wait = self.addresses.wait(_bucket_key("address", address))
        wait = max(account_wait, address_wait)
        if wait:
            whom = "this account" if account_wait else "your address"
            raise TooManyLogins(
                f"Too many failed logins for {whom}. Try again in {_minutes(wait)}.", wait, 429
            )

    def record_failure(self, email: str, address: str) -> None:
        self.accounts.take(_bucket_key("account", email))
        self.addresses.take(_bucket_key("address", address))

    @contextmanager
    def hashing_slot(self) -> Iterator[None]:
        """Hold one of the process's hashing slots; TooManyLogins (503) when all stay busy."""
        if not self.hashing.acquire(timeout=HASHING_WAIT_SECONDS):
            raise TooManyLogins(
                "The server is checking too many logins at once. Try again in a moment.", 1, 503
            )
        try:
            yield
        finally:
            self.hashing.release()


def _minutes(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return "a minute" if minutes <= 1 else f"{minutes} minutes"
