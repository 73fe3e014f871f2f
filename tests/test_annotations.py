"""Chart annotations: validation, storage, markers on the chart (day, week, month and hour
buckets, in the site's time zone, several notes in one marker), the chart's CSV, the
settings section, the stats-page form, who may add and delete, the CLI and the API."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from tests.helpers import add_user, csrf_token, log_in, openapi_spec, store_events
from tracker.accounts import create_api_key
from tracker.annotations import (
    AnnotationError,
    add_annotation,
    clean_text,
    delete_annotation,
    list_annotations,
    parse_day,
)
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import Annotation, Site, User
from tracker.members import OWNER, add_member
from tracker.sites import add_site, create_share_link, find_site
from tracker.stats import Note, bucket_notes

SITE = "notes.example"
SCRIPT = "<script>alert('x')</script> & \"quotes\""
MARKER_RE = re.compile(
    r'<g class="note" data-x="([^"]+)" data-label="([^"]*)" data-notes=\'([^\']*)\'>'
    r".*?<title>([^<]*)</title></g>"
)
HIT_RE = re.compile(r'<rect class="hit" [^>]*data-x="([^"]+)" data-label="([^"]*)"')


# Validation


@pytest.mark.parametrize(
    ("value", "day"),
    [("2026-11-27", date(2026, 11, 27)), (" 2026-02-28 ", date(2026, 2, 28)),
     (date(2026, 1, 1), date(2026, 1, 1))],
)  # fmt: skip
def test_parse_day(value, day) -> None:
    assert parse_day(value) == day


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "The date is required (YYYY-MM-DD)."),
     (None, "The date is required (YYYY-MM-DD)."),
     ("27/11/2026", "The date must be written YYYY-MM-DD, e.g. 2026-11-27 (got '27/11/2026')."),
     ("20261127", "The date must be written YYYY-MM-DD, e.g. 2026-11-27 (got '20261127')."),
     ("2026-W48-5", "The date must be written YYYY-MM-DD, e.g. 2026-11-27 (got '2026-W48-5')."),
     ("2026-02-30", "The date must be written YYYY-MM-DD, e.g. 2026-11-27 (got '2026-02-30').")],
)  # fmt: skip
def test_bad_days_name_the_date_field(value, message) -> None:
    with pytest.raises(AnnotationError) as caught:
        parse_day(value)
    assert (caught.value.field, str(caught.value)) == ("date", message)


def test_text_is_trimmed_and_limited() -> None:
    assert clean_text("  Black Friday launch \n") == "Black Friday launch"
    assert clean_text("x" * 200) == "x" * 200
    assert clean_text("Budget doubled 💸") == "Budget doubled 💸"
    bad = {
        "": "The note's text is required.",
        "   ": "The note's text is required.",
        "x" * 201: "The note's text must be at most 200 characters (got 201).",
        " " + "y" * 205 + " ": "The note's text must be at most 200 characters (got 205).",
        "a\tb": "The note's text must not contain control characters (tabs, line breaks).",
        "a\nb": "The note's text must not contain control characters (tabs, line breaks).",
        "a\x00b": "The note's text must not contain control characters (tabs, line breaks).",
        "a\u2028b": "The note's text must not contain control characters (tabs, line breaks).",
    }
    for value, message in bad.items():
        with pytest.raises(AnnotationError) as caught:
            clean_text(value)
        assert (caught.value.field, str(caught.value)) == ("text", message), value


# Buckets (no database)


def _notes(*pairs: tuple[str, str]) -> list[Note]:
    return [Note(i, date.fromisoformat(day), text) for i, (day, text) in enumerate(pairs, 1)]


def _texts(buckets: list[list[Note]]) -> list[list[str]]:
    return [[note.text for note in bucket] for bucket in buckets]


def test_notes_go_to_the_bucket_holding_their_day() -> None:
    days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    notes = _notes(("2026-03-02", "a"), ("2026-03-02", "b"), ("2026-03-03", "c"))
    assert _texts(bucket_notes(days, notes)) == [[], ["a", "b"], ["c"]]
    weeks = ["2026-02-23", "2026-03-02", "2026-03-09"]  # Mondays
    notes = _notes(("2026-02-27", "fri"), ("2026-03-08", "sun"), ("2026-03-09", "mon"))
    assert _texts(bucket_notes(weeks, notes)) == [["fri"], ["sun"], ["mon"]]
    months = ["2026-01-01", "2026-02-01", "2026-03-01"]
    notes = _notes(("2026-01-31", "jan"), ("2026-02-01", "feb"), ("2026-03-31", "mar"))
    assert _texts(bucket_notes(months, notes)) == [["jan"], ["feb"], ["mar"]]
    # Hours of two days (an hourly series): the first hour of the note's day.
    hours = ["2026-03-01T00:00+13:00", "2026-03-01T01:00+13:00", "2026-03-02T00:00+13:00",
             "2026-03-02T01:00+13:00"]  # fmt: skip
    notes = _notes(("2026-03-02", "launch"), ("2026-03-01", "eve"))
    assert _texts(bucket_notes(hours, notes)) == [["eve"], [], ["launch"], []]
    # A note before the first bucket is not drawn anywhere.
    assert _texts(bucket_notes(days, _notes(("2026-02-28", "old")))) == [[], [], []]


# Storage (both databases)


@pytest.fixture
def site(db: Database) -> Site:
    with db.session() as session:
        return add_site(session, SITE, timezone="Pacific/Auckland")


def test_add_list_and_delete(db: Database, site: Site) -> None:
    with db.session() as session:
        other = add_site(session, "other.example")
        add_annotation(session, other, "2026-03-02", "not this site's")
        late = add_annotation(session, site, "2026-03-05", "  budget doubled ")
        early = add_annotation(session, site, date(2026, 3, 1), "launch")
        same_day = add_annotation(session, site, "2026-03-05", "second note")
    assert late.text == "budget doubled" and late.day == date(2026, 3, 5)
    assert [(n.day.isoformat(), n.text) for n in list_annotations(db, site)] == [
        ("2026-03-01", "launch"),
        ("2026-03-05", "budget doubled"),
        ("2026-03-05", "second note"),
    ]
    ranged = list_annotations(db, site, date(2026, 3, 2), date(2026, 3, 5))
    assert [n.id for n in ranged] == [late.id, same_day.id]
    assert list_annotations(db, site, date(2026, 3, 1), date(2026, 3, 1)) == [early]
    with db.session() as session:
        assert delete_annotation(session, other, late.id) is None  # another site's id
        assert delete_annotation(session, site, late.id) == late
        assert delete_annotation(session, site, late.id) is None
    assert [n.text for n in list_annotations(db, site)] == ["launch", "second note"]


def test_bad_input_stores_nothing(db: Database, site: Site) -> None:
    with pytest.raises(AnnotationError), db.session() as session:
        add_annotation(session, site, "2026-03-01", "x" * 201)
    with pytest.raises(AnnotationError), db.session() as session:
        add_annotation(session, site, "tomorrow", "ok")
    assert _count(db) == 0


def _count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Annotation)) or 0


# The chart on the stats page (both databases)


@pytest.fixture
def owner(db: Database, site: Site) -> User:
    user = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_member(session, site, user, OWNER)
    return user


@pytest.fixture
def owner_client(app: Flask, client: FlaskClient, owner: User) -> FlaskClient:
    # 09:00 in Auckland on 2 March (UTC+13): one pageview, so the page is not the empty state.
    store_events(app, [{"timestamp": "2026-03-01T20:00:00Z"}], site=SITE)
    log_in(client, owner)
    return client


def _add(db: Database, day: str, text: str) -> None:
    with db.session() as session:
        add_annotation(session, find_site(session, SITE), day, text)


def _page(client: FlaskClient, query: str, base: str = f"/sites/{SITE}") -> str:
    response = client.get(f"{base}?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def _markers(page: str) -> list[tuple[float, str, list[str], str]]:
    """(x %, bucket label, notes, <title>) of each marker on the chart."""
    return [
        (float(x), html.unescape(label), json.loads(notes), html.unescape(title))
        for x, label, notes, title in MARKER_RE.findall(page)
    ]


def _bucket_x(page: str, label: str) -> float:
    """Where the chart's hover column of the bucket `label` sits (x %)."""
    found = [float(x) for x, text in HIT_RE.findall(page) if html.unescape(text) == label]
    assert len(found) == 1, label
    return found[0]


