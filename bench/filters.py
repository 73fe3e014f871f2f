"""Filter matrix (issue 16): every filter operator, on a popular and a rare value of visit
and event dimensions, asked as the headline, two breakdowns and a daily series.

Operators (the Stats API's grammar, README "Stats API"; the page's in README "Stats query
parameters"): is (`==v`), is not (`!=v`), any of (`==a|b`), contains (`~v`, ignoring case)
and wildcard (`==prefix*`). Dimensions: FILTERED, five of visits and the page. Values are
picked from the dataset itself (pick_values): popular, the two with the most visits; rare,
two with a handful of visits that were least often among a day's top 10 (the long tail,
which a top-N rollup per day would not hold). Each (dimension, operator, popularity) is
asked as each of SHAPES over the dataset's 30 days: 6 x 5 x 2 x 4 = 240 queries. And goals
(the bench site's, bench.datagen.GOALS), whose filter takes is, is not and any of: the two
goals most and least converted on (goal_picks), asked as the same SHAPES (the page in
conversion mode): 3 x 2 x 4 = 24 more, in groups of their own ("goal is, popular").

Each query is timed in-process through tracker.stats.run (the call the stats page and the
API make), after one warm-up, as the median of three. A slow query (its warm-up past
SLOW_FACTOR times the size's bound: 450 ms at 1M, 3 s at 10M) is not run again: more
samples cannot change its verdict, and while raw scans take seconds they would make the
matrix hours long at 10M events. By default it is even stopped there (interrupted on SQLite
and DuckDB, cancelled on PostgreSQL) and its figure is that bound, noted "stopped";
`--filter-exact` lets it finish and takes that one run as its figure. Per group (operator x
popularity) the table gives the median and the worst query, named; all beside the
raw-scan floor of the same run (bench.stats.raw_distinct_visitors_ms). A few queries also
go through HTTP to the Stats API, served without background jobs, with the `filters=`
expression: per shape, the slowest in-process case and `is` on the most popular source.

Datasets: the default one and the wide variant (100,000 pages, 10,000 campaigns;
bench/datagen.py), at `--events`. Every query's timing, samples and where its warm-up's time
went (SQL on rollups, other SQL, the rest: DuckDB and Python) go to
bench/results/filters-matrix.txt.

The columnar store (tracker.columnar) is built for the dataset first, in the data directory
the HTTP server then uses (timed: the target is 5 min at 10M events), while another process
brings the SQLite dataset's rollups up to date (a first build at 10M events takes minutes;
the two read nothing the other writes), and the matrix runs
twice: reading the database only (rollups and raw rows, as before the store), then with
the store (`--filter-passes` picks either). Its closed days only: the dataset's last day or
two are not closed yet (a day closes 26 hours after its end) and are read from the
database, as today's are in use. `--filter-keep-store` keeps the store (and the server's
data directory) beside the cached dataset and refreshes it: a run then times that refresh.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import event, text

from bench import datagen
from bench.common import Figure, Options, Unavailable, http, median, tracker_serve
from bench.stats import _day_ms, raw_distinct_visitors_ms, statement_timer
from tracker.columnar import build as columnar_build
from tracker.columnar import engine as columnar_engine
from tracker.columnar.layout import read_manifest, store_root
from tracker.db import Database
from tracker.stats import DIMENSIONS, Query, SiteRef, parse_expression, parse_query
from tracker.stats import run as run_query
from tracker.stats.filters import encode_values

# Issue 16: every report and Stats API query, any filter: 150 ms at 1M events, 1 s at 10M,
# on SQLite; PostgreSQL within the same bounds at 1M.
TARGET_MS = {"sqlite": {1_000_000: 150.0, 10_000_000: 1000.0}, "postgres": {1_000_000: 150.0}}
# A warm-up this many times over the target: its only run, stopped there unless exact.
SLOW_FACTOR = 3
# Seconds between interrupts of a query being stopped (see `stopping`).
STOP_EVERY_S = 0.05
OPERATORS = ("is", "is not", "any of", "contains", "wildcard")
POPULARITY = ("popular", "rare")
FILTERED = (
    "visit:source",
    "visit:channel",
    "visit:utm_campaign",
    "visit:country",
    "visit:browser",
    "event:page",
)
GOAL = "event:goal"
# A goal filter names goals exactly: no contains, no wildcard (tracker.stats.goals).
GOAL_OPERATORS = ("is", "is not", "any of")
HEADLINE = "visitors,visits,pageviews,bounce_rate,visit_duration"
# (in-process parameters, Stats API endpoint and its parameters) of each way of asking.
SHAPES: dict[str, tuple[dict[str, str], str, dict[str, str]]] = {
    "aggregate": ({"metrics": HEADLINE}, "aggregate", {"metrics": HEADLINE}),
    "by source": (
        {"metrics": "visitors,visits,bounce_rate", "dimension": "visit:source", "limit": "10"},
        "breakdown",
        {"metrics": "visitors,visits,bounce_rate", "property": "visit:source", "limit": "10"},
    ),
    "by page": (
        {"metrics": "visitors,pageviews", "dimension": "event:page", "limit": "10"},
        "breakdown",
        {"metrics": "visitors,pageviews", "property": "event:page", "limit": "10"},
    ),
    "by day": (
        {"metrics": "visitors,pageviews", "dimension": "time:day"},
        "timeseries",
        {"metrics": "visitors,pageviews", "interval": "date"},
    ),
}
# A rare value is one seldom or never among a day's DAY_TOP values of its dimension (the
# values a top-N rollup per day would have kept: those outside it are the long tail).
DAY_TOP = 10
# "A handful of visits": a rare value has at least this many in the 30 days.
RARE_MIN_VISITS = 3
DETAIL_FILE = "filters-matrix.txt"
# Bumped when the way values are picked (or FILTERED) changes: picks kept are then ignored.
PICKS_VERSION = 1


@dataclass(frozen=True)
class Value:
    """A dimension's value in the dataset: its visits (pageviews for a page) over the 30
    days, and on how many days it was among that day's DAY_TOP."""

    text: str
    visits: int
    top_days: int

    def __str__(self) -> str:
        return f"{self.text!r} ({self.visits:,} visits, top {DAY_TOP} on {self.top_days} days)"


