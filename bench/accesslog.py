"""Access-log import speed: lines/s parsed and sorted into pages and skips, and imported
end to end into a fresh SQLite database, beside the floor.

The floor is reading the same file's lines and decoding them, nothing more: what any parser
pays. The log is a generated combined-format file with a busy site's mix (assets, pages,
bots, errors), so the figures are for real lines, not one repeated line. The import is
`tracker import logs` without its progress bar: bot checks, enrichment, visit assignment
and the one transaction that stores the file. Its lines per CPU second (the process's own
time, SQLite's included) are printed beside it: on a box shared with other work, what the
import costs, which the wall-clock figure mixes with what the others take.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

from bench.common import BENCH_DIR, Figure, Options, median
from tracker.accesslog.files import open_log, text
from tracker.accesslog.formats import caddy_parser, parse_combined
from tracker.accesslog.load import LogImport
from tracker.accesslog.pages import skip_reason
from tracker.db import Database
from tracker.db.migrate import upgrade
from tracker.ingest.pipeline import Pipeline
from tracker.sites import add_site

TARGET_LINES_PER_S = 50_000
START = 1_780_000_000  # seconds since 1970
ASSETS = ("/static/app.css", "/static/app.js", "/img/logo.png", "/favicon.ico", "/fonts/a.woff2")
PAGES = ("/", "/pricing", "/blog/post-1", "/docs/install?utm_source=news", "/contact")
BOTS = ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "curl/8.4.0")
REFERRERS = ("-", "https://www.google.com/", "https://news.ycombinator.com/", "-")


def _lines(count: int, rng: random.Random) -> list[tuple[str, int, str, str, int, str, str]]:
    """(ip, time, method, target, status, referrer, user agent) per line, a second apart."""
    agents = [ua for ua in (BENCH_DIR / "user_agents.txt").read_text().splitlines() if ua]
    rows = []
    for i in range(count):
        kind = rng.random()
        target = rng.choice(ASSETS) if kind < 0.7 else rng.choice(PAGES)
        agent = rng.choice(BOTS) if kind > 0.9 else rng.choice(agents)
        status = 404 if rng.random() < 0.03 else 200
        method = "POST" if rng.random() < 0.02 else "GET"
        ip = f"198.51.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        rows.append((ip, START + i, method, target, status, rng.choice(REFERRERS), agent))
    return rows


def write_combined(path: Path, count: int) -> None:
    with path.open("w") as out:
        for ip, ts, method, target, status, referrer, agent in _lines(count, random.Random(1)):
            moment = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(ts))
            out.write(
                f'{ip} - - [{moment}] "{method} {target} HTTP/1.1" {status} 5120 '
                f'"{referrer}" "{agent}"\n'
            )


def write_caddy(path: Path, count: int) -> None:
    with path.open("w") as out:
        for ip, ts, method, target, status, referrer, agent in _lines(count, random.Random(1)):
            headers = {
                "User-Agent": [agent],
                **({"Referer": [referrer]} if referrer != "-" else {}),
            }
            entry = {
                "level": "info",
                "ts": ts + 0.25,
                "logger": "http.log.access",
                "msg": "handled request",
                "request": {
                    "remote_ip": ip,
                    "client_ip": ip,
                    "proto": "HTTP/2.0",
                    "method": method,
                    "host": "bench.example",
                    "uri": target,
                    "headers": headers,
                },
                "status": status,
                "size": 5120,
                "resp_headers": {"Content-Type": ["text/html; charset=utf-8"]},
            }
            out.write(json.dumps(entry) + "\n")


def _rate(path: Path, per_line: Callable[[bytes], object]) -> float:
    log = open_log(str(path))
    began = time.perf_counter()
    count = 0
    for line in log.stream:
        per_line(line)
        count += 1
    elapsed = time.perf_counter() - began
    log.close()
    return count / elapsed


def _import_rate(path: Path, workdir: Path, rep: int) -> tuple[float, float, int]:
    """Lines/s of a whole import into a new database, lines per CPU second, and the
    pageviews it stored."""
    url = f"sqlite:///{workdir / f'import-{rep}.db'}"
    upgrade(url)
    db = Database(url)
    with db.session() as session:
        add_site(session, "bench.example")
    pipeline = Pipeline(db, visit_timeout_minutes=30, spool_dir=workdir / f"spool-{rep}")
    job = LogImport(pipeline, "bench.example", 30 * 60_000)
    log = open_log(str(path))
    began, cpu_began = time.perf_counter(), time.process_time()
    report = job.run(log)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    log.close()
    db.dispose()
    return report.lines / elapsed, report.lines / cpu, report.pages


def run(opts: Options) -> list[Figure]:
    count = 2000 if opts.events <= 10_000 else 200_000
    combined, caddy = opts.workdir / "access.log", opts.workdir / "caddy.log"
    write_combined(combined, count)
    write_caddy(caddy, count)
    parse_caddy = caddy_parser(UTC)

    def parse_and_sort(line: bytes) -> None:
        skip_reason(parse_combined(text(line)))

    floor, parsed, sorted_, json_parsed, imported, per_cpu = [], [], [], [], [], []
    pages = 0
    for rep in range(opts.reps):
        floor.append(_rate(combined, text))
        parsed.append(_rate(combined, lambda line: parse_combined(text(line))))
        sorted_.append(_rate(combined, parse_and_sort))
        json_parsed.append(_rate(caddy, lambda line: skip_reason(parse_caddy(text(line)))))
        rate, cpu_rate, pages = _import_rate(combined, opts.workdir, rep)
        imported.append(rate)
        per_cpu.append(cpu_rate)
    note = f"{count:,} generated lines, median of {opts.reps}"

    def over_floor(
        metric: str, samples: list[float], *, targeted: bool = True, **more: str
    ) -> Figure:
        """A figure with the floor as its baseline, and the target when `targeted`."""
        value = median(samples)
        return Figure(
            "accesslog",
            metric,
            value,
            "/s",
            baseline=median(floor),
            baseline_name="floor",
            target=f">= {TARGET_LINES_PER_S:,}/s" if targeted else "",
            passed=value >= TARGET_LINES_PER_S if targeted else None,
            samples=samples,
            **more,
        )

    return [
        Figure("accesslog", "read and decode lines (floor)", median(floor), "/s", note=note),
        over_floor("combined: parse", parsed, targeted=False),
        over_floor("combined: parse + page filter", sorted_),
        over_floor("caddy JSON: parse + page filter", json_parsed),
        over_floor(
            "combined: import into SQLite",
            imported,
            note=f"{pages:,} pageviews stored of {count:,} lines",
        ),
        over_floor("combined: import into SQLite, per CPU second", per_cpu, targeted=False),
    ]
