# The README's commands. `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.test-installed
BENCH_INSTALLED := $(VENV)/.bench-installed
# Extra flags for `make bench`, e.g. BENCH_ARGS="--full --events 10M" (see bench/run.py).
BENCH_ARGS ?=
# npm ci writes this file; the beacon's minifier (terser, pinned in package-lock.json).
NODE_INSTALLED := node_modules/.package-lock.json
# setuptools' build backend prints a boxed "Editable installation" notice on every editable
# install, even with --quiet; it says nothing to act on, so its warnings are silenced.
EDITABLE := PYTHONWARNINGS=ignore $(PY) -m pip install --quiet

.PHONY: install run test test-fast test-services lint bench beacon clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(EDITABLE) -e .
	touch $@

$(TEST_INSTALLED): $(INSTALLED)
	$(EDITABLE) -e '.[test]'
	touch $@

# A database without any site gets a demo site first, so a newcomer sees a living page.
run: install
	$(BIN)/tracker migrate
	$(BIN)/tracker demo --if-no-sites --days 90 --visits-per-day 130
	$(BIN)/tracker serve

# System services and packages the suite needs: PostgreSQL running, Debian's chromium.
test-services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start
	@command -v chromium >/dev/null || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null)

$(NODE_INSTALLED): package.json package-lock.json
	@command -v npm >/dev/null || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm >/dev/null)
	npm ci --no-audit --no-fund --loglevel=error

# The served beacon is built from its readable source and committed (no Node at run time).
beacon: static/tracker.js

static/tracker.js: static/src/tracker.js static/terser.json $(NODE_INSTALLED)
	npm run --silent build > $@.tmp && mv $@.tmp $@

# The whole suite on every core (pytest-xdist: each worker has its own databases, browser and
# ports); `make test-fast` runs what needs neither PostgreSQL, a browser nor a real server.
# Test files (SQLite databases, spools, data folders) go to memory where there is a tmpfs:
# thousands of tests each create, commit to and delete databases, and waiting for the disk
# to sync them was a sixth of a web test's time. Tests of durability kill processes, not the
# machine, so they hold there too.
TEST_TMPDIR ?= $(shell [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp})
# Compiled test modules are kept (__pycache__, ignored by git) even where the environment
# says not to write bytecode: pytest rewrites every test module's asserts, 2 s of CPU per
# worker on each run otherwise.
PYTEST := TMPDIR=$(TEST_TMPDIR) PYTHONDONTWRITEBYTECODE= $(PY) -m pytest
TEST_WORKERS ?= auto
test: $(TEST_INSTALLED) $(NODE_INSTALLED) test-services
	$(PYTEST) -n $(TEST_WORKERS)

test-fast: $(TEST_INSTALLED) $(NODE_INSTALLED)
	$(PYTEST) -n $(TEST_WORKERS) -m "not slow and not browser and not postgres"

lint: $(TEST_INSTALLED)
	$(BIN)/ruff check tracker tests bench migrations
	$(BIN)/ruff format --check tracker tests bench migrations
	$(BIN)/mypy

$(BENCH_INSTALLED): $(TEST_INSTALLED)
	$(EDITABLE) -e '.[test,bench]'
	touch $@

# Benchmarks (not tests): one table, also written to bench/results/latest.json.
bench: $(BENCH_INSTALLED) test-services
	@command -v wrk >/dev/null || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null)
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info node_modules
