"""The benchmark harness runs (tiny sizes, no timing asserted), and its dataset is honest.

The generated dataset must obey the collector's visit semantics, or stats benchmarks would
time unrealistic queries: each visit's counters must agree with its own events.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bench import datagen, filters, profile
from bench.common import Options, parse_count
from bench.run import main
from tests.waiting import processes
from tracker.db import Database
from tracker.stats import SiteRef, parse_query, run

# Slow, all of them: they build the bench's datasets (a few CPU-s per module and worker) or
# run its harness; `make test` and CI run them, `make test-fast` leaves them out.
pytestmark = pytest.mark.slow


def _built_once(factory: pytest.TempPathFactory, events: int, *, wide: bool) -> Path:
    """A cache folder holding the dataset, generated once per module and worker (2 CPU-s)."""
    cache = factory.mktemp("bench-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datagen, "CACHE_DIR", cache)
        datagen.dataset(events, log=False, wide=wide)
    return cache


@pytest.fixture(scope="module")
def tiny_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _built_once(tmp_path_factory, 3000, wide=False)


@pytest.fixture(scope="module")
def tiny_wide_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _built_once(tmp_path_factory, 10_000, wide=True)


def _own_copy(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's own cache folder, a copy of the built one: a harness run writes to its
    dataset (rollups, a kept columnar store) and no test sees another's writes."""
    shutil.copytree(built, tmp_path / "cache")
    monkeypatch.setattr(datagen, "CACHE_DIR", tmp_path / "cache")


