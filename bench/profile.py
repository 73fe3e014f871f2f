"""Where ingest time goes: py-spy samples `tracker serve`'s workers under wrk load.

Only threads holding the GIL are sampled (--gil): that is the Python work that limits a
worker, and it leaves out request threads waiting for the group commit. SQLite's and
psycopg's C code releases the GIL, so database time is not in this profile (the ingest
table's server CPU figure counts it). Samples whose innermost frame is a wait (WAITS) are
set aside all the same. Each sample is charged to the package of its innermost
frame (sqlalchemy, tracker, werkzeug...), and the tracker functions on the stack are
totalled inclusively. The full listing goes to ingest-profile.txt beside the results.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import BIN, Figure, Options, Unavailable, tracker_serve
from bench.ingest import prepare_database, run_wrk

REPORT_NAME = "ingest-profile.txt"
FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")
TOP = 6
WAITS = frozenset(
    {
        "Condition.wait (threading.py)",
        "Event.wait (threading.py)",
        "EpollSelector.select (selectors.py)",
        "Arbiter.wait_for_signals (gunicorn/arbiter.py)",
        "Arbiter.sleep (gunicorn/arbiter.py)",
        "SimpleQueue.get (queue.py)",
        "Queue.get (queue.py)",
    }
)


def _package(file: str) -> str:
    """'sqlalchemy/engine/base.py' -> 'sqlalchemy'; stdlib modules keep their module name."""
    head = file.split("/", 1)[0]
    return head.removesuffix(".py") or "?"


@dataclass
class Summary:
    total: int = 0  # samples of work
    waiting: int = 0  # samples blocked in one of WAITS
    packages: Counter[str] = field(default_factory=Counter)  # by innermost frame's package
    leaves: Counter[str] = field(default_factory=Counter)  # by innermost function
    ours: Counter[str] = field(default_factory=Counter)  # tracker functions, inclusive


def summarize(folded: str) -> Summary:
    """Totals of py-spy's folded stacks ("frame;frame;... count" lines)."""
    summary = Summary()
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [m for m in (FRAME_RE.match(f) for f in stack.split(";")) if m]
        if not frames:
            continue
        leaf = frames[-1]
        if f"{leaf['func']} ({leaf['file']})" in WAITS:
            summary.waiting += count
            continue
        summary.total += count
        summary.packages[_package(leaf["file"])] += count
        summary.leaves[f"{leaf['func']} ({leaf['file']})"] += count
        seen = {f"{m['func']} ({m['file']})" for m in frames if m["file"].startswith("tracker/")}
        for name in seen:
            summary.ours[name] += count
    return summary


def run(opts: Options) -> list[Figure]:
    py_spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if py_spy is None:
        raise Unavailable("py-spy is not installed (`make bench` installs it)")
    url = prepare_database("sqlite", opts.workdir / "profile")
    seconds = max(opts.duration, 3.0)
    raw = opts.workdir / "profile.folded"
    with tracker_serve(opts.workdir / "profile" / "server", url) as server:
        run_wrk(server.base, 64, 1.0)  # warm caches before sampling
        load = threading.Thread(target=run_wrk, args=(server.base, 64, seconds + 2))
        load.start()
        done = subprocess.run(
            [
                py_spy,
                "record",
                "--pid",
                str(server.proc.pid),
                "--subprocesses",
                "--gil",
                "--nonblocking",
                "--rate",
                "500",
                "--duration",
                str(int(seconds)),
                "--format",
                "raw",
                "--output",
                str(raw),
            ],
            capture_output=True,
            text=True,
        )
        load.join()
    if done.returncode != 0 or not raw.exists():
        raise Unavailable(f"py-spy failed: {done.stderr.strip()[-300:]}")
    summary = summarize(raw.read_text())
    _write_report(summary, opts.results / REPORT_NAME)
    total = summary.total
    return [
        Figure(
            "ingest profile",
            f"time in {name}",
            100 * count / total,
            "%",
            note=f"{total:,} samples; see {REPORT_NAME} beside the results" if i == 0 else "",
        )
        for i, (name, count) in enumerate(summary.packages.most_common(TOP))
    ]


def _write_report(summary: Summary, path: Path) -> None:
    total = summary.total
    lines = [
        f"py-spy --gil on tracker serve under wrk: {total:,} samples of work"
        f" ({summary.waiting:,} more blocked in a wait, left out)"
    ]
    for title, counter, top in (
        ("By innermost package", summary.packages, 15),
        ("By innermost function", summary.leaves, 20),
        ("tracker functions, inclusive", summary.ours, 25),
    ):
        lines += ["", f"{title}:"]
        lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in counter.most_common(top)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
