"""Pages while the database is unavailable (503, not 500), and the statement timeout of
web reads on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from tracker.app import create_app
from tracker.columnar.engine import StoreLimit
from tracker.config import Settings

DOWN_URL = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # nothing listens there


def app_on(tmp_path: Path, database_url: str, **settings: object) -> Flask:
    app = create_app(
        Settings(
            data_dir=str(tmp_path / "data"),
            database_url=database_url,
            secret_key="operations-test",
            scheduler_enabled=False,
            **settings,  # type: ignore[arg-type]
        )
    )
    app.config["TESTING"] = True
    return app


def test_pages_say_the_database_is_unavailable_with_a_503(tmp_path: Path) -> None:
    client = app_on(tmp_path, DOWN_URL).test_client()
    for path in ("/", "/login", "/sites/example.com", "/share/some-token"):
        response = client.get(path)
        assert response.status_code == 503, path  # was 500
        assert response.headers["Retry-After"] == "30"
        page = response.get_data(as_text=True)
        assert "Database unavailable" in page and "try again in a moment" in page
        assert "nobody" not in page  # no internals
    api = client.get(
        "/api/v1/stats/aggregate?site_id=example.com", headers={"Authorization": "Bearer trk_x"}
    )
    assert api.status_code == 503
    assert api.get_json() == {
        "error": "The database is unavailable right now; try again in a moment."
    }


@pytest.fixture
def pg_app(tmp_path: Path, postgres_url: str) -> Iterator[Flask]:
    app = app_on(tmp_path, postgres_url, query_timeout_seconds=1)
    app.config["WTF_CSRF_ENABLED"] = False  # the test routes are not forms

    @app.route("/test/sleep", methods=["GET", "POST"])
    def sleep() -> str:  # a report that takes too long
        with app.extensions["tracker.db"].session() as session:
            session.execute(text("SELECT pg_sleep(3)"))
        return "done"

    @app.route("/test/timeout", methods=["GET", "POST"])
    def timeout() -> str:
        with app.extensions["tracker.db"].session() as session:
            return str(session.scalar(text("SHOW statement_timeout")))

    yield app
    app.extensions["tracker.db"].dispose()


@pytest.mark.postgres
def test_web_reads_have_a_statement_timeout_on_postgresql(pg_app: Flask) -> None:
    client = pg_app.test_client()
    response = client.get("/test/sleep")
    assert response.status_code == 503
    assert "This took longer than 1 seconds and was stopped" in response.get_data(as_text=True)
    assert client.get("/test/timeout").get_data(as_text=True) == "1s"
    # Writes are not limited, nor is anything outside a request; pooled connections come
    # back without the setting.
    assert client.post("/test/sleep").get_data(as_text=True) == "done"
    assert client.post("/test/timeout").get_data(as_text=True) == "0"
    with pg_app.extensions["tracker.db"].session() as session:
        assert session.scalar(text("SHOW statement_timeout")) == "0"
        session.execute(text("SELECT pg_sleep(1.5)"))


def test_a_report_the_columnar_store_stopped_answers_503_saying_why(tmp_path: Path) -> None:
    """Past columnar_timeout_seconds or columnar_memory_limit (tracker.columnar.engine)."""
    app = app_on(tmp_path, f"sqlite:///{tmp_path / 'ok.db'}")
    said = "This report took longer than 10 seconds and was stopped; try a shorter period."

    @app.route("/api/v1/test/limit")
    @app.route("/test/limit")
    def limit() -> str:
        raise StoreLimit(said)

    client = app.test_client()
    api = client.get("/api/v1/test/limit")
    assert api.status_code == 503 and api.get_json() == {"error": said}
    page = client.get("/test/limit")
    text = page.get_data(as_text=True)
    assert page.status_code == 503 and said in text and "Report stopped" in text