@dataclass(frozen=True)
class Picks:
    popular: tuple[Value, Value]
    rare: tuple[Value, Value]

    def of(self, popularity: str) -> tuple[Value, Value]:
        return self.popular if popularity == "popular" else self.rare


def pick_values(db: Database, data: datagen.Dataset) -> dict[str, Picks]:
    """Each FILTERED dimension's two most visited values, and two rare ones; kept beside
    the cached dataset (its rows never change), as counting them takes minutes at 10M."""
    kept = data.path.with_name(f"{data.path.stem}.picks-{PICKS_VERSION}.json")
    if kept.exists():
        return {
            name: Picks(popular=_pair(popular), rare=_pair(rare))
            for name, (popular, rare) in json.loads(kept.read_text()).items()
        }
    picks = _count_values(db, data)
    kept.write_text(json.dumps({n: [p.popular, p.rare] for n, p in picks.items()}, default=vars))
    return picks


def _pair(values: list[dict[str, Any]]) -> tuple[Value, Value]:
    first, second = (Value(**v) for v in values)
    return first, second


def _count_values(db: Database, data: datagen.Dataset) -> dict[str, Picks]:
    bounds = {"start": _day_ms(data.first_day), "end": _day_ms(data.last_day, end=True)}
    picks = {}
    with db.engine.connect() as conn:
        for name in FILTERED:
            dim = DIMENSIONS[name]
            # Raw counts, not the stats layer: the picks must not depend on the code timed.
            if dim.is_event:
                sql = (
                    f"SELECT timestamp_ms / {datagen.DAY_MS}, {dim.column}, count(*) FROM events"
                    " WHERE site_id = 1 AND kind = 'pageview' AND timestamp_ms >= :start"
                    f" AND timestamp_ms < :end AND {dim.column} != '' GROUP BY 1, 2"
                )
            else:
                sql = (
                    f"SELECT started_ms / {datagen.DAY_MS}, {dim.column}, count(*) FROM visits"
                    " WHERE site_id = 1 AND started_ms >= :start AND started_ms < :end"
                    f" AND {dim.column} != '' GROUP BY 1, 2"
                )
            picks[name] = _picks(conn.execute(text(sql), bounds).all())
    return picks


