"""Access logs uploaded on the settings page: kept, imported by the jobs process, progress
and summary shown; refused uploads say why and keep nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import add_user, log_in, session_token
from tests.test_accesslog_load import LINES
from tracker.accesslog import uploads
from tracker.accesslog.uploads import ProgressFile, upload_dir
from tracker.db import Database
from tracker.db.models import LogUpload, Site, Visit
from tracker.jobs import find_job
from tracker.sites import add_site

SITE = "example.com"
SETTINGS = f"/sites/{SITE}/settings"


@pytest.fixture
def owner_client(app: Flask, db: Database) -> FlaskClient:
    user = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=user)
    client = app.test_client()
    log_in(client, user)
    return client


def post_log(
    client: FlaskClient, content: bytes, name: str = "access.log", **fields: str
) -> tuple[int, str]:
    data: dict[str, object] = {
        "csrf_token": session_token(client),
        "log_format": "auto",
        "timezone": "UTC",
        "file": (io.BytesIO(content), name),
        **fields,
    }
    response = client.post(f"{SETTINGS}/logs", data=data, content_type="multipart/form-data")
    return response.status_code, response.get_data(as_text=True)


def run_job(app: Flask) -> None:
    find_job("import_uploaded_logs").func(
        app.extensions["tracker.db"], app.extensions["tracker.settings"]
    )


def status(client: FlaskClient) -> list[dict[str, object]]:
    response = client.get(f"{SETTINGS}/logs/status.json")
    assert response.status_code == 200
    return response.get_json()["uploads"]  # type: ignore[no-any-return]


def test_an_upload_is_imported_in_the_background(
    app: Flask, db: Database, owner_client: FlaskClient
) -> None:
    assert "No access log imported yet." in owner_client.get(SETTINGS).get_data(as_text=True)
    code, _ = post_log(owner_client, b"".join(LINES), name="<b>access</b>.log")
    assert code == 302
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    assert "&lt;b&gt;access&lt;/b&gt;.log" in page and "<b>access</b>" not in page
    assert 'data-state="waiting"' in page
    [waiting] = status(owner_client)
    assert (waiting["status"], waiting["percent"]) == ("waiting", 0)
    run_job(app)
    [done] = status(owner_client)
    assert done["status"] == "done"
    assert str(done["summary"]).splitlines()[:2] == [
        "<b>access</b>.log (combined): 13 lines read, 7 pages, 5 visits, "
        "2026-03-02 09:00 to 2026-03-03 08:00 UTC",
        "  skipped: asset 1, bot 1, endpoint 1, malformed 1, method 1, status 1",
    ]
    with db.session() as session:
        assert len(session.scalars(select(Visit)).all()) == 5
    data_dir = app.extensions["tracker.settings"].data_dir
    assert list(upload_dir(data_dir).iterdir()) == []  # the file is gone once imported
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    assert "13 lines read, 7 pages, 5 visits" in page
    # The same file again: its lines were stored, none is stored twice.
    post_log(owner_client, b"".join(LINES))
    run_job(app)
    assert "13 lines were stored by an earlier import: skipped" in str(
        status(owner_client)[0]["summary"]
    )
    with db.session() as session:
        assert len(session.scalars(select(Visit)).all()) == 5


def test_progress_of_a_running_import_and_one_that_died(
    app: Flask, db: Database, owner_client: FlaskClient
) -> None:
    content = b"".join(LINES) + b"\n" * (len(b"".join(LINES)) % 2)  # an even size: 50 %
    post_log(owner_client, content)
    data_dir = app.extensions["tracker.settings"].data_dir
    claimed = uploads._claim_next(db, data_dir)
    assert claimed is not None
    progress = upload_dir(data_dir) / f"{claimed.id}.progress"
    ProgressFile(progress).write(len(content) // 2, 6)
    [running] = status(owner_client)
    assert (running["status"], running["percent"]) == ("running", 50)
    assert uploads._claim_next(db, data_dir) is None  # another run leaves it to its import
    stale = time.time() - uploads.STALE_SECONDS - 5
    os.utime(progress, (stale, stale))  # its process died: nothing moved for ten minutes
    run_job(app)
    [done] = status(owner_client)
    assert done["status"] == "done" and "7 pages, 5 visits" in str(done["summary"])


def test_a_file_that_is_not_a_log_fails_with_its_reason(
    app: Flask, db: Database, owner_client: FlaskClient
) -> None:
    post_log(owner_client, b"dear diary\n", name="notes.txt")
    run_job(app)
    [failed] = status(owner_client)
    assert failed["status"] == "failed"
    assert str(failed["summary"]).startswith(
        "Nothing imported: notes.txt: the first lines are not in a format known here"
    )
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    assert 'class="summary error"' in page


@pytest.mark.parametrize(
    ("content", "fields", "code", "message"),
    [
        (b"", {}, 400, "The file is empty."),
        (b"x\n", {"log_format": "nginx"}, 400, "--format nginx needs the log_format field"),
        (
            b"x\n",
            {"log_format": "nginx", "nginx_format": "$remote_addr $status"},
            400,
            "log format: needs a time",
        ),
        (b"x\n", {"timezone": "Mars/Olympus"}, 400, "&#39;Mars/Olympus&#39; is not a time zone"),
        (b"x\n", {"log_format": "apache"}, 400, "Format: Not a valid choice"),
    ],
)
def test_refused_uploads_say_why_and_keep_nothing(
    app: Flask,
    db: Database,
    owner_client: FlaskClient,
    content: bytes,
    fields: dict[str, str],
    code: int,
    message: str,
) -> None:
    status_code, page = post_log(owner_client, content, **fields)
    assert status_code == code
    assert message in page
    with db.session() as session:
        assert session.scalars(select(LogUpload)).all() == []
    data_dir = Path(app.extensions["tracker.settings"].data_dir)
    assert not upload_dir(str(data_dir)).exists() or list(upload_dir(str(data_dir)).iterdir()) == []


def test_the_size_limit_is_a_setting(make_app: Callable[..., Flask]) -> None:
    app = make_app(max_log_upload_mb=1)
    db = app.extensions["tracker.db"]
    user = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=user)
    client = app.test_client()
    log_in(client, user)
    code, page = post_log(client, b"".join(LINES) * 1000)  # about 1.4 MB
    assert code == 413, page[-1500:]
    assert "The file is over 1 MB, the largest this page takes (max_log_upload_mb)" in page
    with db.session() as session:
        assert session.scalars(select(LogUpload)).all() == []
    assert "Files up to 1 MB" in client.get(SETTINGS).get_data(as_text=True)


def test_a_deleted_sites_waiting_file_is_deleted(
    app: Flask, db: Database, owner_client: FlaskClient
) -> None:
    post_log(owner_client, b"".join(LINES))
    data_dir = app.extensions["tracker.settings"].data_dir
    [waiting] = list(upload_dir(data_dir).iterdir())
    with db.session() as session:
        session.delete(session.scalars(select(Site)).one())
    run_job(app)
    assert waiting.exists()  # written before its row is committed: only old files go
    hour_ago = time.time() - uploads.ORPHAN_SECONDS - 5
    os.utime(waiting, (hour_ago, hour_ago))
    run_job(app)
    assert list(upload_dir(data_dir).iterdir()) == []