def test_day_chart_markers_and_grouping(db: Database, owner_client: FlaskClient) -> None:
    _add(db, "2026-03-03", "Black Friday launch")
    _add(db, "2026-03-03", "budget doubled")
    _add(db, "2026-03-07", "last day")
    _add(db, "2026-03-08", "after the period")
    _add(db, "2026-02-28", "before the period")
    page = _page(owner_client, "period=custom&from=2026-03-01&to=2026-03-07")
    markers = _markers(page)
    assert markers == [
        (33.33, "Tue 3 Mar 2026", ["Black Friday launch", "budget doubled"],
         "Tue 3 Mar 2026: Black Friday launch; budget doubled"),
        (100.0, "Sat 7 Mar 2026", ["last day"], "Sat 7 Mar 2026: last day"),
    ]  # fmt: skip
    assert markers[0][0] == _bucket_x(page, "Tue 3 Mar 2026")  # 3rd of 7 days: 2/6
    assert markers[1][0] == _bucket_x(page, "Sat 7 Mar 2026")
    # The same notes as text under the chart, for screen readers and without hovering.
    assert re.findall(r'<ul class="notes"[^>]*>(.*?)</ul>', page) == [
        "<li>Tue 3 Mar 2026: Black Friday launch; budget doubled</li>"
        "<li>Sat 7 Mar 2026: last day</li>"
    ]
    assert 'aria-label="Visitors over time, with notes listed below"' in page
    # No notes: no marker, no list.
    empty = _page(owner_client, "period=custom&from=2026-03-09&to=2026-03-15")
    assert _markers(empty) == [] and 'class="notes"' not in empty


