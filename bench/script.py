"""Script size: bytes of the beacon as the app serves it at /tracker.js, raw and gzipped."""

from __future__ import annotations

import gzip

from bench.common import Figure, Options, Unavailable
from tracker.app import create_app
from tracker.config import Settings

TARGET_GZIP_BYTES = 1500
# Published sizes of the peers' equivalent scripts, gzipped (the issue's reference points).
PLAUSIBLE_GZIP_BYTES = 2694


def run(opts: Options) -> list[Figure]:
    settings = Settings(
        data_dir=str(opts.workdir / "script"),
        database_url=f"sqlite:///{opts.workdir / 'script.db'}",
        secret_key="bench",
        scheduler_enabled=False,
    )
    app = create_app(settings)
    response = app.test_client().get("/tracker.js", headers={"Accept-Encoding": "gzip"})
    if response.status_code != 200:
        raise Unavailable(f"GET /tracker.js answered {response.status_code}")
    body = response.get_data()
    if response.headers.get("Content-Encoding") == "gzip":
        gzipped, raw = len(body), len(gzip.decompress(body))
    else:
        gzipped, raw = len(gzip.compress(body, compresslevel=9, mtime=0)), len(body)
    return [
        Figure(
            "script /tracker.js",
            "gzipped size",
            gzipped,
            "B",
            baseline=PLAUSIBLE_GZIP_BYTES,
            baseline_name="Plausible, published",
            target=f"<= {TARGET_GZIP_BYTES}",
            passed=gzipped <= TARGET_GZIP_BYTES,
            note=f"{raw:,} B before compression",
        )
    ]
