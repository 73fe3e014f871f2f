"""Loads the suite's fixtures in the processes that run tests: tests/fixtures.py (databases,
apps), tests/browser.py (`browser`, `live_server`, `test_site`), tests/mailserver.py
(`smtp_server`).

Under pytest-xdist the controller process runs no test: it starts the workers and reports
what they ran. Importing the app, SQLAlchemy and Playwright there took 2.4 s before any
worker started, on every run.
"""

from __future__ import annotations

import gc

import pytest

FIXTURE_PLUGINS = ("tests.fixtures", "tests.browser", "tests.mailserver")


def pytest_configure(config: pytest.Config) -> None:
    if not _only_hands_out_tests(config):
        for name in FIXTURE_PLUGINS:
            config.pluginmanager.import_plugin(name)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """What is still in memory at the end is left to the operating system: a worker then
    held ~0.5M objects (apps of tests, their engines and stores), and pytest's last garbage
    collections (five, for unraisable exceptions) and the interpreter's at exit walked them
    all: 2-4 s per worker at the end of a run of a few modules, and the whole suite's
    workers were still at it when xdist stopped waiting (10 s) and killed them. Frozen
    objects are never walked (gc.freeze)."""
    gc.freeze()


def _only_hands_out_tests(config: pytest.Config) -> bool:
    """This process is the controller of a distributed run (xdist's own test for it,
    is_xdist_controller, needs a session; none exists yet). xdist does not distribute a
    collection (--collect-only): the controller collects itself then."""
    if hasattr(config, "workerinput") or config.getoption("collectonly"):
        return False
    return config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))
