"""Shortcuts the test processes take where the server's own cost is not under test.

URL builders: each app the tests build (thousands: one or more per test) binds its ~100
URL rules to a fresh map, and werkzeug compiles two builder functions per rule from
generated Python source (ast + compile): three quarters of the CPU time of `create_app`.
A builder depends only on the rule's parsed parts and the names of its defaults, not on the
app, so the same rule text gets the same function back (bound to each new Rule as before).
A rule whose default fills one of its own variables (the builder then inlines the
converted default) is compiled as before. The rule's parsing (its regular expressions and
weights) is kept too, per rule text and the map's converters: each new rule still gets
converters of its own map. Together they took an app from 16 to 6 ms of CPU. The server
builds one app per process.

Passwords: hashed with scrypt at 1/256 of werkzeug's default work factor (N=2**7, not
2**15; the least OpenSSL computes within the memory werkzeug allows it): a hash or a check
costs 0.4 ms of CPU instead of 100, and tests create users and log in thousands of times.
A check reads the factor from the stored hash, so logins stay real; the dummy hash that
failed logins are checked against gets the same factor.

Templates: each app has its own Jinja environment, which parsed and compiled every template
it rendered (a tenth of a page test's CPU); the compiled code is kept per process in
memory, Jinja's own bytecode cache, which checks the template's source against a checksum
(a template edited meanwhile is compiled again).

SQL: SQLAlchemy keeps compiled statements per engine, keyed by the engine's dialect object,
and every app opens a new engine: each test compiled again every statement it ran (a
quarter of a web test's CPU). Here engines share one cache, keyed by what configures the
dialect (its class, server version, paramstyle, ...) instead of the object, so a statement
compiled for one test's SQLite file serves the next's. The ORM's own statements (a
flush's INSERT, UPDATE and DELETE, kept per mapper) share it too.

PostgreSQL: a new engine's first connection asks the server what its dialect needs (version,
schema, isolation level, string escapes, identifier length, hstore: ~3 ms of round trips),
and every PostgreSQL test opens new engines on the same database. The answers are kept per
URL and set on the next engine's dialect instead (not where hstore is installed, whose
adapters are registered on the connection).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from jinja2 import BytecodeCache, Environment
from jinja2.bccache import Bucket
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import Mapper
from sqlalchemy.util import LRUCache
from werkzeug.routing import BaseConverter, Rule
from werkzeug.security import generate_password_hash

from tracker import accounts

TEST_PASSWORD_HASH = "scrypt:128:8:1"

_compile_builder = Rule._compile_builder
_builders: dict[tuple[object, ...], Callable[..., tuple[str, str]]] = {}


@functools.wraps(_compile_builder)
def _compile_builder_once(self: Rule, append_unknown: bool = True) -> Any:
    defaults = self.defaults or {}
    if defaults and any(is_dynamic and part in defaults for is_dynamic, part in self._trace):
        return _compile_builder(self, append_unknown)
    key = (self.rule, append_unknown, tuple(self._trace), tuple(defaults))
    builder = _builders.get(key)
    if builder is None:
        builder = _builders[key] = _compile_builder(self, append_unknown)
    return builder


_compile_rule = Rule.compile
_ConverterCall = tuple[str, str, tuple[Any, ...], tuple[tuple[str, Any], ...]]
_rules: dict[
    tuple[object, ...], tuple[list[Any], list[tuple[bool, str]], list[_ConverterCall]]
] = {}


def _compile_rule_once(self: Rule) -> None:
    """The rule's parsed parts kept per rule text and map settings; each new Rule gets its
    own converters (bound to its map) and builders, as werkzeug's compile gives it."""
    assert self.map is not None
    key = (
        self.rule,
        self.host if self.map.host_matching else self.subdomain,
        self.map.host_matching,
        self.merge_slashes,
        tuple(self.map.converters.items()),
    )
    known = _rules.get(key)
    if known is None:
        calls: list[_ConverterCall] = []
        get_converter = self.get_converter

        def recording(
            name: str, converter: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
        ) -> BaseConverter:
            calls.append((name, converter, tuple(args), tuple(kwargs.items())))
            return get_converter(name, converter, args, kwargs)

        self.get_converter = recording  # type: ignore[method-assign]
        try:
            _compile_rule(self)
        finally:
            del self.get_converter
        _rules[key] = (list(self._parts), list(self._trace), calls)
        return
    parts, trace, calls = known
    self._parts = list(parts)
    self._trace = list(trace)
    self._converters = {}
    for name, converter, args, kwargs in calls:
        self._converters[name] = self.get_converter(name, converter, args, dict(kwargs))
        self.arguments.add(name)
    self._build = self._compile_builder(False).__get__(self, None)
    self._build_unknown = self._compile_builder(True).__get__(self, None)