def test_week_month_and_hour_charts(db: Database, owner_client: FlaskClient) -> None:
    _add(db, "2026-03-04", "wednesday")
    _add(db, "2026-03-08", "sunday")  # the same week (Monday 2 March)
    _add(db, "2026-03-31", "end of March")
    _add(db, "2026-03-02", "the day of the hour chart")
    # 181 days: weekly buckets, from Monday 29 Dec 2025 to Monday 29 Jun 2026 (27).
    weeks = _page(owner_client, "period=custom&from=2026-01-01&to=2026-06-30")
    assert _markers(weeks) == [
        (34.62, "Week of Mon 2 Mar 2026", ["2 Mar: the day of the hour chart", "4 Mar: wednesday",
                                           "8 Mar: sunday"],
         "Week of Mon 2 Mar 2026: 2 Mar: the day of the hour chart; 4 Mar: wednesday; "
         "8 Mar: sunday"),
        (50.0, "Week of Mon 30 Mar 2026", ["31 Mar: end of March"],
         "Week of Mon 30 Mar 2026: 31 Mar: end of March"),
    ]  # fmt: skip
    assert _markers(weeks)[0][0] == _bucket_x(weeks, "Week of Mon 2 Mar 2026")  # 9/26
    # 546 days: monthly buckets, January 2025 to June 2026 (18); March 2026 is the 15th.
    months = _page(owner_client, "period=custom&from=2025-01-01&to=2026-06-30")
    (marker,) = _markers(months)
    assert marker[:2] == (82.35, "March 2026") and marker[0] == _bucket_x(months, "March 2026")
    assert marker[2] == ["2 Mar: the day of the hour chart", "4 Mar: wednesday", "8 Mar: sunday",
                         "31 Mar: end of March"]  # fmt: skip
    # One day: hours of Auckland's day (UTC+13); the note sits on its first hour, named by day.
    hours = _page(owner_client, "period=custom&from=2026-03-02&to=2026-03-02")
    assert _markers(hours) == [
        (0.0, "Mon 2 Mar 2026", ["the day of the hour chart"],
         "Mon 2 Mar 2026: the day of the hour chart"),
    ]  # fmt: skip
    assert _bucket_x(hours, "Mon 2 Mar, 00:00") == 0.0
    # The one pageview (20:00 UTC on 1 March) is 09:00 of that local day.
    assert 'data-label="Mon 2 Mar, 09:00" data-value="1"' in hours


