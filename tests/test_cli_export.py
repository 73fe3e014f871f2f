"""`tracker export events|visits`: the same CSV as the web export, to a file or stdout."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner, Result
from flask import Flask
from helpers import EXPORT_SITE, EXPORT_TITLE, store_export_fixture

from tracker.accounts import create_api_key, create_user
from tracker.cli import cli


def run(app: Flask, args: list[str], tmp_path: Path) -> Result:
    env = {
        "TRACKER_DATABASE_URL": app.extensions["tracker.db"].url,
        "TRACKER_DATA_DIR": str(tmp_path / "data"),
        "TRACKER_CONFIG": None,
    }
    return CliRunner().invoke(cli, args, env=env, prog_name="tracker")


def test_export_events_to_a_file_matches_the_web_export(app: Flask, tmp_path: Path) -> None:
    store_export_fixture(app)
    out = tmp_path / "march.csv"
    args = ["--site", EXPORT_SITE, "--from", "2026-03-02", "--to", "2026-03-03", "-o", str(out)]
    result = run(app, ["export", "events", *args], tmp_path)
    assert result.exit_code == 0, result.output
    assert f"Wrote 6 events rows to {out}." in result.output
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    kinds = ["pageview", "pageview", "click", "pageview", "pageview", "event"]
    assert [r["type"] for r in rows] == kinds
    assert rows[1]["title"] == EXPORT_TITLE
    client = app.test_client()
    with app.extensions["tracker.db"].session() as session:
        user = create_user(session, "cli@example.com", "long enough", is_admin=True)
        _, key = create_api_key(session, user)
    web = client.get(
        f"/sites/{EXPORT_SITE}/export/events.csv?from=2026-03-02&to=2026-03-03",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert out.read_bytes() == web.get_data()


def test_export_visits_to_stdout_with_a_filter(app: Flask, tmp_path: Path) -> None:
    store_export_fixture(app)
    args = ["--site", EXPORT_SITE, "--from", "2026-03-01", "--to", "2026-03-31"]
    result = run(app, ["export", "visits", *args, "--filter", "source=Google", "-o", "-"], tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("visit_id,started_utc,")
    assert len(lines) == 3  # the header and the two visits from Google
    assert "Wrote 2 visits rows to -." in result.stderr


def test_export_errors_are_one_line(app: Flask, tmp_path: Path) -> None:
    store_export_fixture(app)
    base = ["export", "events", "--from", "2026-03-01", "--to", "2026-03-31", "-o", "-"]
    unknown = run(app, [*base, "--site", "nope.example"], tmp_path)
    assert unknown.exit_code == 1 and "no site 'nope.example'" in unknown.stderr
    bad_filter = run(app, [*base, "--site", EXPORT_SITE, "--filter", "sauce=x"], tmp_path)
    assert bad_filter.exit_code == 1 and "--filter 'sauce=x'" in bad_filter.stderr
    dates = ["--from", "2026-13-01", "--to", "2026-03-31"]
    bad_date = run(app, ["export", "events", "--site", EXPORT_SITE, *dates], tmp_path)
    assert bad_date.exit_code == 1 and "from: '2026-13-01' is not a date" in bad_date.stderr
