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


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Between modules (their fixtures torn down), the garbage is collected and what is left
    is frozen (gc.freeze): Python's full collections then no longer walk what a test process
    keeps (modules, compiled statements shared by tests (tests/shortcuts.py), fixtures of
    the session), which held half the objects: 3 CPU-s of collections per worker in the fast
    subset, 1 frozen. At the end this leaves what is still in memory to the operating system,
    where pytest's last collections and the interpreter's at exit walked it all: 2-4 s per
    worker after a few modules, and after the whole suite xdist stopped waiting (10 s) and
    killed its workers."""
    if nextitem is None or nextitem.module is not item.module:
        gc.collect()
        gc.freeze()


def _only_hands_out_tests(config: pytest.Config) -> bool:
    """This process is the controller of a distributed run (xdist's own test for it,
    is_xdist_controller, needs a session; none exists yet). xdist does not distribute a
    collection (--collect-only): the controller collects itself then."""
    if hasattr(config, "workerinput") or config.getoption("collectonly"):
        return False
    return config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))