def test_notes_are_escaped(db: Database, owner_client: FlaskClient) -> None:
    _add(db, "2026-03-03", SCRIPT)
    page = _page(owner_client, "period=custom&from=2026-03-01&to=2026-03-07")
    assert "<script>alert" not in page
    assert _markers(page)[0][2:] == ([SCRIPT], f"Tue 3 Mar 2026: {SCRIPT}")
    assert "\\u003cscript\\u003ealert(\\u0027x\\u0027)" in page  # data-notes: JSON, escaped
    assert "<li>Tue 3 Mar 2026: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; " in page
    settings = owner_client.get(f"/sites/{SITE}/settings").get_data(as_text=True)
    assert "<script>alert" not in settings
    assert "<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;quotes&#34;</td>" in (
        settings
    )


def test_chart_csv_has_the_notes_of_each_bucket(db: Database, owner_client: FlaskClient) -> None:
    _add(db, "2026-03-02", '=HYPERLINK("http://evil")')
    _add(db, "2026-03-02", "launch; day 1")
    _add(db, "2026-03-03", "budget doubled")
    response = owner_client.get(
        f"/sites/{SITE}/chart.csv?period=custom&from=2026-03-01&to=2026-03-03"
    )
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{SITE}-chart-2026-03-01-to-2026-03-03.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        ["time:day", "visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
         "visit_duration", "annotations"],
        ["2026-03-01", "0", "0", "0", "", "", "", ""],
        ["2026-03-02", "1", "1", "1", "1.0", "100.0", "0.0",
         "'=HYPERLINK(\"http://evil\"); launch; day 1"],
        ["2026-03-03", "0", "0", "0", "", "", "", "budget doubled"],
    ]  # fmt: skip
    weekly = owner_client.get(
        f"/sites/{SITE}/chart.csv?period=custom&from=2026-01-01&to=2026-06-30"
    )
    week_rows = list(csv.reader(io.StringIO(weekly.get_data(as_text=True))))
    assert week_rows[0][0] == "time:week" and len(week_rows) == 28
    noted = [(r[0], r[-1]) for r in week_rows[1:] if r[-1]]
    assert noted == [("2026-03-02", '\'=HYPERLINK("http://evil"); launch; day 1; budget doubled')]


# Adding and deleting on the web (both databases)


def test_add_from_the_chart_form_keeps_the_view(db: Database, owner_client: FlaskClient) -> None:
    view = "period=custom&from=2026-03-01&to=2026-03-07&compare=off"
    page = _page(owner_client, view)
    form = page[page.index('<details class="add-note">') :]
    today = datetime.now(ZoneInfo("Pacific/Auckland")).date().isoformat()
    assert f'<input type="date" name="date" value="{today}" required>' in form
    response = owner_client.post(
        f"/sites/{SITE}/annotations",
        data={"csrf_token": csrf_token(owner_client, f"/sites/{SITE}?{view}"),
              "date": "2026-03-04", "text": "  Newsletter sent  ", "back": view},
    )  # fmt: skip
    assert response.status_code == 302
    assert response.headers["Location"] == f"/sites/{SITE}?{view}"
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<p class="flash">Note added on 4 Mar 2026: Newsletter sent</p>' in page
    assert [m[2] for m in _markers(page)] == [["Newsletter sent"]]
    # Bad input: nothing stored, the page says why.
    response = owner_client.post(
        f"/sites/{SITE}/annotations",
        data={"csrf_token": csrf_token(owner_client, f"/sites/{SITE}?{view}"),
              "date": "2026-03-04", "text": "x" * 201, "back": view},
        follow_redirects=True,
    )  # fmt: skip
    assert (
        "The note was not added. The note&#39;s text must be at most 200 characters (got 201)."
        in response.get_data(as_text=True)
    )
    assert _count(db) == 1
    # Without the CSRF token: refused.
    response = owner_client.post(
        f"/sites/{SITE}/annotations", data={"date": "2026-03-05", "text": "no token"}
    )
    assert response.status_code == 400 and _count(db) == 1


