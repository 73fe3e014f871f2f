"""CSV export: rows/s and the worker's memory while streaming every event of the dataset.

One gunicorn worker serves the export, so its memory high-water mark (VmHWM) before and
after the download tells whether the stream stays flat. Baseline, in the same run: the
floor of the same work in one Python process, reading the rows with sqlite3 and writing
them with csv.writer to nowhere.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

from bench import datagen
from bench.common import Figure, Options, median, peak_rss_mb, rss_mb, tracker_serve

ROWS_PER_S_TARGET = 100_000
CHUNK = 1 << 16


def floor_rows_per_s(data: datagen.Dataset) -> float:
    conn = sqlite3.connect(data.path)
    sink = csv.writer(io.StringIO())
    began = time.perf_counter()
    rows = 0
    cursor = conn.execute("SELECT * FROM events ORDER BY timestamp_ms")
    while batch := cursor.fetchmany(5000):
        sink.writerows(batch)
        rows += len(batch)
        sink = csv.writer(io.StringIO())  # drop what was written: memory stays flat
    elapsed = time.perf_counter() - began
    conn.close()
    return rows / elapsed


def download(url: str, headers: dict[str, str]) -> tuple[int, int, float]:
    """(status, lines, seconds) of a streamed download, counting lines as they arrive."""
    request = urllib.request.Request(url, headers=headers)
    began = time.perf_counter()
    lines = 0
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            status = response.status
            while chunk := response.read(CHUNK):
                lines += chunk.count(b"\n")
    except urllib.error.HTTPError as exc:
        return exc.code, 0, 0.0
    return status, lines, time.perf_counter() - began


def run(opts: Options) -> list[Figure]:
    data = datagen.dataset(opts.events)
    query = urlencode({"from": data.first_day, "to": data.last_day})
    headers = {"Authorization": f"Bearer {data.api_key}"}
    floor = median([floor_rows_per_s(data) for _ in range(min(opts.reps, 2))])
    with tracker_serve(opts.workdir / "export", data.url, workers=1) as server:
        worker = server.worker_pids()[0]
        url = f"{server.base}/sites/{data.site}/export/events.csv?{query}"
        before = rss_mb(worker)
        speeds = []
        for _ in range(min(opts.reps, 2)):
            status, lines, seconds = download(url, headers)
            if status != 200:
                return [Figure("export", "rows/s", float("nan"), "", note=f"{url}: {status}")]
            speeds.append((lines - 1) / seconds)  # minus the header line
        peak = peak_rss_mb(worker)
    rows = lines - 1
    rate = median(speeds)
    return [
        Figure(
            f"export {rows:,} rows",
            "rows/s",
            rate,
            "rows/s",
            baseline=floor,
            baseline_name="sqlite3 + csv floor",
            target=f">= {ROWS_PER_S_TARGET:,}",
            passed=rate >= ROWS_PER_S_TARGET and rows == data.events,
            samples=speeds,
            note=f"{rows:,} rows of {data.events:,} events",
        ),
        Figure(
            f"export {rows:,} rows",
            "worker peak RSS",
            peak,
            "MB",
            baseline=before,
            baseline_name="worker before",
            target="flat",
            passed=peak - before < 64,
            note="VmHWM of the only worker; flat = under 64 MB above the start",
        ),
    ]
