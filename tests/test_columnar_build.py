"""The columnar store's builder (tracker.columnar.build), on SQLite and PostgreSQL: which
days get parts and when, that parts hold exactly the database's rows, late events, month
parts, invalidation, retired files, the job and the command line. Clocks are fixed
(`now_ms`): a day closes a day and two hours after it ends."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import Text, cast, delete, insert, select, update

from tests.helpers import duckdb_settings_per_thread, store_events
from tracker.cli import cli
from tracker.columnar import build, engine, export
from tracker.columnar.build import ID_MARGIN, refresh
from tracker.columnar.engine import NO_EXTENSIONS
from tracker.columnar.export import part_goals
from tracker.columnar.invalidate import invalidate
from tracker.columnar.layout import (
    DAY_MS,
    MANIFEST,
    RETIRED_AFTER_S,
    Manifest,
    Part,
    read_manifest,
    site_dir,
)
from tracker.db import Database
from tracker.db.models import Event, Site, Visit
from tracker.goals import add_goal
from tracker.jobs import find_job
from tracker.reclassify import reclassify
from tracker.sites import find_site
from tracker.stats import parse_query, run, site_ref
from tracker.stats.compiler import PATH_ID, VISIT_COPIES, plan_for, raw_buckets
from tracker.stats.goals import goal_key, goals_of_site
from tracker.stats.metrics import parts_for
from tracker.stats.query import GoalSpec

SITE = "example.com"
BASE = f"https://{SITE}"
IP_A, IP_B, IP_C = "203.0.113.7", "203.0.113.20", "203.0.113.30"


def ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp() * 1000)


def day(moment: str) -> int:
    return ms(moment) // DAY_MS


# Two visits on 2026-03-02 (one with a click, one with engagement), none on 03-03, one
# with a custom event (props, revenue) on 03-04.
TRAFFIC = [
    {"url": f"{BASE}/?utm_source=news&utm_campaign=spring", "ip": IP_A, "title": "Home",
     "referrer": "https://mail.example.org/", "timestamp": "2026-03-02T09:00:00Z",
     "pageview_id": "a1"},
    {"url": f"{BASE}/pricing", "ip": IP_A, "title": 'Pricing, "best"\nfor 🎉 teams',
     "referrer": f"{BASE}/", "timestamp": "2026-03-02T09:01:00Z", "pageview_id": "a2"},
    {"type": "click", "url": f"{BASE}/pricing", "ip": IP_A, "name": "Buy",
     "target": "https://pay.example.net/checkout", "pageview_id": "a2",
     "timestamp": "2026-03-02T09:01:30Z"},
    # COPY's end-of-data marker as a whole value, and a CR LF: PostgreSQL's CSV quotes both.
    {"url": f"{BASE}/faq", "ip": IP_A, "title": "\\.", "timestamp": "2026-03-02T09:02:00Z",
     "pageview_id": "a3"},
    {"url": f"{BASE}/blog/post", "ip": IP_B, "referrer": "https://www.google.com/",
     "title": "Post\r\nfooter", "timestamp": "2026-03-02T23:50:00Z", "pageview_id": "b1"},
    {"type": "engagement", "url": f"{BASE}/blog/post", "ip": IP_B, "pageview_id": "b1",
     "engaged_ms": 12000, "scroll": 80, "timestamp": "2026-03-03T00:10:00Z"},
    {"url": f"{BASE}/blog/post", "ip": IP_C, "timestamp": "2026-03-04T08:00:00Z",
     "pageview_id": "c1"},
    {"type": "event", "url": f"{BASE}/blog/post", "ip": IP_C, "name": "Signup",
     "props": {"plan": "pro, annual", "é": "ü"}, "pageview_id": "c1",
     "revenue": {"amount": "42.50", "currency": "EUR"}, "timestamp": "2026-03-04T08:00:40Z"},
]  # fmt: skip


@pytest.fixture
def root(db: Database) -> Path:
    assert db.columnar_root is not None
    return db.columnar_root


def site_id(db: Database, domain: str = SITE) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(select(Site.id).where(Site.domain == domain)))


def manifest(root: Path, db: Database) -> Manifest:
    found = read_manifest(root, site_id(db))
    assert found is not None
    return found


def spans(found: Manifest) -> list[tuple[int, int]]:
    return [(p.first_day, p.last_day) for p in found.parts]


def _as_text(table: Any) -> list[Any]:
    return [cast(c, Text).label(c.name) if c.name == "props" else c for c in table.c]


def database_rows(db: Database, first_day: int, last_day: int) -> tuple[list[dict], list[dict]]:
    """The visits that started on those days and their events, as the tables hold them
    (the site has no goals: no visit's goal bit is set)."""
    started = (Visit.started_ms >= first_day * DAY_MS) & (
        Visit.started_ms < (last_day + 1) * DAY_MS
    )
    with db.engine.connect() as conn:
        visits = conn.execute(
            select(*_as_text(Visit.__table__)).where(started).order_by(Visit.id)
        ).all()
        # Each event carries copies of its visit's columns (compiler.VISIT_COPIES).
        copies = [Visit.__table__.c[n].label(f"visit_{n}") for n in VISIT_COPIES]
        events = conn.execute(
            select(*_as_text(Event.__table__), *copies)
            .join(Visit, Visit.id == Event.visit_id)
            .where(started)
            .order_by(Event.id)
        ).all()
    visits_of = Counter(r.visitor_id for r in visits)
    visit_rows = [
        {**r._mapping, "goals": 0, "visitor_revisits": visits_of[r.visitor_id] > 1} for r in visits
    ]
    event_rows = [{**r._mapping, "visit_goals": 0} for r in events]
    return visit_rows, with_flags(visit_rows, event_rows)


def with_flags(visits: list[dict], events: list[dict]) -> list[dict]:
    """The events (by id) with the flags a part adds (compiler.STORED_FLAGS): a pageview
    the first of its path in its visit; its visit's visitor with other visits (as `visits`
    are flagged); a pageview the first of its path among its visitor's on its visit's UTC
    day; a pageview of a path its visitor viewed in another of its visits."""
    revisits = {v["id"]: v["visitor_revisits"] for v in visits}
    viewed_in: dict[tuple[int, str], set[int]] = {}
    for event in events:
        if event["kind"] == "pageview":
            pair = (event["visit_visitor_id"], event["path"])
            viewed_in.setdefault(pair, set()).add(event["visit_id"])
    seen: set[tuple[int, str | None]] = set()
    seen_that_day: set[tuple[int, int, str | None]] = set()
    flagged = {}
    for event in sorted(events, key=lambda e: (e["visit_started_ms"], e["visit_id"], e["id"])):
        viewed = event["kind"] == "pageview"
        key = (event["visit_id"], event["path"])
        day_key = (event["visit_started_ms"] // DAY_MS, event["visit_visitor_id"], event["path"])
        flagged[event["id"]] = {
            **event,
            "first_of_path": viewed and key not in seen,
            "visitor_revisits": revisits[event["visit_id"]],
            "visitor_first_of_path": viewed and day_key not in seen_that_day,
            "visitor_repeats_path": viewed
            and len(viewed_in[(event["visit_visitor_id"], event["path"])]) > 1,
        }
        if viewed:
            seen.add(key)
            seen_that_day.add(day_key)
    return [flagged[e["id"]] for e in events]


def part_rows(root: Path, db: Database, part: Part) -> tuple[list[dict], list[dict]]:
    """The part's rows by id; each event's path number checked against the site's path
    dictionary (compiler.PATH_ID) and left out."""
    directory = site_dir(root, site_id(db))
    visits = sorted(pq.read_table(directory / part.visits).to_pylist(), key=lambda r: r["id"])
    events = sorted(pq.read_table(directory / part.events).to_pylist(), key=lambda r: r["id"])
    paths = dictionary(root, db)
    for event in events:
        number = event.pop(PATH_ID)
        assert (None if number is None else paths[number]) == event["path"]
    return visits, events


def dictionary(root: Path, db: Database) -> list[str]:
    """The site's path dictionary as its manifest names it, checked numbered by row."""
    name = manifest(root, db).paths
    rows = pq.read_table(site_dir(root, site_id(db)) / name).to_pylist()
    assert [r[PATH_ID] for r in rows] == list(range(len(rows)))
    return [r["path"] for r in rows]


def parquet_files(root: Path, db: Database) -> set[str]:
    return {p.name for p in site_dir(root, site_id(db)).glob("*.parquet")}


def test_closed_days_get_parts_holding_the_rows_as_stored(
    app: Flask, db: Database, root: Path
) -> None:
    store_events(app, TRAFFIC, site=SITE)
    # 03-04 closes at 03-06 02:00: at 01:00 only 03-02 and 03-03 (no visits) are closed.
    assert refresh(db, root, now_ms=ms("2026-03-06T01:00:00")) == 1
    found = manifest(root, db)
    assert spans(found) == [(day("2026-03-02"), day("2026-03-02"))]
    assert found.complete_until_ms == ms("2026-03-04T00:00:00")
    visits, events = part_rows(root, db, found.parts[0])
    assert (visits, events) == database_rows(db, day("2026-03-02"), day("2026-03-02"))
    assert len(visits) == 2 and len(events) == 5
    assert {"\\.", "Post\r\nfooter"} <= {e["title"] for e in events}
    engaged = next(e for e in events if e["pageview_id"] == "b1")
    assert (engaged["engaged_ms"], engaged["scroll"], engaged["time_on_page_ms"]) == (
        12000,
        80,
        12000,
    )
    click = next(e for e in events if e["kind"] == "click")
    assert click["props"] is None and click["engaged_ms"] is None
    assert click["revenue_minor"] is None
    assert found.event_id == max(e["id"] for e in events) + 2  # 03-04's two are accounted for

    assert refresh(db, root, now_ms=ms("2026-03-06T02:00:00")) == 1
    found = manifest(root, db)
    assert spans(found)[-1] == (day("2026-03-04"), day("2026-03-04"))
    assert found.complete_until_ms == ms("2026-03-05T00:00:00")
    visits, events = part_rows(root, db, found.parts[-1])
    assert (visits, events) == database_rows(db, day("2026-03-04"), day("2026-03-04"))
    signup = next(e for e in events if e["kind"] == "event")
    assert signup["props"] == '{"plan": "pro, annual", "\\u00e9": "\\u00fc"}'
    assert (signup["revenue_minor"], signup["revenue_currency"]) == (4250, "EUR")


# The site's goals when the parts are built: each visit keeps the ones it converts on as
# bits, in this order ("Pro" matches no event: the plan is "pro, annual").
BUILT_GOALS: dict[str, dict[str, str]] = {
    "Pricing": {"kind": "page", "pattern": "/pricing"},
    "Blog": {"kind": "page", "pattern": "/blog/*"},
    "Pro": {"kind": "event", "event_name": "Signup", "prop_key": "plan", "prop_value": "pro"},
    "Checkout": {"kind": "click", "pattern": "https://pay.example.net/*"},
    "Signup": {"kind": "event", "event_name": "Signup"},
}


def test_visits_keep_their_goals_as_bits(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    with db.session() as session:
        owner = session.get(Site, site_id(db))
        assert owner is not None
        for name, fields in BUILT_GOALS.items():
            add_goal(session, owner, name=name, **fields)
    with db.engine.connect() as conn:
        keys = tuple(goal_key(g) for g in goals_of_site(conn, site_id(db)))
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    found = []
    for part in manifest(root, db).parts:
        assert part.goals == keys
        visits, events = part_rows(root, db, part)
        found += [v["goals"] for v in visits]
        by_id = {v["id"]: v["goals"] for v in visits}
        assert all(e["visit_goals"] == by_id[e["visit_id"]] for e in events)
    # Visit by visit: Pricing and Checkout; Blog; Blog and Signup.
    assert found == [1 | 8, 2, 2 | 16]


def test_a_new_part_keeps_each_goal_at_its_bit() -> None:
    a, b, c, d = (goal_key(GoalSpec(i, f"G{i}", "page", pattern=f"/{i}")) for i in range(4))
    spec = {k: GoalSpec(i, f"G{i}", "page", pattern=f"/{i}") for i, k in enumerate((a, b, c, d))}
    assert part_goals((), [spec[a], spec[b]]) == (a, b)
    # A deleted goal leaves its bit empty; a new one comes after; none trails empty.
    assert part_goals((a, b), [spec[b], spec[c]]) == ("", b, c)
    assert part_goals((a, b, c), [spec[a]]) == (a,)
    assert part_goals(("", b), [spec[c], spec[b]]) == ("", b, c)


def test_past_the_bits_a_part_has_empty_places_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "MAX_STORED_GOALS", 3)
    a, b, c, d = (GoalSpec(i, f"G{i}", "page", pattern=f"/{i}") for i in range(4))
    ka, kb, kc, kd = map(goal_key, (a, b, c, d))
    assert part_goals((ka, kb, kc), [a, c, d]) == (ka, kc, kd)
    assert part_goals((ka, kb, kc), [a, b, c, d]) == (ka, kb, kc)


def test_parquet_types_are_what_queries_need(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    part = manifest(root, db).parts[0]
    directory = site_dir(root, site_id(db))
    visits = pq.read_schema(directory / part.visits)
    events = pq.read_schema(directory / part.events)
    for name in ("id", "site_id", "visitor_id", "started_ms", "last_ms", "duration_ms"):
        assert visits.field(name).type == pa.int64(), name
    assert visits.field("pageviews").type == pa.int32()
    assert visits.field("is_bounce").type == pa.bool_()
    assert visits.field("source").type == pa.string()
    for name in ("id", "visit_id", "visitor_id", "timestamp_ms", "engaged_ms", "revenue_minor"):
        assert events.field(name).type == pa.int64(), name
    assert events.field("scroll").type == pa.int32()
    assert events.field("props").type == pa.string()
    assert events.field("pageview_id").type == pa.string()
    assert pq.ParquetFile(directory / part.events).metadata.row_group(0).column(0).compression == (
        "ZSTD"
    )
    # Written by DuckDB (smaller files, which it reads faster), in the rows' order: a visit's
    # events together, in their visits' order (compiler.visit_ordered_buckets).
    assert "DuckDB" in pq.ParquetFile(directory / part.events).metadata.created_by
    rows = pq.read_table(directory / part.events).to_pylist()
    keys = [(r["visit_started_ms"], r["visit_id"], r["id"]) for r in rows]
    assert keys == sorted(keys) and len(keys) > 1


def test_nothing_changed_nothing_written(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    now = ms("2026-03-06T03:00:00")
    refresh(db, root, now_ms=now)
    path = site_dir(root, site_id(db)) / MANIFEST
    before = path.stat()
    files = parquet_files(root, db)
    assert refresh(db, root, now_ms=now + 60_000) == 0
    assert refresh(db, root, now_ms=now + 3_600_000) == 0  # no day closed since
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert parquet_files(root, db) == files


@pytest.mark.parametrize("where", ["manifest", "part"])
def test_a_manifest_with_fields_this_version_does_not_know_is_built_again(
    app: Flask, db: Database, root: Path, where: str
) -> None:
    """Written by a newer release, then read by this one (a downgrade): no store, so the
    builder writes every part again, rather than every report and build failing."""
    store_events(app, TRAFFIC, site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    path = site_dir(root, site_id(db)) / MANIFEST
    data = json.loads(path.read_text())
    if where == "manifest":
        data["from_the_future"] = 1
    else:
        data["parts"][0]["from_the_future"] = 1
    path.write_text(json.dumps(data))
    assert read_manifest(root, site_id(db)) is None
    assert refresh(db, root, now_ms=ms("2026-03-06T03:00:00")) == 1
    assert manifest(root, db).parts


def test_days_without_visits_move_complete_until_only(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    parts = manifest(root, db).parts
    assert refresh(db, root, now_ms=ms("2026-03-09T03:00:00")) == 1
    found = manifest(root, db)
    assert found.parts == parts  # 03-05..03-07 have no visits: no part, nothing rewritten
    assert found.complete_until_ms == ms("2026-03-08T00:00:00")


def test_a_site_without_visits_is_complete_with_no_parts(
    app: Flask, db: Database, root: Path
) -> None:
    store_events(app, TRAFFIC[:1], site=SITE)
    store_events(app, [{"timestamp": "2026-03-02T10:00:00Z"}], site="quiet.example")
    with db.engine.begin() as conn:
        quiet = site_id(db, "quiet.example")
        conn.execute(delete(Event).where(Event.site_id == quiet))
        conn.execute(delete(Visit).where(Visit.site_id == quiet))
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    found = read_manifest(root, quiet)
    assert found is not None
    assert (found.parts, found.complete_until_ms) == ((), ms("2026-03-05T00:00:00"))


def test_a_late_event_rewrites_its_days_part(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    now = ms("2026-03-06T03:00:00")
    refresh(db, root, now_ms=now)
    first, later = manifest(root, db).parts
    late = {"url": f"{BASE}/late", "ip": "203.0.113.99", "timestamp": "2026-03-02T15:00:00Z"}
    store_events(app, [late], site=SITE)

    assert refresh(db, root, now_ms=now + 60_000) == 1
    found = manifest(root, db)
    rewritten, kept = found.parts
    assert kept == later  # 03-04 untouched
    assert rewritten.visits != first.visits
    assert part_rows(root, db, rewritten) == database_rows(db, first.first_day, first.last_day)
    assert "/late" in {v["entry_page"] for v in part_rows(root, db, rewritten)[0]}
    assert refresh(db, root, now_ms=now + 120_000) == 0  # noticed once


def test_an_event_committed_late_under_the_watermark_is_noticed(
    app: Flask, db: Database, root: Path
) -> None:
    """PostgreSQL commits ids out of order: an event may appear below `event_id`."""
    store_events(app, TRAFFIC, site=SITE)
    with db.engine.begin() as conn:
        click = conn.execute(select(Event.__table__).where(Event.kind == "click")).one()
        conn.execute(delete(Event).where(Event.id == click.id))  # not committed yet
    now = ms("2026-03-06T03:00:00")
    refresh(db, root, now_ms=now)
    assert manifest(root, db).event_id > click.id > manifest(root, db).event_id - ID_MARGIN
    with db.engine.begin() as conn:
        conn.execute(insert(Event.__table__).values(**click._mapping))  # committed now

    assert refresh(db, root, now_ms=now + 60_000) == 1
    part = manifest(root, db).parts[0]
    assert click.id in {e["id"] for e in part_rows(root, db, part)[1]}
    assert refresh(db, root, now_ms=now + 120_000) == 0


def month_traffic(*days: str, domain: str = SITE) -> list[dict[str, Any]]:
    """A one-page visit at noon of each day."""
    return [{"url": f"https://{domain}/{d}", "timestamp": f"{d}T12:00:00Z"} for d in days]


def test_closed_months_become_one_part(app: Flask, db: Database, root: Path) -> None:
    store_events(
        app, month_traffic("2025-11-20", "2026-01-30", "2026-02-01", "2026-02-10"), site=SITE
    )
    refresh(db, root, now_ms=ms("2026-02-12T03:00:00"))
    assert spans(manifest(root, db)) == [
        (day("2025-11-01"), day("2025-11-30")),
        (day("2026-01-01"), day("2026-01-31")),
        (day("2026-02-01"), day("2026-02-01")),
        (day("2026-02-10"), day("2026-02-10")),
    ]
    store_events(app, month_traffic("2026-02-28", "2026-03-01"), site=SITE)
    refresh(db, root, now_ms=ms("2026-03-03T03:00:00"))  # February closed as a whole
    found = manifest(root, db)
    assert spans(found)[1:] == [
        (day("2026-01-01"), day("2026-01-31")),
        (day("2026-02-01"), day("2026-02-28")),
        (day("2026-03-01"), day("2026-03-01")),
    ]
    february = found.parts[2]
    assert part_rows(root, db, february) == database_rows(db, february.first_day, february.last_day)
    assert len(part_rows(root, db, february)[0]) == 3

    store_events(app, month_traffic("2026-01-15"), site=SITE)
    refresh(db, root, now_ms=ms("2026-03-03T03:01:00"))
    january = manifest(root, db).parts[1]
    assert (january.first_day, january.last_day) == (day("2026-01-01"), day("2026-01-31"))
    assert len(part_rows(root, db, january)[0]) == 2  # a late event rewrites its month

    store_events(app, month_traffic("2026-02-11"), site=SITE)
    refresh(db, root, now_ms=ms("2026-02-20T00:00:00"))  # a clock set back
    found = manifest(root, db)
    assert spans(found)[2] == (day("2026-02-01"), day("2026-02-28"))
    assert len(part_rows(root, db, found.parts[2])[0]) == 4
    assert found.complete_until_ms == ms("2026-03-02T00:00:00")


def test_reclassify_invalidates_from_the_first_changed_visit(
    app: Flask, db: Database, root: Path
) -> None:
    store_events(app, TRAFFIC, site=SITE)
    now = ms("2026-03-06T03:00:00")
    refresh(db, root, now_ms=now)
    with db.engine.begin() as conn:
        conn.execute(update(Visit).where(Visit.utm_source == "news").values(source="Stale"))
    refresh(db, root, now_ms=now + 60_000)  # no event id tells of that
    with db.session() as session:
        site = session.scalars(select(Site).where(Site.domain == SITE)).one()
        ref = site_ref(site)
    old = manifest(root, db)

    reclassify(db, ref, 0, now)
    found = manifest(root, db)
    assert (found.parts, found.complete_until_ms) == ((), ms("2026-03-02T00:00:00"))
    old_files = {n for p in old.parts for n in (p.visits, p.events)}
    assert old_files <= parquet_files(root, db)  # readers of the old manifest may go on

    refresh(db, root, now_ms=now + 120_000)
    visits, _ = part_rows(root, db, manifest(root, db).parts[0])
    assert "Stale" not in {v["source"] for v in visits}


def test_invalidate_keeps_the_parts_before(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    first, _ = manifest(root, db).parts
    invalidate(root, site_id(db), ms("2026-03-04T08:00:00"))
    found = manifest(root, db)
    assert (found.parts, found.complete_until_ms) == ((first,), ms("2026-03-04T00:00:00"))


def test_a_build_that_read_before_an_invalidation_is_not_published(
    app: Flask, db: Database, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_events(app, TRAFFIC, site=SITE)
    write_part = build.write_part

    def reclassified_meanwhile(*args: Any, **kwargs: Any) -> Part | None:
        part = write_part(*args, **kwargs)
        invalidate(root, site_id(db))
        return part

    monkeypatch.setattr(build, "write_part", reclassified_meanwhile)
    assert refresh(db, root, now_ms=ms("2026-03-06T03:00:00")) == 0
    assert manifest(root, db).complete_until_ms == 0
    assert parquet_files(root, db) == set()  # the unpublished files are gone


def cli_env(database_url: str, root: Path) -> dict[str, str | None]:
    return {
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_DATA_DIR": str(root.parent),
        "TRACKER_CONFIG": None,
    }


def run_cli(env: dict[str, str | None], *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=env, prog_name="tracker")
    assert result.exit_code == 0, result.output
    return result.output


def test_deleting_a_site_deletes_its_store(
    app: Flask, db: Database, root: Path, database_url: str
) -> None:
    store_events(app, TRAFFIC, site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    directory = site_dir(root, site_id(db))
    assert directory.is_dir()
    run_cli(cli_env(database_url, root), "sites", "delete", SITE, "--yes")
    assert not directory.exists()


def test_stores_of_unknown_sites_are_removed(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    stray = site_dir(root, 9999)
    stray.mkdir(parents=True)
    (stray / MANIFEST).write_text("{}")
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    assert not stray.exists()
    assert site_dir(root, site_id(db)).is_dir()


def test_retired_files_are_deleted_after_the_delay(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    now = ms("2026-03-06T03:00:00")
    refresh(db, root, now_ms=now)
    before = manifest(root, db)
    old = {before.parts[0].visits, before.parts[0].events, before.paths}
    numbered = dictionary(root, db)
    # A late event of a new path: its part and the path dictionary are written again.
    late = {"url": f"{BASE}/late", "ip": "203.0.113.99", "timestamp": "2026-03-02T15:00:00Z"}
    store_events(app, [late], site=SITE)
    retired_at = now + 60_000
    refresh(db, root, now_ms=retired_at)
    assert manifest(root, db).paths != before.paths
    assert old <= parquet_files(root, db)
    refresh(db, root, now_ms=retired_at + (RETIRED_AFTER_S - 1) * 1000)
    assert old <= parquet_files(root, db)
    refresh(db, root, now_ms=retired_at + (RETIRED_AFTER_S + 1) * 1000)
    assert not old & parquet_files(root, db)
    after = manifest(root, db)
    named = {n for p in after.parts for n in (p.visits, p.events)}
    assert parquet_files(root, db) == named | {after.paths}
    # The paths numbered before keep their numbers; the new one comes after them.
    assert dictionary(root, db) == [*numbered, "/late"]


def test_a_budget_spreads_a_first_build_over_runs(app: Flask, db: Database, root: Path) -> None:
    store_events(app, month_traffic("2026-01-10", "2026-02-10", "2026-03-02"), site=SITE)
    now = ms("2026-03-06T03:00:00")
    until = []
    for minute in range(4):
        refresh(db, root, now_ms=now + minute * 60_000, budget_s=0)
        until.append(manifest(root, db).complete_until_ms)
    assert until == [
        ms("2026-02-01T00:00:00"),
        ms("2026-03-01T00:00:00"),
        ms("2026-03-03T00:00:00"),
        ms("2026-03-05T00:00:00"),
    ]


def test_the_job_builds_every_site(app: Flask, db: Database, root: Path) -> None:
    store_events(app, TRAFFIC, site=SITE)
    store_events(app, month_traffic("2026-03-02", domain="other.example"), site="other.example")
    find_job("columnar_store").func(db, app.extensions["tracker.settings"])
    for domain in (SITE, "other.example"):
        found = read_manifest(root, site_id(db, domain))
        assert found is not None and found.parts


def test_rebuild_and_status_from_the_command_line(
    app: Flask, db: Database, root: Path, database_url: str
) -> None:
    store_events(app, TRAFFIC, site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    before = manifest(root, db)
    env = cli_env(database_url, root)

    out = run_cli(env, "columnar", "rebuild", "--site", SITE)
    found = manifest(root, db)
    assert f"{SITE}: 1 parts, complete until" in out
    assert spans(found) == [(day("2026-03-01"), day("2026-03-31"))]  # March is closed now
    assert part_rows(root, db, found.parts[0]) == database_rows(
        db, day("2026-03-01"), day("2026-03-31")
    )
    old_files = {n for p in before.parts for n in (p.visits, p.events)}
    assert old_files <= parquet_files(root, db)  # retired, deleted after the delay

    status = run_cli(env, "columnar", "status")
    line = next(row for row in status.splitlines() if row.startswith(SITE))
    assert "1 (1 months)" in line and "2026-03-01..2026-03-31" in line
    assert line.split()[-4:-2] == ["3", "7"]  # visits, events (engagement is no row)
    assert line.endswith(" kB")


REPORTS = [
    {"metrics": "visitors,visits,pageviews,bounce_rate,visit_duration,time_on_page,events"},
    {"metrics": "visitors,visits,bounce_rate", "dimension": "visit:source"},
    {"metrics": "visitors,pageviews,time_on_page", "dimension": "event:page", "source": "!Google"},
    {"metrics": "visitors,events", "dimension": "event:name,event:props"},
    {"metrics": "visitors,pageviews", "dimension": "time:day", "page": "/blog*"},
]


def test_reports_read_from_the_parts_equal_the_databases(
    app: Flask, db: Database, root: Path
) -> None:
    """The read side (tracker.columnar.engine) over the parts this builder wrote: a month
    part, day parts and the days after them read from the database."""
    store_events(app, TRAFFIC + month_traffic("2026-02-10", "2026-02-20"), site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    assert spans(manifest(root, db))[0] == (day("2026-02-01"), day("2026-02-28"))
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
    period = {"period": "custom", "from": "2026-02-01", "to": "2026-03-05"}
    for args in REPORTS:
        q = parse_query(site, {**period, **args}, now=datetime(2026, 3, 6, 3, tzinfo=UTC))
        stored, raw = run(db, q), run(db, q, rollups=False)
        assert stored.meta["source"] == "columnar+live", args
        assert stored.rows == raw.rows, args
        assert stored.rows, args


def test_a_migration_invalidates_every_store(
    app: Flask,
    db: Database,
    root: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_events(app, TRAFFIC, site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    before = manifest(root, db)
    env = cli_env(database_url, root)
    run_cli(env, "migrate")  # already at the latest revision: nothing ran
    assert manifest(root, db) == before

    monkeypatch.setattr("tracker.cli.server.upgrade", lambda url: True)
    run_cli(env, "migrate")
    found = manifest(root, db)
    assert (found.parts, found.complete_until_ms) == ((), 0)
    refresh(db, root, now_ms=ms("2026-03-06T03:01:00"))
    assert spans(manifest(root, db)) == spans(before)


def test_the_parts_writer_is_one_duckdb_per_thread_that_fetches_nothing() -> None:
    names = [*NO_EXTENSIONS, "threads", "preserve_insertion_order"]
    rows = duckdb_settings_per_thread(export._writer, names)
    assert rows == [(False, False, False, 1, True)] * 2


def test_visits_are_flagged_in_their_order(tmp_path: Path) -> None:
    """The visits file written again with its flag keeps its rows' order (row groups hold
    runs of time) across DuckDB's chunks, and flags the visits of visitors with other
    visits in the part."""
    returning, count = 27_000, 30_000  # 9,000 visitors come three times, 3,000 once
    visitors = [i % 9_000 if i < returning else i for i in range(count)]
    table = pa.table(
        {
            "id": pa.array(range(count, 0, -1), pa.int64()),
            "visitor_id": pa.array(visitors, pa.int64()),
            "started_ms": pa.array([i * 1_000 for i in range(count)], pa.int64()),
        }
    )
    streamed, flagged = tmp_path / "streamed.parquet", tmp_path / "visits.parquet"
    pq.write_table(table, streamed, row_group_size=4_096)
    export._flagged(streamed, flagged, export.dictionary_limit(table))

    rows = pq.read_table(flagged).to_pylist()
    assert [r["id"] for r in rows] == list(range(count, 0, -1))
    assert [r["visitor_revisits"] for r in rows] == [i < returning for i in range(count)]


@pytest.mark.parametrize(("paths", "texts_fit"), [(40, True), (400, False)])
def test_texts_in_a_dictionary_ids_delta_encoded_where_texts_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paths: int, texts_fit: bool
) -> None:
    """Columns are dictionary-encoded up to SMALL_DICTIONARY values where every text of the
    first row group has no more, or more than half its rows (an id): the visit ids (334 in
    a group) then delta-encoded; where a text has more (a site of many pages), every
    column up to the group's rows, the paths kept in a dictionary."""
    monkeypatch.setattr(export, "SMALL_DICTIONARY", 100)
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 1_000)
    count = 3_000
    table = pa.table(
        {
            "visit_id": pa.array([i // 3 for i in range(count)], pa.int64()),
            "path": pa.array([f"/p/{i % paths}" for i in range(count)], pa.string()),
            "pageview_id": pa.array([f"pv-{i}" for i in range(count)], pa.string()),
            "kind": pa.array(["pageview"] * count, pa.string()),
        }
    )
    limit = export.dictionary_limit(table.slice(0, 1_000))
    assert limit == (100 if texts_fit else 1_000)
    written = tmp_path / "events.parquet"
    export._write_parquet(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()),
                          written, limit)  # fmt: skip
    group = pq.ParquetFile(written).metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(4)}
    assert ("DELTA_BINARY_PACKED" in encodings["visit_id"]) == texts_fit, encodings
    assert "RLE_DICTIONARY" in encodings["path"] and "RLE_DICTIONARY" in encodings["kind"]
    assert pq.read_table(written).equals(table)


RUN_VISITS = [
    # Three visits of 2026-03-02 from three visitors: the scan starts with a run of two
    # matching pageviews and ends with another, after a pageview that does not match.
    ("198.51.100.7", "09:00", ["/pricing", "/plans", "/"]),
    ("198.51.100.8", "10:00", ["/plans"]),
    ("198.51.100.9", "11:00", ["/", "/pricing", "/plans"]),
]


def test_visit_reports_under_a_page_filter_count_each_visits_run_of_pageviews(
    app: Flask, db: Database, root: Path
) -> None:
    """Under a page filter, a visit report counts a visit's matching pageviews as the
    length of its run of matching rows in the scan (compiler._visit_runs), the first run
    starting with the scan: the same numbers as the database's. So does a series of
    visitors and pageviews, in UTC (returning visitors grouped by id alone)."""
    hits = [
        {"url": f"{BASE}{path}", "ip": ip, "timestamp": f"2026-03-02T{start}:{i:02d}Z"}
        for ip, start, paths in RUN_VISITS
        for i, path in enumerate(paths)
    ]
    store_events(app, hits, site=SITE)
    refresh(db, root, now_ms=ms("2026-03-06T03:00:00"))
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
    period = {"period": "custom", "from": "2026-03-02", "to": "2026-03-02"}
    metrics = "visitors,visits,pageviews,bounce_rate,visit_duration"
    for args in (
        {"metrics": metrics, "page": "~p"},
        {"metrics": metrics, "page": "!/", "dimension": "time:day"},
        {"metrics": metrics, "page": "/plans", "dimension": "visit:source"},
        {"metrics": "visitors,pageviews", "page": "!/", "dimension": "time:day"},
        {"metrics": "visitors,pageviews", "page": "~p", "dimension": "time:hour"},
    ):
        q = parse_query(site, {**period, **args}, now=datetime(2026, 3, 6, 3, tzinfo=UTC))
        sql = engine.compiled(
            raw_buckets(q, plan_for(q, parts_for(q.metrics)), [(0, 1)], direct=True), "sqlite"
        )[0]
        assert "row_number() OVER ()" in sql, args
        stored, raw = run(db, q), run(db, q, rollups=False)
        assert stored.meta["source"].startswith("columnar"), args
        assert stored.rows == raw.rows, args
    q = parse_query(
        site, {**period, "metrics": metrics, "page": "~p"}, now=datetime(2026, 3, 6, 3, tzinfo=UTC)
    )
    assert [(r["visits"], r["pageviews"]) for r in run(db, q).rows] == [(3, 5)]