class _MemoryBytecodeCache(BytecodeCache):
    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_templates = _MemoryBytecodeCache()
_create_jinja_environment = Flask.create_jinja_environment


def _jinja_environment_sharing_code(self: Flask) -> Environment:
    environment = _create_jinja_environment(self)
    environment.bytecode_cache = _templates
    return environment


_PLAIN = (str, int, float, bool, tuple, type(None), types.ModuleType)


def _dialect_config(dialect: Dialect) -> tuple[object, ...]:
    """What a dialect compiles by: its class and its public plain settings (server version,
    paramstyle, default schema, ...; the DBAPI module by name). Left out: values memoized on
    first use (a property of the class, such as insert_executemany_returning), which would
    split one configuration in two, and private ones, derived from the settings (features
    of the server's version)."""
    cls = type(dialect)
    # A copy (one step under the GIL): a server thread may memoize a value on the dialect
    # while another thread's statement is being looked up here.
    settings = vars(dialect).copy()
    values = [
        (name, value.__name__ if isinstance(value, types.ModuleType) else value)
        for name, value in settings.items()
        if not name.startswith("_") and isinstance(value, _PLAIN) and _set_on_instance(cls, name)
    ]
    return (cls, *sorted(values, key=lambda item: item[0]))


@functools.cache
def _set_on_instance(cls: type, name: str) -> bool:
    """Not a value the class computes and memoizes (a descriptor): asked once per name, as
    inspect's static lookup took half the time of running a cached statement."""
    return not hasattr(inspect.getattr_static(cls, name, None), "__get__")


class _SharedCompiledCache(LRUCache[Any, Any]):
    """One LRU cache for every engine's compiled statements; keys are SQLAlchemy's, with
    the dialect object replaced by its configuration."""

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get((_dialect_config(key[0]), *key[1:]), default)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__((_dialect_config(key[0]), *key[1:]), value)


_statements = _SharedCompiledCache(20_000)
_engine_init = Engine.__init__


@functools.wraps(_engine_init)
def _engine_init_sharing_statements(self: Engine, *args: Any, **kwargs: Any) -> None:
    _engine_init(self, *args, **kwargs)
    if self._compiled_cache is not None:  # query_cache_size=0: none, as asked
        self._compiled_cache = _statements


_initialize_postgresql = PGDialect_psycopg.initialize
_server_answers: dict[str, dict[str, Any]] = {}
_ABSENT = object()


@functools.wraps(_initialize_postgresql)
def _initialize_once_per_database(self: PGDialect_psycopg, connection: Connection) -> None:
    url = connection.engine.url.render_as_string(hide_password=False)
    answers = _server_answers.get(url)
    if answers is not None:
        vars(self).update(answers)
        return
    before = dict(vars(self))
    _initialize_postgresql(self, connection)
    if not self._has_native_hstore:
        _server_answers[url] = {
            name: value
            for name, value in vars(self).items()
            if before.get(name, _ABSENT) is not value
        }


def install() -> None:
    Mapper._compiled_cache = property(lambda _mapper: _statements)  # type: ignore[assignment,method-assign]
    Engine.__init__ = _engine_init_sharing_statements  # type: ignore[method-assign]
    PGDialect_psycopg.initialize = _initialize_once_per_database  # type: ignore[method-assign]
    Flask.create_jinja_environment = _jinja_environment_sharing_code  # type: ignore[method-assign]
    Rule._compile_builder = _compile_builder_once  # type: ignore[method-assign]
    Rule.compile = _compile_rule_once  # type: ignore[method-assign]
    accounts.generate_password_hash = functools.partial(  # type: ignore[assignment]
        generate_password_hash, method=TEST_PASSWORD_HASH
    )
