"""`tracker import events FILE.ndjson`: the same pipeline as the batch API, from a file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from tests.helpers import DEFAULT_IP, DEFAULT_USER_AGENT
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import DropCount, Event, Visit
from tracker.sites import add_site


def line(**fields: object) -> str:
    event = {
        "site": "example.com",
        "type": "pageview",
        "url": "https://example.com/",
        "timestamp": "2026-03-02T09:00:00Z",
        "ip": DEFAULT_IP,
        "user_agent": DEFAULT_USER_AGENT,
        **fields,
    }
    return json.dumps(event)


def test_import_events(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    with db.session() as session:
        add_site(session, "example.com")
    lines = [
        line(url="https://example.com/?utm_source=news", timestamp="2026-03-02T09:00:00Z"),
        line(url="https://example.com/pricing", timestamp="2026-03-02T09:02:00Z"),
        "",
        line(url="ftp://example.com/"),
        "{not json",
        line(site="unknown.org", url="https://unknown.org/"),
        json.dumps({"site": "example.com", "type": "pageview", "url": "https://example.com/"}),
        line(url="https://example.com/bot", user_agent="curl/8.4.0"),
        line(url="https://example.com/late", timestamp="2026-03-02T10:05:00+01:00"),
    ]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "d")}
    result = CliRunner().invoke(cli, ["import", "events", str(path)], env=env)
    assert result.exit_code == 1
    assert "Imported 3 events from events.ndjson (dropped: bot 1)." in result.stdout
    assert result.stderr.splitlines()[-5:] == [
        "Rejected 4 lines:",
        "  line 4: url: must be an http(s) URL",
        "  line 5: not valid JSON",
        "  line 6: site: 'unknown.org' is not a site registered here",
        "  line 7: timestamp: is required for imports",
    ]
    assert "Importing" in result.stderr  # the progress bar
    with db.session() as session:
        paths = [e.path for e in session.scalars(select(Event).order_by(Event.timestamp_ms))]
        visit = session.scalars(select(Visit)).one()
        drops = [(d.reason, d.count) for d in session.scalars(select(DropCount))]
    db.dispose()
    assert paths == ["/", "/pricing", "/late"]
    assert (visit.source, visit.pageviews, visit.exit_page) == ("news", 3, "/late")
    assert drops == [("bot", 1)]


def test_import_of_a_clean_file_exits_zero(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    with db.session() as session:
        add_site(session, "example.com")
    db.dispose()
    path = tmp_path / "ok.ndjson"
    path.write_text("\n".join(line(url=f"https://example.com/{i}") for i in range(1500)))
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "d")}
    result = CliRunner().invoke(cli, ["import", "events", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "Imported 1,500 events from ok.ndjson." in result.stdout
    # Stored before the command ends, through the spool it leaves empty behind it.
    assert list((tmp_path / "d" / "spool").iterdir()) == []
    db = Database(database_url)
    with db.session() as session:
        assert len(session.scalars(select(Event)).all()) == 1500
    db.dispose()


def test_import_of_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["import", "events", str(tmp_path / "nope.ndjson")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