def test_back_only_takes_parameters(owner_client: FlaskClient) -> None:
    token = csrf_token(owner_client, f"/sites/{SITE}/settings")
    response = owner_client.post(
        f"/sites/{SITE}/annotations",
        data={"csrf_token": token, "date": "2026-03-04", "text": "x",
              "back": "//evil.example/?period=7d"},
    )  # fmt: skip
    assert response.headers["Location"].startswith(f"/sites/{SITE}?")


def test_settings_section_lists_adds_and_deletes(db: Database, owner_client: FlaskClient) -> None:
    settings = f"/sites/{SITE}/settings"
    assert "No annotations yet." in _section(owner_client.get(settings).get_data(as_text=True))
    response = owner_client.post(
        f"/sites/{SITE}/annotations",
        data={"csrf_token": csrf_token(owner_client, settings), "date": "2026-03-04",
              "text": "Older", "back": "settings"},
    )  # fmt: skip
    assert response.headers["Location"] == f"{settings}#annotations"
    _add(db, "2026-03-09", "Newer")
    section = _section(owner_client.get(settings).get_data(as_text=True))
    assert re.findall(r'<td class="muted">([^<]+)</td>\s*<td>([^<]+)</td>', section) == [
        ("2026-03-09", "Newer"),
        ("2026-03-04", "Older"),
    ]
    ids = [int(i) for i in re.findall(r'id="annotation-(\d+)"', section)]
    delete = f"/sites/{SITE}/annotations/{ids[1]}/delete"
    assert owner_client.post(delete).status_code == 400  # no CSRF token
    response = owner_client.post(delete, data={"csrf_token": csrf_token(owner_client, settings)})
    assert response.headers["Location"] == f"{settings}#annotations"
    with db.session() as session:
        assert [n.text for n in list_annotations(db, find_site(session, SITE))] == ["Newer"]
    again = owner_client.post(delete, data={"csrf_token": csrf_token(owner_client, settings)})
    assert again.status_code == 404


def _section(page: str) -> str:
    return page.split('id="annotations"')[1].split("</section>")[0]


def test_viewers_see_markers_but_cannot_add_or_delete(
    app: Flask, db: Database, owner_client: FlaskClient
) -> None:
    _add(db, "2026-03-03", "launch")
    with db.session() as session:
        site = find_site(session, SITE)
        site.public = True
        token = create_share_link(session, site, "Agency").token
    note_id = list_annotations(db, find_site_by_domain(db))[0].id
    view = "period=custom&from=2026-03-01&to=2026-03-07"
    owner_page = _page(owner_client, view)
    assert 'id="add-note"' in owner_page and "Chart as CSV" in owner_page
    # A share link: the markers, read-only.
    anonymous = app.test_client()
    shared = _page(anonymous, view, base=f"/share/{token}")
    assert [m[2] for m in _markers(shared)] == [["launch"]]
    assert 'id="add-note"' not in shared
    assert f'href="/share/{token}/chart.csv?' in shared
    csv_rows = anonymous.get(f"/share/{token}/chart.csv?{view}").get_data(as_text=True)
    assert csv_rows.splitlines()[3].endswith(",launch")
    # A logged-in user who does not own the public site: markers, no form, 404 on posts.
    viewer = app.test_client()
    log_in(viewer, add_user(db, "viewer@example.com", admin=False))
    public = _page(viewer, view)
    assert [m[2] for m in _markers(public)] == [["launch"]] and 'id="add-note"' not in public
    token_value = csrf_token(viewer, f"/sites/{SITE}?{view}")  # the page's search form has one
    data = {"csrf_token": token_value, "date": "2026-03-04", "text": "mine"}
    add = viewer.post(f"/sites/{SITE}/annotations", data=data)
    delete = viewer.post(f"/sites/{SITE}/annotations/{note_id}/delete", data=data)
    assert (add.status_code, delete.status_code) == (404, 404)
    # Not logged in: sent to the login page.
    login_token = csrf_token(anonymous, "/login")
    sent = anonymous.post(
        f"/sites/{SITE}/annotations", data={"csrf_token": login_token, "text": "x"}
    )
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/login")
    assert [n.text for n in list_annotations(db, find_site_by_domain(db))] == ["launch"]


