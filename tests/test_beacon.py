"""The served beacon: /tracker.js headers, caching, size budget, and the build being current."""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tracker.web.beacon import BEACON_PATH, CACHE_SECONDS

ROOT = Path(__file__).resolve().parents[1]
# Gzipped bytes a visitor downloads; Plausible's equivalent is 2,694 B, Umami's 2,223 B.
SIZE_BUDGET = 1_500

# The route does not touch the database: one backend is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
def test_served_with_type_caching_and_cors(client: FlaskClient):
    response = client.get("/tracker.js", headers={"Origin": "https://shop.example"})
    assert response.status_code == 200
    assert response.mimetype == "application/javascript"
    assert response.data == BEACON_PATH.read_bytes()
    assert response.headers["Cache-Control"] == f"public, max-age={CACHE_SECONDS}"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "Set-Cookie" not in response.headers
    assert "Accept-Encoding" in response.vary
    assert "Cookie" not in response.vary  # one cached copy for everyone
    assert "Content-Encoding" not in response.headers


@sqlite_only
def test_etag_revalidation_answers_304_without_body(client: FlaskClient):
    etag = client.get("/tracker.js").headers["ETag"]
    again = client.get("/tracker.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    stale = client.get("/tracker.js", headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200


@sqlite_only
def test_gzip_when_accepted_with_its_own_etag(client: FlaskClient):
    plain = client.get("/tracker.js")
    packed = client.get("/tracker.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == plain.data
    assert packed.headers["ETag"] != plain.headers["ETag"]
    etag = packed.headers["ETag"]
    again = client.get("/tracker.js", headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert again.status_code == 304


@sqlite_only
def test_served_file_fits_the_size_budget(client: FlaskClient):
    packed = client.get("/tracker.js", headers={"Accept-Encoding": "gzip"})
    assert len(packed.data) <= SIZE_BUDGET, f"{len(packed.data)} bytes gzipped"
    # Whatever compresses it (a proxy at its default level), it stays within budget.
    assert len(gzip.compress(BEACON_PATH.read_bytes(), compresslevel=6)) <= SIZE_BUDGET


def test_built_file_is_up_to_date_with_its_source():
    terser = ROOT / "node_modules" / ".bin" / "terser"
    if not terser.exists():
        message = "node_modules missing: `make test` (or `npm ci`) installs the minifier"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    built = subprocess.run(
        ["npm", "run", "--silent", "build"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    assert built == BEACON_PATH.read_bytes(), "static/tracker.js is stale: run `make beacon`"
