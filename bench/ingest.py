"""Ingest throughput and latency: `tracker serve` against the bare Flask floor, with wrk.

For each connection count and repetition, the bare app, then the collector on each database,
take turns (so machine noise hits all alike). Every 2xx must be stored: rows are counted
before and after each run. Afterwards: resident memory per worker and bytes per event.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.common import (
    BENCH_SITE,
    BIN,
    REPO,
    Figure,
    Options,
    Server,
    Unavailable,
    bytes_on_disk,
    count_rows,
    free_port,
    median,
    postgres_database,
    server_env,
    serving,
    sqlite_url,
    tracker_cli,
    tracker_serve,
)

LUA = REPO / "bench" / "events.lua"
WRK_THREADS = 2
WARMUP_S = 2.0
EVENTS_PER_S_TARGET = 3000
P99_MS_TARGET = 50
RATIO_TARGET = 0.6
PG_DATABASE = "tracker_bench_ingest"


# wrk runs this much longer than the load, so requests in flight at the end get answered.
GRACE_S = 3.0


@dataclass
class WrkRun:
    seconds: float
    sent: int
    sent_engagement: int
    ok: int
    bad: int  # answers other than 2xx
    socket_errors: int  # connect, read, write errors and timeouts
    last_bad_status: int
    p50_ms: float
    p99_ms: float
    stored: int = 0
    server_cores: float = 0.0  # CPU the server used during the run, in cores

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        """Server CPU per answered request: steadier than events/s on a shared machine."""
        return self.server_cores * 1e6 / max(self.per_second, 1e-9)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise Unavailable("wrk is not installed (`make bench` installs it: apt-get install wrk)")
    return path


def run_wrk(base_url: str, connections: int, seconds: float) -> WrkRun:
    argv = [
        require_wrk(),
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{seconds + GRACE_S:g}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        base_url,
        "--",
        BENCH_SITE,
        str(LUA.parent),
        str(seconds),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return WrkRun(
        seconds=data["active_s"],
        sent=data["sent"],
        sent_engagement=data["sent_engagement"],
        ok=data["ok"],
        bad=data["bad"],
        # Read errors are left out: they are the server's keep-alive closing connections left
        # idle after the load stopped. A request that really failed shows as cut (sent - ok).
        socket_errors=data["errors"]["connect"]
        + data["errors"]["write"]
        + data["errors"]["timeout"],
        last_bad_status=data["last_bad_status"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


def settled_count(database_url: str) -> int:
    """Rows once requests cut in flight at the end of a run have finished."""
    previous = -1
    for _ in range(40):
        current = count_rows(database_url)
        if current == previous:
            return current
        previous = current
        time.sleep(0.5)
    return current


def measured_run(
    server: Server, database_url: str | None, connections: int, seconds: float
) -> WrkRun:
    """One wrk run; with a database, the rows it stored are counted."""
    before = settled_count(database_url) if database_url else 0
    cpu = server.cpu_seconds()
    run = run_wrk(server.base, connections, seconds)
    run.server_cores = (server.cpu_seconds() - cpu) / run.seconds
    if database_url:
        run.stored = settled_count(database_url) - before
    return run


def analyze(database_url: str) -> None:
    """Planner statistics, as a database in service has them (autovacuum keeps them).

    A table created moments ago has none, and PostgreSQL then plans the collector's visit
    lookup as a scan of the site's visits of the day instead of an index probe per visitor.
    """
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def dropped(database_url: str) -> dict[str, int]:
    """Events the collector answered 202 but did not store, by reason (bots, spam...)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT reason, sum(count) FROM drop_counts GROUP BY reason"))
            return {reason: int(total) for reason, total in rows}
    finally:
        engine.dispose()


def prepare_database(name: str, workdir: Path) -> str:
    """A fresh, migrated database with the benchmark site; its URL."""
    data_dir = workdir / f"ingest-{name}"
    data_dir.mkdir(parents=True, exist_ok=True)
    if name == "sqlite":
        url = sqlite_url(data_dir / "tracker.db")
    else:
        url = postgres_database(PG_DATABASE, fresh=True)
    tracker_cli(data_dir, url, "migrate")
    tracker_cli(data_dir, url, "sites", "add", BENCH_SITE)
    return url