@pytest.fixture
def tiny(tiny_built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> datagen.Dataset:
    _own_copy(tiny_built, tmp_path, monkeypatch)
    return datagen.dataset(3000, log=False)


@pytest.fixture
def tiny_wide(
    tiny_wide_built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> datagen.Dataset:
    _own_copy(tiny_wide_built, tmp_path, monkeypatch)
    return datagen.dataset(10_000, log=False, wide=True)


def test_dataset_is_cached_and_sized(tiny: datagen.Dataset) -> None:
    # Whole visits only: the last one may end a few events past the size asked for.
    assert 3000 <= tiny.events < 3100
    assert datagen.dataset(3000, log=False) == tiny  # reused, not rebuilt
    with sqlite3.connect(tiny.path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (tiny.events,)
        assert conn.execute("SELECT count(*) FROM visits").fetchone() == (tiny.visits,)


def _builder_running() -> bool:
    """Whether this process's rollup builder (`bench.datagen --prepare`) is alive, not
    exited (Linux's /proc). Other children (a worker's browser driver) do not count."""
    me = os.getpid()
    for folder, state, parent, _group in processes():
        if parent != me or state == "Z":
            continue
        try:
            command = (folder / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if datagen.PREPARE_FLAG.encode() in command:
            return True
    return False


def test_rollups_built_by_another_process_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datagen, "CACHE_DIR", tmp_path)
    data = datagen.dataset(2000, log=False, rollups=False)

    def rollup_rows() -> int:
        with sqlite3.connect(data.path) as conn:
            return conn.execute("SELECT count(*) FROM stats_rollups").fetchone()[0]

    assert rollup_rows() == 0
    reader = sqlite3.connect(data.path, isolation_level=None)
    with datagen.rollups_meanwhile(data.url):
        # A read snapshot held through the whole build, as the store's build holds one.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()
        while _builder_running():
            time.sleep(0.05)
        reader.execute("ROLLBACK")
    # As `prepare` in-process: a total row per day, and the days' sources.
    assert rollup_rows() > 2 * datagen.DAYS
    # Its writes, kept in the log behind the snapshot, folded into the file.
    assert data.path.with_name(data.path.name + "-wal").stat().st_size == 0
    reader.close()
    db = Database(data.url)
    try:
        site = SiteRef(1, data.site, "UTC")
        query = parse_query(site, {"period": "custom", "from": data.first_day, "to": data.last_day})
        assert run(db, query).meta["source"] == "rollup"
        assert run(db, query).totals == run(db, query, rollups=False).totals
    finally:
        db.dispose()
    broken = tmp_path / "not-a-database.db"
    broken.write_text("not SQLite")
    with (
        pytest.raises(RuntimeError, match="rollup build"),
        datagen.rollups_meanwhile(f"sqlite:///{broken}"),
    ):
        pass


@pytest.mark.parametrize("variant", ["tiny", "tiny_wide"])
def test_visits_agree_with_their_events(variant: str, request: pytest.FixtureRequest) -> None:
    data: datagen.Dataset = request.getfixturevalue(variant)
    with sqlite3.connect(data.path) as conn:
        mismatches = conn.execute(
            """
            SELECT v.id FROM visits v JOIN (
                SELECT visit_id,
                       sum(kind = 'pageview') AS pageviews,
                       count(*) AS events,
                       sum(kind IN ('click', 'event')) AS interactions,
                       coalesce(sum(CASE WHEN kind = 'pageview' THEN time_on_page_ms END), 0)
                           AS duration,
                       min(timestamp_ms) AS first_ms,
                       max(timestamp_ms) AS last_ms
                FROM events GROUP BY visit_id
            ) e ON e.visit_id = v.id
            WHERE v.pageviews != e.pageviews OR v.events != e.events
               OR v.interactions != e.interactions OR v.duration_ms != e.duration
               OR v.started_ms != e.first_ms OR v.last_ms < e.last_ms
               OR v.is_bounce != (e.pageviews < 2 AND e.interactions = 0)
            """
        ).fetchall()
        kinds = {kind for (kind,) in conn.execute("SELECT DISTINCT kind FROM events")}
        # Engaged time, when a page reported it, is its time on page.
        engaged_mismatch = conn.execute(
            "SELECT count(*) FROM events WHERE engaged_ms IS NOT NULL"
            " AND (kind != 'pageview' OR time_on_page_ms != engaged_ms)"
        ).fetchone()
    assert mismatches == []
    assert kinds == {"pageview", "click", "event"}  # engagement is folded into pageviews
    assert engaged_mismatch == (0,)


def test_stats_layer_reads_the_dataset(tiny: datagen.Dataset) -> None:
    db = Database(tiny.url)
    site = SiteRef(1, tiny.site, "UTC")
    period = {"period": "custom", "from": tiny.first_day, "to": tiny.last_day}
    totals = run(db, parse_query(site, {**period, "metrics": "visits,pageviews"})).totals
    db.dispose()
    with sqlite3.connect(tiny.path) as conn:
        pageviews = conn.execute("SELECT count(*) FROM events WHERE kind = 'pageview'").fetchone()
    assert totals["visits"] == tiny.visits
    assert totals["pageviews"] == pageviews[0]


def test_parse_count() -> None:
    assert [parse_count(t) for t in ("5000", "250k", "1M", "1.5m")] == [
        5000,
        250_000,
        1_000_000,
        1_500_000,
    ]
    with pytest.raises(ValueError, match="'ten' is not a count"):
        parse_count("ten")


def test_profile_summary_charges_innermost_package() -> None:
    folded = "\n".join(
        [
            "run (gunicorn/workers/gthread.py:1);ingest (tracker/ingest.py:5);"
            "execute (sqlalchemy/engine/base.py:9) 30",
            "run (gunicorn/workers/gthread.py:1);ingest (tracker/ingest.py:7) 10",
            "run (gunicorn/workers/gthread.py:1);wait (threading.py:3);"
            "Condition.wait (threading.py:320) 50",
        ]
    )
    summary = profile.summarize(folded)
    assert (summary.total, summary.waiting) == (40, 50)
    assert summary.packages == {"sqlalchemy": 30, "tracker": 10}
    assert summary.leaves == {
        "execute (sqlalchemy/engine/base.py)": 30,
        "ingest (tracker/ingest.py)": 10,
    }
    assert summary.ours == {"ingest (tracker/ingest.py)": 40}


def test_harness_runs_tiny(
    tiny: datagen.Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "latest.json"
    main(["--tiny", "--only", "script,stats,export", "--databases", "sqlite", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["machine"]["cpus"] >= 1
    names = {(f["bench"], f["metric"]) for f in result["figures"]}
    assert (f"stats sqlite, {tiny.events:,} events", "query: totals") in names
    assert "benchmark" in capsys.readouterr().out  # the table was printed


def test_classify_bench_runs_tiny(tmp_path: Path) -> None:
    from bench import classify
    from bench.common import Options

    figures = classify.run(Options(workdir=tmp_path, results=tmp_path, events=3000, reps=1))
    assert {f.metric for f in figures} >= {
        "user agents (bot check + parse), cold",
        "user agents (bot check + parse), cached",
        "referrer attribution, cold",
        "referrer attribution, cached",
    }
    assert all(f.value > 0 for f in figures)


def test_wide_dataset_has_many_pages_and_campaigns(
    tiny_wide: datagen.Dataset, tmp_path: Path
) -> None:
    assert tiny_wide.variant == datagen.WIDE
    assert tiny_wide.path.name.endswith(f"-{datagen.WIDE}.db")  # the default's file untouched
    with sqlite3.connect(tiny_wide.path) as conn:
        pages = conn.execute("SELECT count(DISTINCT path) FROM events").fetchone()[0]
        campaigns = conn.execute("SELECT count(DISTINCT utm_campaign) FROM visits").fetchone()[0]
        rare = conn.execute(
            "SELECT count(*) FROM (SELECT path FROM events WHERE kind = 'pageview'"
            " GROUP BY path HAVING count(*) = 1)"
        ).fetchone()[0]
    # 10,000 events: ~8,900 pageviews, half of them spread over 100,000 pages, and ~1,200
    # visits tagged with one of 10,000 campaigns; the default dataset has 327 pages and 7
    # campaigns.
    assert pages > 4000
    assert campaigns > 1000
    assert rare > 3000


def test_filter_matrix_spells_each_filter_alike_for_page_and_api(
    tiny: datagen.Dataset,
) -> None:
    db = Database(tiny.url)
    try:
        picks = {**filters.pick_values(db, tiny), filters.GOAL: filters.goal_picks(db, tiny)}
    finally:
        db.dispose()
    matrix = filters.cases(picks)
    # 6 dimensions x 5 operators x 2 popularities x 4 shapes, and goals: 3 operators.
    assert len(matrix) == 240 + 24
    assert {c.group for c in matrix if c.dimension == filters.GOAL} == {
        f"goal {op}, {popularity}"
        for op in filters.GOAL_OPERATORS
        for popularity in filters.POPULARITY
    }
    site = SiteRef(1, tiny.site, "UTC")
    for case in matrix:
        filters.page_query(site, tiny, case)  # asserts the page's and the API's filters agree
    for dim, pick in picks.items():
        assert pick.popular[0].visits >= pick.popular[1].visits >= pick.rare[0].visits, dim


@pytest.mark.parametrize("operator", filters.OPERATORS)
def test_filter_matrix_escapes_odd_values(operator: str, tiny: datagen.Dataset) -> None:
    odd = ("a|b*c;d\\e", "!~x")
    case = filters.Case("visit:utm_campaign", operator, "rare", odd, "aggregate")
    query = filters.page_query(SiteRef(1, tiny.site, "UTC"), tiny, case)
    (flt,) = query.filters
    expected = {
        "is": ("is", odd[:1]),
        "is not": ("is_not", odd[:1]),
        "any of": ("is", odd),
        "contains": ("contains", (odd[0].lower(),)),
        # The prefix's * and \ escaped as a pattern wants them, then the wildcard.
        "wildcard": ("matches", ("a|b\\*c;d\\\\*",)),
    }[operator]
    assert (flt.op, flt.values) == expected


def test_filter_matrix_stops_a_slow_statement(tiny: datagen.Dataset) -> None:
    db = Database(tiny.url)
    endless = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    )
    try:
        with filters.stopping(db, 50) as fired, pytest.raises(DBAPIError):  # noqa: PT012
            with db.engine.connect() as conn:
                conn.execute(endless)
        assert fired.is_set()
        with db.engine.connect() as conn:  # the connection is usable again
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        db.dispose()


def test_filter_matrix_runs_tiny(
    tiny: datagen.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One of the six filtered dimensions (every dimension's values are picked and spelled in
    # test_filter_matrix_spells_each_filter_alike_for_page_and_api): the harness is what runs
    # here; each operator, popularity, goal and shape is still asked.
    monkeypatch.setattr(filters, "FILTERED", ("visit:source",))
    opts = Options(
        workdir=tmp_path,
        results=tmp_path,
        events=3000,
        databases=("sqlite",),
        filter_datasets=("default",),
        stats_reps=1,
    )
    figures = filters.run(opts)
    names = {f.metric for f in figures}
    assert {"is, popular: median", "wildcard, rare: worst", "all filters: worst"} <= names
    assert {"goal is, popular: median", "goal is not, rare: worst"} <= names
    assert {"API by day, is popular source", "API by page, slowest in-process"} <= names
    served = [f for f in figures if f.metric.startswith("API")]
    assert served and all(f.value > 0 for f in served)  # each answered 200
    # Every query, with the columnar store and without it.
    detail = (tmp_path / filters.DETAIL_FILE).read_text()
    assert detail.count("warm-up ") == 2 * (40 + 24)  # 40 per dimension, 24 goal queries
    assert "columnar store build" in names


def test_filter_matrix_columnar_pass_alone_keeps_its_store(
    tiny: datagen.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filters, "FILTERED", ("visit:source",))  # what is kept is under test
    monkeypatch.setattr(filters, "_http_figures", lambda *_args: [])  # test_filter_matrix_runs_tiny
    opts = Options(
        workdir=tmp_path / "run",
        results=tmp_path,
        events=3000,
        databases=("sqlite",),
        filter_datasets=("default",),
        stats_reps=1,
        filter_passes=("columnar",),
        filter_keep_store=True,
    )
    names = {f.metric for f in filters.run(opts)}
    assert "columnar store build" in names
    detail = (tmp_path / filters.DETAIL_FILE).read_text()
    assert detail.count("warm-up ") == 40 + 24  # the columnar pass only
    assert ", columnar: median ms" in detail and ", database only" not in detail
    # Beside the cached dataset, so the next run refreshes it instead of building it.
    kept = tiny.path.with_name(f"{tiny.path.stem}.filters-sqlite") / "columnar"
    assert (kept / "site-1" / "manifest.json").exists()
    names = {f.metric for f in filters.run(opts)}
    assert "columnar store refresh" in names and "columnar store build" not in names


def test_jobs_bench_runs_tiny(tiny: datagen.Dataset, tmp_path: Path) -> None:
    from bench import jobs

    figures = jobs.run(Options(workdir=tmp_path, results=tmp_path, events=3000, duration=1))
    metrics = {f.metric: f for f in figures}
    for step in ("report rollups build", "columnar store build"):
        assert metrics[step].value > 0
        held = metrics[f"{step}: longest write lock held"]
        assert held.value >= 0 and held.passed is not None
        assert metrics[f"{step}: longest wait for the write lock"].value >= 0
    idle = [f for f in figures if f.metric.startswith("jobs CPU when idle")]
    assert len(idle) == 1 and idle[0].value >= 0
    assert idle[0].bench.startswith("jobs sqlite, a day of ")
