"""The harness: run each benchmark, print one table, write it as JSON (bench/results/latest.json).

    python -m bench                    # default: 5 s ingest runs x3, stats at 1M events
    python -m bench --full             # 30 s ingest runs, as quoted in README
    python -m bench --events 10M       # stats and export on 10M events (slow to generate once)
    python -m bench --only ingest,script --databases sqlite
    python -m bench --only filters --filter-datasets default   # the filter matrix alone

Each benchmark measures its own baseline in the same run (the shared, noisy machine moves
both alike) and the table shows the ratio. Figures are medians of the repetitions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    accesslog,
    classify,
    export,
    filters,
    ingest,
    jobs,
    profile,
    reports,
    script,
    stats,
)
from bench.common import REPO, Figure, Options, Unavailable, parse_count

BENCHMARKS: dict[str, Callable[[Options], list[Figure]]] = {
    "script": script.run,
    "ingest": ingest.run,
    "stats": stats.run,
    "filters": filters.run,
    "export": export.run,
    "jobs": jobs.run,
    "profile": profile.run,
    "classify": classify.run,
    "accesslog": accesslog.run,
    "reports": reports.run,
}
DEFAULT = ",".join(BENCHMARKS)
RESULTS = REPO / "bench" / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", default=DEFAULT, help=f"benchmarks to run, of: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--events", type=parse_count, default=1_000_000, help="stats dataset")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per ingest run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (medians reported)")
    parser.add_argument("--connections", default="16,64", help="ingest connection counts")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument(
        "--filter-datasets",
        default=None,
        help="the filter matrix's datasets: default, wide (100k pages, 10k campaigns);"
        " default: both up to 1M events, the default one above",
    )
    parser.add_argument(
        "--filter-exact",
        action="store_true",
        help="let the filter matrix's slow queries run to their end (default: stopped at 3x"
        " the target)",
    )
    parser.add_argument(
        "--filter-passes",
        default="database,columnar",
        help="the filter matrix's passes: database (rollups and raw rows), columnar (the store)",
    )
    parser.add_argument(
        "--filter-keep-store",
        action="store_true",
        help="keep the filter matrix's columnar store beside the cached dataset and refresh it"
        " (its build figure is then the refresh's)",
    )
    parser.add_argument("--full", action="store_true", help="30 s ingest runs (README figures)")
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if args.filter_datasets is None:
        # Above 1M, only when asked: building a dataset's rollups the first time took 53 min
        # at 10M events here (the default dataset), and the wide one keeps far more values.
        args.filter_datasets = "default,wide" if args.events <= 1_000_000 else "default"
    if set(args.filter_datasets.split(",")) - {"default", "wide"}:
        parser.error("--filter-datasets: use default, wide or both")
    if not args.filter_passes or set(args.filter_passes.split(",")) - {"database", "columnar"}:
        parser.error("--filter-passes: use database, columnar or both")
    if args.full:
        args.duration = 30.0
    if args.tiny:
        args.events, args.duration, args.reps, args.connections = 3000, 1.0, 1, "4"
    return args


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "commit": _git("rev-parse", "--short", "HEAD"),
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip()


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit in ("/s", "B", "rows/s"):
        return f"{value:,.0f}"
    if unit == "":
        return f"{value:.3f}"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _cells(f: Figure) -> tuple[str, ...]:
    baseline = f"{fmt(f.baseline, f.unit)} ({f.baseline_name})" if f.baseline else ""
    ok = {True: "yes", False: "NO", None: ""}[f.passed]
    return (f.bench, f.metric, fmt(f.value, f.unit), f.unit, baseline, fmt(f.ratio), f.target, ok)


HEADER = ("benchmark", "metric", "value", "unit", "baseline", "ratio", "target", "ok")


def markdown(figures: list[Figure]) -> str:
    """The table as Markdown (bench/results/latest.md, pasted into README)."""
    rows = [HEADER, ("---",) * len(HEADER), *(_cells(f) for f in figures)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"


def table(figures: list[Figure]) -> str:
    rows = [HEADER, *(_cells(f) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {f.bench} / {f.metric}: {f.note}" for f in figures if f.note]
    return "\n".join(line.rstrip() for line in lines) + ("\n\nNotes:\n" + "\n".join(notes))


def main(argv: list[str] | None = None) -> list[Figure]:
    args = parse_args(argv)
    started = datetime.now(UTC)
    info = machine()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as workdir:
        opts = Options(
            workdir=Path(workdir),
            results=args.out.parent,
            events=args.events,
            duration=args.duration,
            reps=args.reps,
            connections=tuple(int(c) for c in args.connections.split(",")),
            databases=tuple(args.databases.split(",")),
            filter_datasets=tuple(args.filter_datasets.split(",")),
            filter_exact=args.filter_exact,
            filter_passes=tuple(args.filter_passes.split(",")),
            filter_keep_store=args.filter_keep_store,
        )
        for name in args.only.split(","):
            began = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                figures += BENCHMARKS[name](opts)
            except Unavailable as exc:
                figures.append(Figure(name, "-", float("nan"), "", note=f"not run: {exc}"))
            print(f"[bench] {name} done in {time.monotonic() - began:.0f} s", file=sys.stderr)
    load = ", ".join(f"{x:.1f}" for x in info["load_average_at_start"])
    print(f"{info['cpus']} CPUs ({info['cpu']}), load average at start {load}")
    print(table(figures))
    result = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds()),
        "machine": info,
        "options": {k: v for k, v in vars(args).items() if k != "out"},
        "figures": [f.as_dict() for f in figures],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(figures))
    print(f"\nWritten to {args.out}", file=sys.stderr)
    return figures


if __name__ == "__main__":
    main()