def run(opts: Options) -> list[Figure]:
    require_wrk()
    urls: dict[str, str] = {}
    figures: list[Figure] = []
    for name in opts.databases:
        try:
            urls[name] = prepare_database(name, opts.workdir)
        except Unavailable as exc:
            figures.append(Figure(f"ingest {name}", "events/s", float("nan"), "", note=str(exc)))
    runs: dict[tuple[str, int], list[WrkRun]] = {}
    with ExitStack() as stack:
        port = free_port()
        bare = stack.enter_context(
            serving(
                [str(BIN / "python"), "-m", "bench.bare_app"],
                server_env(opts.workdir, "", port),
                port,
                opts.workdir / "bare.log",
            )
        )
        servers: dict[str, Server] = {"bare": bare}
        for name, url in urls.items():
            data_dir = opts.workdir / f"ingest-{name}"
            servers[name] = stack.enter_context(tracker_serve(data_dir, url))
        for server in servers.values():
            run_wrk(server.base, opts.connections[0], WARMUP_S)  # caches, pools, page cache
        for url in urls.values():
            analyze(url)
        for connections in opts.connections:
            for _ in range(opts.reps):
                for name, server in servers.items():
                    url = urls.get(name)  # none for the bare app
                    result = measured_run(server, url, connections, opts.duration)
                    runs.setdefault((name, connections), []).append(result)
        rss = {name: server.worker_rss_mb() for name, server in servers.items()}
    for name, url in urls.items():
        for connections in opts.connections:
            figures += _ingest_figures(
                name, connections, runs[name, connections], runs["bare", connections]
            )
        stored = count_rows(url)
        if drops := dropped(url):
            figures[-1].note += "; dropped by the collector: " + ", ".join(
                f"{count:,} {reason}" for reason, count in drops.items()
            )
        figures.append(
            Figure(
                f"footprint {name}",
                "RSS per worker",
                max(rss[name]),
                "MB",
                baseline=max(rss["bare"]),
                baseline_name="bare Flask worker",
                note=f"after the ingest runs; workers: {', '.join(f'{m:.0f}' for m in rss[name])}",
            )
        )
        figures.append(
            Figure(
                f"footprint {name}",
                "DB bytes per event",
                bytes_on_disk(url) / max(stored, 1),
                "B",
                note=f"{stored:,} events stored by the collector",
            )
        )
    return figures


def _ingest_figures(
    name: str, connections: int, runs: list[WrkRun], bare: list[WrkRun]
) -> list[Figure]:
    bench = f"ingest {name}, {connections} conn"
    eps = median([r.per_second for r in runs])
    bare_eps = median([r.per_second for r in bare])
    ratio = eps / bare_eps
    p99 = median([r.p99_ms for r in runs])
    ok = sum(r.ok for r in runs)
    stored = sum(r.stored for r in runs)
    bad = sum(r.bad for r in runs)
    cut = sum(r.sent for r in runs) - ok - bad
    engagement = sum(r.sent_engagement for r in runs)
    # Engagement beacons update their pageview's row; every other accepted event is a row.
    expected = ok - engagement
    answers = (
        f"{ok:,} answered 2xx ({engagement:,} engagement beacons, folded into pageviews), "
        f"{stored:,} rows stored of {expected:,} expected"
    )
    if cut:
        answers += f", {cut:,} requests cut in flight"
    if bad:
        answers += f", {bad:,} failed (last status {max(r.last_bad_status for r in runs)})"
    if errors := sum(r.socket_errors for r in runs):
        answers += f", {errors:,} socket errors or timeouts"
    return [
        Figure(
            bench,
            "events/s",
            eps,
            "/s",
            baseline=bare_eps,
            baseline_name="bare Flask 204",
            target=f">= {EVENTS_PER_S_TARGET}, ratio >= {RATIO_TARGET}" if name == "sqlite" else "",
            passed=eps >= EVENTS_PER_S_TARGET and ratio >= RATIO_TARGET
            if name == "sqlite"
            else None,
            samples=[r.per_second for r in runs],
        ),
        Figure(
            bench,
            "p50 latency",
            median([r.p50_ms for r in runs]),
            "ms",
            baseline=median([r.p50_ms for r in bare]),
            baseline_name="bare Flask 204",
            samples=[r.p50_ms for r in runs],
        ),
        Figure(
            bench,
            "p99 latency",
            p99,
            "ms",
            baseline=median([r.p99_ms for r in bare]),
            baseline_name="bare Flask 204",
            target=f"<= {P99_MS_TARGET}" if connections >= 64 else "",
            passed=p99 <= P99_MS_TARGET if connections >= 64 else None,
            samples=[r.p99_ms for r in runs],
        ),
        Figure(
            bench,
            "server CPU",
            median([r.server_cores for r in runs]),
            "cores",
            baseline=median([r.server_cores for r in bare]),
            baseline_name="bare Flask 204",
            note="CPU time of the server's processes per second of load; 2 cores here",
        ),
        Figure(
            bench,
            "server CPU per event",
            median([r.cpu_us_per_event for r in runs]),
            "us",
            baseline=median([r.cpu_us_per_event for r in bare]),
            baseline_name="bare Flask 204",
            note="what one event costs the server (user + system), whatever the load",
            samples=[r.cpu_us_per_event for r in runs],
        ),
        Figure(
            bench,
            "stored / accepted",
            stored / max(expected, 1),
            "",
            target="1",
            # A request cut in flight (none, normally) may or may not have been stored.
            passed=bad == 0 and expected - cut <= stored <= expected + cut,
            note=answers,
        ),
    ]