def _picks(rows: Sequence[Any]) -> Picks:
    by_day: dict[int, list[tuple[int, str]]] = defaultdict(list)
    totals: dict[str, int] = defaultdict(int)
    for day, value, count in rows:
        by_day[day].append((-count, value))
        totals[value] += count
    top_days: dict[str, int] = defaultdict(int)
    for day_rows in by_day.values():
        for _, value in sorted(day_rows)[:DAY_TOP]:  # as the rollups rank: visits, then value
            top_days[value] += 1
    values = [Value(v, n, top_days[v]) for v, n in totals.items()]
    popular = sorted(values, key=lambda v: (-v.visits, v.text))
    handful = [v for v in values if v.visits >= RARE_MIN_VISITS] or values
    rare = sorted(handful, key=lambda v: (v.top_days, v.visits, v.text))
    if len(values) < 2:
        raise Unavailable(f"a filter dimension has {len(values)} value(s) in the dataset")
    return Picks(popular=(popular[0], popular[1]), rare=(rare[0], rare[1]))


def goal_picks(db: Database, data: datagen.Dataset) -> Picks:
    """The bench site's goals by their conversions over the 30 days, from the daily counts
    the dataset's rollup build wrote (goal_days, not the code timed): popular, the two most
    converted on; rare, the two least (of a handful of conversions or more)."""
    days = [_day_ms(data.first_day) // datagen.DAY_MS, _day_ms(data.last_day) // datagen.DAY_MS]
    sql = (
        "SELECT d.day, g.name, d.conversions FROM goal_days d JOIN goals g ON g.id = d.goal_id"
        " WHERE d.site_id = 1 AND d.day >= :first AND d.day <= :last"
    )
    with db.engine.connect() as conn:
        rows = conn.execute(text(sql), {"first": days[0], "last": days[1]}).all()
    return _picks(rows)


def _api_escape(value: str) -> str:
    """A literal value inside a `filters=` expression (README "Stats API")."""
    for char in ("\\", "|", ";", "*"):
        value = value.replace(char, "\\" + char)
    return value


def _pattern_escape(value: str) -> str:
    """A literal prefix inside a wildcard pattern (tracker.stats.filters)."""
    return value.replace("\\", "\\\\").replace("*", "\\*")


@dataclass(frozen=True)
class Case:
    """One query of the matrix: a filter on `dimension` built from `values`, asked as
    `shape`. contains asks for the value in lower case (contains ignores case); wildcard for
    the value without its last character, then `*`."""

    dimension: str
    operator: str
    popularity: str
    values: tuple[str, ...]
    shape: str

    @property
    def group(self) -> str:
        goal = "goal " if self.dimension == GOAL else ""
        return f"{goal}{self.operator}, {self.popularity}"

    @property
    def _prefix(self) -> str:
        value = self.values[0]
        return value[: max(1, len(value) - 1)]

    def page_param(self) -> tuple[str, str]:
        """The filter as the stats page's URL parameter (`source=!Google`)."""
        op, values = {
            "is": ("is", self.values[:1]),
            "is not": ("is_not", self.values[:1]),
            "any of": ("is", self.values),
            "contains": ("contains", (self.values[0].lower(),)),
            "wildcard": ("matches", (_pattern_escape(self._prefix) + "*",)),
        }[self.operator]
        return DIMENSIONS[self.dimension].short, encode_values(op, values)

    def api_filter(self) -> str:
        """The filter as the Stats API's `filters=` expression (`visit:source!=Google`)."""
        first = _api_escape(self.values[0])
        return (
            self.dimension
            + {
                "is": f"=={first}",
                "is not": f"!={first}",
                "any of": "==" + "|".join(_api_escape(v) for v in self.values),
                "contains": f"~{_api_escape(self.values[0].lower())}",
                "wildcard": f"=={_api_escape(self._prefix)}*",
            }[self.operator]
        )

    @property
    def name(self) -> str:
        return f"{self.api_filter()}, {self.shape}"


def cases(picks: dict[str, Picks]) -> list[Case]:
    """The matrix, group by group (operator, then popularity); goals where `picks` has
    them, with the operators a goal filter takes."""
    out = []
    for operator in OPERATORS:
        for popularity in POPULARITY:
            for dimension in picks:
                if dimension == GOAL and operator not in GOAL_OPERATORS:
                    continue
                pair = picks[dimension].of(popularity)
                values = tuple(v.text for v in (pair if operator == "any of" else pair[:1]))
                for shape in SHAPES:
                    out.append(Case(dimension, operator, popularity, values, shape))
    return out


def page_query(site: SiteRef, data: datagen.Dataset, case: Case) -> Query:
    period = {"period": "custom", "from": data.first_day, "to": data.last_day}
    name, value = case.page_param()
    query = parse_query(site, {**period, **SHAPES[case.shape][0], name: value})
    # The two spellings must ask the same thing, or the HTTP figures time another query.
    api = parse_expression(case.api_filter())
    assert query.filters == api, f"{case.name}: page {query.filters} != API {api}"
    return query


@dataclass
class Timing:
    case: Case
    samples: list[float] = field(default_factory=list)
    warmup: float = math.nan
    read: str = ""  # where the warm-up's time went (_reads)
    rows: int = 0
    stopped: bool = False  # stopped at `warmup` ms: it would have taken longer
    # CPU time of this process per sample (ms; DuckDB's threads and SQLite's work are in
    # it, a PostgreSQL server's is not): what a query costs, on a machine others share.
    cpu: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        return median(self.samples)

    @property
    def cpu_value(self) -> float:
        return median(self.cpu)


def _reads(total_ms: float, statements: list[tuple[float, str]]) -> str:
    """Where a query's time went: SQL on rollups, other SQL (raw rows, and small lookups
    such as the site's goals), and the rest (Python, the columnar store's DuckDB)."""
    rollups = sum(ms for ms, sql in statements if "stats_rollups" in sql)
    other = sum(ms for ms, sql in statements if "stats_rollups" not in sql)
    outside = max(0.0, total_ms - rollups - other)
    shares = {"rollups": rollups, "raw rows": other, "outside SQL": outside}
    most = max(shares, key=lambda k: shares[k])
    detail = ", ".join(f"{k} {v:.0f} ms" for k, v in shares.items())
    return f"mostly {most}: {detail}"


@contextmanager
def stopping(db: Database, after_ms: float | None) -> Iterator[threading.Event]:
    """Stops what the calling thread's queries run inside the block once `after_ms` have
    passed (None: never); the event says whether it did. SQLite's connections and DuckDB's
    are interrupted, PostgreSQL's statements cancelled, from a thread, as each driver
    allows; the query then raises. Again every STOP_EVERY_S until the block ends: the
    columnar store's reader answers a failed DuckDB statement from the database instead,
    and that statement starts after the first interrupt."""
    fired = threading.Event()
    if after_ms is None:
        yield fired
        return
    live: set[Any] = set()
    # The columnar store's reader runs DuckDB on a connection per thread: this thread's.
    duckdb_connection = columnar_engine.connection()
    done = threading.Event()

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        live.add(dbapi_connection)

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        live.discard(dbapi_connection)

    def stop() -> None:
        if done.wait(after_ms / 1000):
            return
        fired.set()
        while True:
            for connection in list(live):
                (getattr(connection, "interrupt", None) or connection.cancel)()
            duckdb_connection.interrupt()
            if done.wait(STOP_EVERY_S):
                return

    def quiet(_record: logging.LogRecord) -> bool:
        # The reader logs the interrupted DuckDB statement as a failure: it is ours.
        return not fired.is_set()

    event.listen(db.engine, "checkout", checkout)
    event.listen(db.engine, "checkin", checkin)
    columnar_log = logging.getLogger("tracker.columnar.engine")
    columnar_log.addFilter(quiet)
    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    try:
        yield fired
    finally:
        done.set()
        stopper.join()
        columnar_log.removeFilter(quiet)
        event.remove(db.engine, "checkout", checkout)
        event.remove(db.engine, "checkin", checkin)


def time_cases(
    db: Database,
    data: datagen.Dataset,
    matrix: list[Case],
    reps: int,
    slow_ms: float | None,
    *,
    exact: bool = False,
    progress: Callable[[int], None] = lambda _: None,
) -> list[Timing]:
    """Each case's warm-up, then `reps` runs (none when the warm-up passed `slow_ms`: it
    is the figure, stopped there unless `exact`)."""
    site = SiteRef(1, data.site, "UTC")
    timings = []
    for index, case in enumerate(matrix):
        query = page_query(site, data, case)
        timing = Timing(case)
        with statement_timer(db) as statements, stopping(db, None if exact else slow_ms) as fired:
            began, cpu = time.perf_counter(), time.process_time()
            try:
                timing.rows = len(run_query(db, query).rows)
            except Exception:
                # Whatever the interrupted driver raised (DuckDB's is not a DBAPIError).
                if not fired.is_set():
                    raise
                timing.stopped = True
            timing.warmup = (time.perf_counter() - began) * 1000
            warmup_cpu = (time.process_time() - cpu) * 1000
        timing.read = "stopped" if timing.stopped else _reads(timing.warmup, statements)
        if timing.stopped or (slow_ms and timing.warmup > slow_ms):
            timing.samples.append(timing.warmup)
            timing.cpu.append(warmup_cpu)
        else:
            for _ in range(reps):
                began, cpu = time.perf_counter(), time.process_time()
                run_query(db, query)
                timing.samples.append((time.perf_counter() - began) * 1000)
                timing.cpu.append((time.process_time() - cpu) * 1000)
        timings.append(timing)
        progress(index + 1)
    return timings


def http_cases(timings: list[Timing]) -> list[tuple[str, Timing]]:
    """Per shape: `is` on the most popular source, and the slowest case in-process that was
    not stopped (a stopped one would run to its end behind HTTP, for minutes at 10M)."""
    chosen = []
    for shape in SHAPES:
        of_shape = [t for t in timings if t.case.shape == shape]
        finished = [t for t in of_shape if not t.stopped] or of_shape
        cheap = next(
            t
            for t in of_shape
            if t.case.operator == "is"
            and t.case.popularity == "popular"
            and t.case.dimension == "visit:source"
        )
        chosen.append((f"API {shape}, is popular source", cheap))
        slowest = max(finished, key=lambda t: t.value)
        chosen.append((f"API {shape}, slowest in-process", slowest))
    return chosen


def api_path(data: datagen.Dataset, case: Case) -> str:
    _, endpoint, params = SHAPES[case.shape]
    args = {
        "site_id": data.site,
        "period": "custom",
        "date": f"{data.first_day},{data.last_day}",
        **params,
        "filters": case.api_filter(),
    }
    return f"/api/v1/stats/{endpoint}?{urlencode(args)}"


@contextmanager
def _using_store(db: Database, root: Path | None) -> Iterator[None]:
    """The stats layer reads the columnar store at `root` (None: the database only)."""
    before = getattr(db, "columnar_root", None)
    db.columnar_root = root
    try:
        yield
    finally:
        db.columnar_root = before


def build_store(db: Database, root: Path) -> float:
    """Seconds to build the columnar store at `root` for the dataset's closed days (all of
    them at once: the job's refresh stops after BUDGET_SECONDS and carries on a minute
    later, which would leave days to the database)."""
    began = time.perf_counter()
    columnar_build.refresh(db, root, budget_s=None)
    return time.perf_counter() - began


def run(opts: Options) -> list[Figure]:
    figures: list[Figure] = []
    report: list[str] = []
    for variant in opts.filter_datasets:
        # When SQLite's pass comes first, its rollups are built beside the store (`_measure`);
        # else now, for PostgreSQL's copy to take them from the file.
        deferred = opts.databases[:1] == ("sqlite",)
        data = datagen.dataset(opts.events, wide=variant == "wide", rollups=not deferred)
        for database in opts.databases:
            try:
                url = data.url if database == "sqlite" else datagen.postgres_copy(data)
            except Unavailable as exc:
                figures.append(Figure(f"filters {database}", "-", math.nan, "", note=str(exc)))
                continue
            figures += _measure(opts, data, variant, database, url, report)
    opts.results.mkdir(parents=True, exist_ok=True)
    (opts.results / DETAIL_FILE).write_text("\n".join(report) + "\n")
    return figures


def _measure(
    opts: Options,
    data: datagen.Dataset,
    variant: str,
    database: str,
    url: str,
    report: list[str],
) -> list[Figure]:
    size = f"{data.events / 1e6:g}M" if data.events >= 1e6 else f"{data.events:,}"
    wide = ", wide" if variant == "wide" else ""
    bench = f"filters {database}, {size} events{wide}"
    target = TARGET_MS.get(database, {}).get(opts.events)
    # Slow is judged by the bound for the size on any database (PostgreSQL has none
    # at 10M, and must not make the run hours long either).
    bound = TARGET_MS["sqlite"].get(opts.events)
    slow_ms = bound * SLOW_FACTOR if bound else None
    if opts.filter_keep_store:
        data_dir = data.path.with_name(f"{data.path.stem}.filters-{database}")
    else:
        data_dir = opts.workdir / f"filters-{database}-{variant}"
    figures: list[Figure] = []
    db = Database(url)
    try:
        # Where `tracker serve` on this data directory reads its store (store_root).
        store = store_root(data_dir)
        # The SQLite file's rollups are built by another process meanwhile, on the other core
        # (the store's build and the values' counts read only visits and events); then the
        # rest, which reads them (the goals' picks), or is timed (the floor).
        with datagen.rollups_meanwhile(url) if database == "sqlite" else nullcontext():
            if "columnar" in opts.filter_passes:
                figures.append(_build_figure(opts, db, bench, store))
            values = pick_values(db, data)
        floor = median([raw_distinct_visitors_ms(db, data) for _ in range(opts.stats_reps)])
        picks = {**values, GOAL: goal_picks(db, data)}
        matrix = cases(picks)
        report += [f"# {bench}: floor (raw count(distinct visitor)) {floor:.0f} ms", "values:"]
        report += [
            f"  {dim}: popular {p.popular[0]}, {p.popular[1]}; rare {p.rare[0]}, {p.rare[1]}"
            for dim, p in picks.items()
        ]
        # The store last: the HTTP requests are chosen from the pass the server reads like.
        stores = [("", None, "database"), (", columnar", store, "columnar")]
        for label, root, name in stores:
            if name not in opts.filter_passes:
                continue
            with _using_store(db, root):
                timings = time_cases(
                    db,
                    data,
                    matrix,
                    opts.stats_reps,
                    slow_ms,
                    exact=opts.filter_exact,
                    progress=_log(bench + label, len(matrix)),
                )
            figures += _group_figures(bench + label, timings, floor, target, slow_ms)
            report += _detail(label or ", database only", timings)
        served = http_cases(timings)  # of the last pass: the database as the server reads it
    finally:
        db.dispose()
    try:
        figures += _http_figures(data, data_dir, bench, url, served, floor, target, opts.stats_reps)
    except RuntimeError as exc:  # the server did not start: the in-process figures stand
        figures.append(Figure(bench, "API", math.nan, "ms", note=str(exc)))
    report.append("")
    return figures


def _build_figure(opts: Options, db: Database, bench: str, store: Path) -> Figure:
    """The store built (or, kept, refreshed) for the dataset's closed days, timed."""
    kept = opts.filter_keep_store and read_manifest(store, 1) is not None
    cpu = time.process_time()
    seconds = build_store(db, store)
    cpu = time.process_time() - cpu
    built = read_manifest(store, 1)
    note = f"{len(built.parts) if built else 0} parts, {cpu:.0f} s CPU; the days not closed"
    note += " yet are read from the database"
    if kept:
        note += "; kept from an earlier run: this is its refresh"
    target_s = "<= 300" if opts.events == 10_000_000 and not kept else ""
    return Figure(
        bench,
        "columnar store refresh" if kept else "columnar store build",
        seconds,
        "s",
        target=target_s,
        passed=seconds <= 300 if target_s else None,
        note=note,
    )


def _log(bench: str, total: int) -> Callable[[int], None]:
    began = time.monotonic()

    def progress(done: int) -> None:
        if done % 40 == 0 or done == total:
            elapsed = time.monotonic() - began
            print(f"[filters] {bench}: {done}/{total} queries, {elapsed:.0f} s", file=sys.stderr)

    return progress


def _group_figures(
    bench: str,
    timings: list[Timing],
    floor: float,
    target: float | None,
    slow_ms: float | None,
) -> list[Figure]:
    figures = []
    groups: dict[str, list[Timing]] = defaultdict(list)
    for timing in timings:
        groups[timing.case.group].append(timing)
    groups["all filters"] = timings
    for group, members in groups.items():
        values = [t.value for t in members]
        worst = max(members, key=lambda t: t.value)
        stopped = sum(t.stopped for t in members)
        note = f"{len(members)} queries" + (f", {stopped} stopped" if stopped else "")
        figures.append(_figure(bench, f"{group}: median", median(values), floor, target, note))
        where = f"stopped at {worst.value:.0f} ms" if worst.stopped else worst.read.split(":")[0]
        note = f"{worst.case.name} ({where})"
        figures.append(_figure(bench, f"{group}: worst", worst.value, floor, target, note))
    cpu = [t.cpu_value for t in timings]
    heaviest = max(timings, key=lambda t: t.cpu_value)
    note = f"this process's CPU (DuckDB's threads, SQLite), {len(timings)} queries"
    figures.append(Figure(bench, "all filters: median CPU", median(cpu), "ms", note=note))
    note = f"{heaviest.case.name}; {sum(c > (target or math.inf) for c in cpu)} over the bound"
    figures.append(Figure(bench, "all filters: worst CPU", heaviest.cpu_value, "ms", note=note))
    if target:
        over = [t for t in timings if t.value > target]
        slow = [t for t in timings if t.stopped or (slow_ms and t.warmup > slow_ms)]
        stopped = sum(t.stopped for t in timings)
        note = f"of {len(timings)}"
        if slow_ms and slow:
            note += f"; {len(slow)} past {slow_ms:g} ms ({SLOW_FACTOR}x the bound) run once" + (
                f", {stopped} of them stopped there" if stopped else ""
            )
        figures.append(
            Figure(
                bench,
                f"queries over {target:g} ms",
                len(over),
                "",
                target="0",
                passed=not over,
                note=note,
            )
        )
    return figures


def _figure(
    bench: str, metric: str, value: float, floor: float, target: float | None, note: str
) -> Figure:
    return Figure(
        bench,
        metric,
        value,
        "ms",
        baseline=floor,
        baseline_name="raw count(distinct visitor)",
        target=f"<= {target:g}" if target else "",
        passed=value <= target if target else None,
        note=note,
    )


def _detail(label: str, timings: list[Timing]) -> list[str]:
    lines = [
        f"{label}: median ms, [samples], median CPU ms, warm-up, rows, where the time went, query"
    ]
    for t in timings:
        samples = "/".join(f"{s:.0f}" for s in t.samples)
        rows = "stopped" if t.stopped else f"{t.rows} rows"
        lines.append(
            f"  {t.value:8.1f}  [{samples}]  cpu {t.cpu_value:.0f}  warm-up {t.warmup:.0f}"
            f"  {rows}  {t.read}  {t.case.name}"
        )
    return lines


def _http_figures(
    data: datagen.Dataset,
    data_dir: Path,
    bench: str,
    url: str,
    served: list[tuple[str, Timing]],
    floor: float,
    target: float | None,
    reps: int,
) -> list[Figure]:
    """Each chosen case through the Stats API: a warm-up request, then the median of
    `reps` (a slow one, as in-process: its first request only)."""
    figures = []
    # The matrix times queries: not the rate limiter (a generous allowance), nor background
    # jobs sharing the two CPUs (their first runs on a fresh data directory took minutes).
    env = {"TRACKER_API_RATE_LIMIT": "100000", "TRACKER_SCHEDULER_ENABLED": "false"}
    with tracker_serve(data_dir, url, env=env) as server:
        headers = {"Authorization": f"Bearer {data.api_key}"}
        for name, timing in served:
            path = api_path(data, timing.case)
            began = time.perf_counter()
            status, body = http("GET", server.base + path, headers=headers)
            first = (time.perf_counter() - began) * 1000
            if status != 200:
                note = f"{timing.case.name}: answered {status} {body[:200]!r}"
                figures.append(Figure(bench, name, math.nan, "ms", note=note))
                continue
            samples = [first] if len(timing.samples) == 1 else []
            while len(samples) < (1 if samples else reps):
                began = time.perf_counter()
                http("GET", server.base + path, headers=headers)
                samples.append((time.perf_counter() - began) * 1000)
            note = f"{timing.case.name}; in-process {timing.value:.0f} ms"
            figure = _figure(bench, name, median(samples), floor, target, note)
            figure.samples = samples
            figures.append(figure)
    return figures