def find_site_by_domain(db: Database) -> Site:
    with db.session() as session:
        found = find_site(session, SITE)
    assert found is not None
    return found


# CLI (both databases)


def _cli(args: list[str], database_url: str, tmp_path) -> Any:
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "data"),
           "TRACKER_CONFIG": None}  # fmt: skip
    return CliRunner().invoke(cli, args, env=env, prog_name="tracker")


def test_cli_add_list_delete(db: Database, site: Site, database_url: str, tmp_path) -> None:
    def run(*args: str) -> Any:
        return _cli(["annotations", *args], database_url, tmp_path)

    assert "Add one with: tracker annotations add" in run("list", "--site", SITE).stdout
    added = run("add", "--site", SITE, "--date", "2026-11-27", "  Black Friday launch ")
    assert added.exit_code == 0, added.stderr
    assert re.fullmatch(r"Added note \d+ on 2026-11-27: Black Friday launch\n", added.stdout)
    today = datetime.now(ZoneInfo("Pacific/Auckland")).date().isoformat()
    assert f"on {today}: budget doubled" in run("add", "--site", SITE, "budget doubled").stdout
    listed = run("list", "--site", SITE).stdout.splitlines()
    assert listed[0].split() == ["ID", "DATE", "NOTE"]
    assert [line.split(None, 2)[1:] for line in listed[1:]] == sorted(
        [["2026-11-27", "Black Friday launch"], [today, "budget doubled"]]
    )
    first_id = listed[1].split()[0]
    ranged = run("list", "--site", SITE, "--from", "2026-11-27", "--to", "2026-11-27").stdout
    assert len(ranged.splitlines()) == 2 and "Black Friday launch" in ranged
    bad = run("add", "--site", SITE, "--date", "27.11.2026", "x")
    assert bad.exit_code == 1
    assert "--date: The date must be written YYYY-MM-DD" in bad.stderr
    long = run("add", "--site", SITE, "x" * 201)
    assert long.exit_code == 1 and "TEXT: The note's text must be at most 200" in long.stderr
    assert "--to: The date must be written" in run("list", "--site", SITE, "--to", "x").stderr
    assert "no site 'missing.example'" in run("list", "--site", "missing.example").stderr
    deleted = run("delete", "--site", SITE, first_id)
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stdout.startswith(f"Deleted note {first_id} of ")
    again = run("delete", "--site", SITE, first_id)
    assert again.exit_code == 1 and f"no note {first_id} on {SITE}" in again.stderr
    assert _count(db) == 1


# API (both databases)


@pytest.fixture
def api(app: Flask, client: FlaskClient, db: Database, owner: User):
    """Call the API with the owner's key; every answer is checked against the OpenAPI."""
    with db.session() as session:
        _, key = create_api_key(session, session.get(User, owner.id))
    headers = {"Authorization": f"Bearer {key}"}
    spec = openapi_spec(client)

    def call(method: str, path: str, **kwargs: Any) -> TestResponse:
        kwargs.setdefault("query_string", {"site_id": SITE})
        args = {"path": f"/api/v1/{path}", "method": method, "headers": headers, **kwargs}
        response = client.open(EnvironBuilder(**args))
        request = WerkzeugOpenAPIRequest(Request(EnvironBuilder(**args).get_environ()))
        spec.validate_response(request, WerkzeugOpenAPIResponse(response))
        return response

    return call


