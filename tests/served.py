"""A real `tracker serve` seen from outside, as the durability and process tests use it:
beacons posted over HTTP, stored rows read from its SQLite file."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import DEFAULT_USER_AGENT
from tracker.db import Database
from tracker.sites import add_site

SITE = "example.com"


def prepare_data_dir(data_dir: Path, sqlite_template: Path) -> Path:
    """A data directory for `tracker serve` whose SQLite database knows SITE: a copy of the
    migrated template (tests/fixtures.py's `sqlite_template`), not migrated again (~0.35 s
    of CPU per server). Returns the database's path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db_path = data_dir / "tracker.db"
    shutil.copy(sqlite_template, db_path)
    db = Database(f"sqlite:///{db_path}")
    try:
        with db.session() as session:
            add_site(session, SITE)
    finally:
        db.dispose()
    return db_path


def event_body(path: str) -> bytes:
    return json.dumps({"site": SITE, "type": "pageview", "url": f"https://{SITE}{path}"}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_event(port: int, path: str) -> int:
    """A pageview of `path` on SITE, posted as the beacon does; the answer's status, 0 for
    none (connection refused or cut)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/event",
        data=event_body(path),
        headers={"Content-Type": "text/plain", "User-Agent": DEFAULT_USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def stored_rows(db_path: Path) -> list[str]:
    """The path of each stored event."""
    conn = sqlite3.connect(db_path)
    try:
        return [row[0] for row in conn.execute("SELECT path FROM events")]
    finally:
        conn.close()
