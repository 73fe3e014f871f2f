"""Shortcuts the test processes take where the server's own cost is not under test.

URL builders: each app the tests build (thousands: one or more per test) binds its ~100
URL rules to a fresh map, and werkzeug compiles two builder functions per rule from
generated Python source (ast + compile): three quarters of the CPU time of `create_app`.
A builder depends only on the rule's parsed parts and the names of its defaults, not on the
app, so the same rule text gets the same function back (bound to each new Rule as before).
A rule whose default fills one of its own variables (the builder then inlines the
converted default) is compiled as before. The server builds one app per process.

Passwords: hashed with scrypt at 1/32 of werkzeug's default work factor (N=2**10, not
2**15): a hash or a check costs 3 ms of CPU instead of 100, and tests create users and log
in thousands of times. A check reads the factor from the stored hash, so logins stay real;
the dummy hash that failed logins are checked against gets the same factor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule
from werkzeug.security import generate_password_hash

from tracker import accounts

TEST_PASSWORD_HASH = "scrypt:1024:8:1"

_compile_builder = Rule._compile_builder
_builders: dict[tuple[object, ...], Callable[..., tuple[str, str]]] = {}


@functools.wraps(_compile_builder)
def _compile_builder_once(self: Rule, append_unknown: bool = True) -> Any:
    defaults = self.defaults or {}
    if any(is_dynamic and part in defaults for is_dynamic, part in self._trace):
        return _compile_builder(self, append_unknown)
    key = (self.rule, append_unknown, tuple(self._trace), tuple(defaults))
    builder = _builders.get(key)
    if builder is None:
        builder = _builders[key] = _compile_builder(self, append_unknown)
    return builder


def install() -> None:
    Rule._compile_builder = _compile_builder_once  # type: ignore[method-assign]
    accounts.generate_password_hash = functools.partial(  # type: ignore[assignment]
        generate_password_hash, method=TEST_PASSWORD_HASH
    )
    accounts._DUMMY_HASH = accounts.generate_password_hash("not-a-real-password")