def test_api_add_list_and_delete(api, db: Database) -> None:
    created = api("POST", "annotations", json={"date": "2026-03-03", "text": " launch "})
    assert created.status_code == 201
    note = created.get_json()
    assert note == {"id": note["id"], "date": "2026-03-03", "text": "launch"}
    _add(db, "2026-03-10", "later")
    # site_id may come in the body; without a date, today in the site's time zone.
    today = api("POST", "annotations", json={"site_id": SITE, "text": "now"}, query_string={})
    assert today.status_code == 201
    assert today.get_json()["date"] == datetime.now(ZoneInfo("Pacific/Auckland")).date().isoformat()
    march = {"site_id": SITE, "period": "custom", "date": "2026-03-01,2026-03-07"}
    assert api("GET", "annotations", query_string=march).get_json() == {"annotations": [note]}
    month = api("GET", "annotations", query_string={"site_id": SITE, "period": "month",
                                                     "date": "2026-03-15"})  # fmt: skip
    assert [n["text"] for n in month.get_json()["annotations"]] == ["launch", "later"]
    bad_period = api("GET", "annotations", query_string={"site_id": SITE, "period": "fortnight"})
    assert bad_period.status_code == 400
    assert bad_period.get_json()["error"].startswith("period: ")
    assert api("DELETE", f"annotations/{note['id']}").get_json() == {"deleted": note["id"]}
    gone = api("DELETE", f"annotations/{note['id']}")
    assert gone.status_code == 404
    assert gone.get_json() == {"error": f"annotation: no annotation {note['id']} on {SITE}."}
    assert api("GET", "annotations", query_string=march).get_json() == {"annotations": []}


def test_api_refuses_bad_notes_naming_the_field(api, db: Database) -> None:
    bad = [
        ({"date": "2026-03-03"}, "text: The note's text is required."),
        ({"date": "2026-03-03", "text": "  "}, "text: The note's text is required."),
        ({"date": "2026-03-03", "text": "x" * 201}, "text: The note's text must be at most 200"),
        ({"date": "2026-03-03", "text": "a\nb"}, "text: The note's text must not contain"),
        ({"date": "2026-03-03", "text": 5}, "text: text must be a JSON string."),
        ({"date": "03/03/2026", "text": "x"}, "date: The date must be written YYYY-MM-DD"),
        ({"date": "", "text": "x"}, "date: The date is required"),
        ({"date": 20260303, "text": "x"}, "date: date must be a JSON string."),
    ]
    for payload, prefix in bad:
        response = api("POST", "annotations", json=payload)
        assert response.status_code == 400, payload
        assert response.get_json()["error"].startswith(prefix), response.get_json()
    assert api("POST", "annotations", data="not json").status_code == 400
    assert _count(db) == 0


def test_api_needs_a_key_and_a_site_the_key_can_manage(app, client, api, db) -> None:
    assert client.get("/api/v1/annotations", query_string={"site_id": SITE}).status_code == 401
    assert client.post("/api/v1/annotations", json={"text": "x"}).status_code == 401
    assert client.delete("/api/v1/annotations/1").status_code == 401
    with db.session() as session:
        add_site(session, "someone-else.example")
        theirs = add_annotation(session, find_site(session, "someone-else.example"),
                                "2026-03-03", "theirs")  # fmt: skip
    elsewhere = {"site_id": "someone-else.example"}
    assert api("GET", "annotations", query_string=elsewhere).status_code == 404
    assert api("POST", "annotations", query_string=elsewhere, json={"text": "x"}).status_code == 404
    assert api("DELETE", f"annotations/{theirs.id}", query_string=elsewhere).status_code == 404
    # Its id through the key's own site: not found either, and still there.
    assert api("DELETE", f"annotations/{theirs.id}").status_code == 404
    assert _count(db) == 1
