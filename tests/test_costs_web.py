"""Ad spend over HTTP: POST and GET /api/v1/costs (API key, all or nothing, every problem by
row and field, answers checked against the OpenAPI document), and the settings page's Ad
spend section (upload, preview with every problem before anything is saved, confirm,
list, delete; owners and admins only). SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from tests.helpers import add_owner, add_user, csrf_token, log_in, openapi_spec, session_token
from tracker.accounts import create_api_key
from tracker.costs import list_costs
from tracker.db import Database
from tracker.db.models import AdCost, Site, User
from tracker.sites import add_site, find_site
from tracker.web.spend import MAX_PAGE_BYTES

DATA = Path(__file__).parent / "data" / "costs"
SITE = "shop.example"
SETTINGS = f"/sites/{SITE}/settings"
ROW = {
    "date": "2026-11-01",
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "Spring",
    "cost": "12.30",
    "currency": "EUR",
    "impressions": 1000,
    "clicks": 40,
}


@pytest.fixture
def owner(db: Database) -> User:
    return add_owner(db, SITE)


def _count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(AdCost)) or 0


def _key(db: Database, user: User) -> str:
    with db.session() as session:
        _, key = create_api_key(session, session.get(User, user.id))
    return key


@pytest.fixture
def api(client: FlaskClient, db: Database, owner: User):
    """Call the API with the owner's key; every answer is checked against the OpenAPI."""
    headers = {"Authorization": f"Bearer {_key(db, owner)}"}
    spec = openapi_spec(client)

    def call(method: str, path: str = "costs", **kwargs: Any) -> TestResponse:
        args = {"path": f"/api/v1/{path}", "method": method, "headers": headers, **kwargs}
        response = client.open(EnvironBuilder(**args))
        request = WerkzeugOpenAPIRequest(Request(EnvironBuilder(**args).get_environ()))
        spec.validate_response(request, WerkzeugOpenAPIResponse(response))
        return response

    return call


# The API


def test_api_imports_replaces_and_lists(api, db) -> None:
    second = {**ROW, "date": "2026-11-02", "cost": 7.5, "utm_term": "Shoes", "clicks": None}
    body = {"site_id": SITE, "rows": [ROW, second]}
    first = api("POST", json=body)
    assert first.status_code == 200
    assert first.get_json() == {"imported": 2, "replaced": 0}
    again = api("POST", json={**body, "rows": [{**ROW, "utm_campaign": " SPRING ", "cost": "20"}]})
    assert again.get_json() == {"imported": 1, "replaced": 1}
    with db.session() as session:
        site = find_site(session, SITE)
        assert site.currency == "EUR"
        stored = list_costs(session, site, date(2026, 11, 1), date(2026, 11, 30))
        assert [(r.day, r.campaign, r.campaign_label, r.term, r.cost_minor) for r in stored] == [
            (date(2026, 11, 1), "spring", " SPRING ".strip(), "", 2000),
            (date(2026, 11, 2), "spring", "Spring", "shoes", 750),
        ]

    listed = api("GET", query_string={"site_id": SITE, "from": "2026-11-02", "to": "2026-11-30"})
    assert listed.status_code == 200
    result = listed.get_json()["results"]
    assert len(result) == 1
    assert {k: v for k, v in result[0].items() if k != "imported_at"} == {
        "date": "2026-11-02",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
        "utm_term": "shoes",
        "utm_content": "",
        "campaign_label": "Spring",
        "cost": "7.50",
        "currency": "EUR",
        "impressions": 1000,
        "clicks": None,
    }


def test_api_bad_rows_are_each_named_and_nothing_is_stored(api, db) -> None:
    rows = [
        ROW,
        {**ROW, "date": "01.11.2026", "cost": "1,234.50"},
        {**ROW, "currency": "EURO", "cost": -3},
        {**ROW, "utm_campaign": "", "impressions": "many", "campain": "x"},
        "a row",
        {**ROW, "cost": "12.345"},
    ]
    response = api("POST", json={"site_id": SITE, "rows": rows})
    assert response.status_code == 400
    answer = response.get_json()
    assert [(p["row"], p["field"], p["message"]) for p in answer["problems"]] == [
        (2, "date", "'01.11.2026' is not a date written YYYY-MM-DD"),
        (2, "cost", 'must be digits with an optional decimal point, e.g. "42.50" (no exponent, '
                    "sign or thousands separator)"),
        (3, "currency", "'EURO' is not an ISO 4217 currency code (e.g. EUR, USD): is the column "
                        "right?"),
        (3, "cost", "must not be negative"),
        (4, "utm_campaign", "is missing: every row needs its campaign"),
        (4, "impressions", "'many' is not a whole number"),
        (4, "campain", "is not a field of a cost row (date, utm_source, utm_medium, "
                       "utm_campaign, utm_term, utm_content, cost, currency, impressions, clicks)"),
        (5, "row", "must be a JSON object"),
        (6, "cost", "more decimals than EUR has (2); round it first"),
    ]  # fmt: skip
    assert answer["error"].startswith("9 problem(s), nothing was stored: row 2, date: ")
    assert _count(db) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"site_id": SITE}, "rows: must be a non-empty JSON array"),
        ({"site_id": SITE, "rows": []}, "rows: must be a non-empty JSON array"),
        ({"site_id": SITE, "rows": {"0": ROW}}, "rows: must be a non-empty JSON array"),
    ],
)
def test_api_rows_must_be_a_list(api, db, body, message) -> None:
    response = api("POST", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert _count(db) == 0


def test_api_body_must_be_json(api) -> None:
    for kwargs in ({"data": "rows=1"}, {"data": "{", "content_type": "application/json"}):
        response = api("POST", **kwargs)
        assert response.status_code == 400
        assert "must be a JSON object" in response.get_json()["error"]


def test_api_list_needs_a_period(api) -> None:
    response = api("GET", query_string={"site_id": SITE, "from": "2026-11-01"})
    assert response.status_code == 400
    assert response.get_json() == {"error": "to: give a day as YYYY-MM-DD (got '')."}
    response = api("GET", query_string={"site_id": SITE, "from": "2026-11-02", "to": "2026-11-01"})
    assert "ends (2026-11-01) before it starts" in response.get_json()["error"]


def test_api_needs_a_key_and_a_site_it_can_manage(app, client, db, owner) -> None:
    body = {"site_id": SITE, "rows": [ROW]}
    assert client.post("/api/v1/costs", json=body).status_code == 401
    bad = client.post("/api/v1/costs", json=body, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    stranger = add_user(db, "stranger@example.com", admin=False)
    headers = {"Authorization": f"Bearer {_key(db, stranger)}"}
    assert client.post("/api/v1/costs", json=body, headers=headers).status_code == 404
    listing = {"site_id": SITE, "from": "2026-11-01", "to": "2026-11-30"}
    assert client.get("/api/v1/costs", query_string=listing, headers=headers).status_code == 404
    assert _count(db) == 0


def test_api_writes_count_against_the_key_allowance(make_app) -> None:
    app = make_app(api_rate_limit=2)
    db = app.extensions["tracker.db"]
    user = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=user)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {_key(db, user)}"}
    body = {"site_id": SITE, "rows": [ROW]}
    codes = [client.post("/api/v1/costs", json=body, headers=headers).status_code for _ in "abc"]
    assert codes == [200, 200, 429]


# The settings page


@pytest.fixture
def owner_client(client: FlaskClient, owner: User) -> FlaskClient:
    log_in(client, owner)
    return client


def _section(page: str, anchor: str) -> str:
    return page.split(f'id="{anchor}"')[1].split("</section>")[0]


def _upload(client: FlaskClient, data: bytes, name: str, **fields: str) -> TestResponse:
    form = {"csrf_token": session_token(client), **fields}
    form["file"] = (io.BytesIO(data), name)  # type: ignore[assignment]
    return client.post(
        f"{SETTINGS}/ad-spend/preview", data=form, content_type="multipart/form-data"
    )


def _hidden(html: str) -> dict[str, str]:
    """The confirmation form's fields, unescaped as a browser would send them."""
    form = html.split('id="confirm"')[1].split("</form>")[0]
    values = re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form)
    values += [
        (n, v) for v, n in re.findall(r'<input[^>]*value="([^"]*)"[^>]*name="([^"]+)"', form)
    ]
    unescape = {"&#34;": '"', "&#39;": "'", "&lt;": "<", "&gt;": ">", "&amp;": "&"}
    result = {}
    for name, value in values:
        for entity, char in unescape.items():
            value = value.replace(entity, char)
        result[name] = value
    return result


def test_settings_upload_preview_then_confirm(owner_client, db) -> None:
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    assert "No ad spend imported yet." in _section(page, "ad-spend")
    data = (DATA / "google_ads.csv").read_bytes()
    preview = _upload(owner_client, data, "google_ads.csv", source="google", medium="cpc")
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert "<strong>5</strong> cost rows" in html
    assert "from 2026-11-01 to 2026-11-03" in html
    assert "total <strong>2391.96 EUR</strong>" in html
    assert "Skipped 5 lines that are not cost rows" in html
    campaigns = _section(html, "campaigns")
    assert re.findall(r"<td>([^<]*)</td><td class=\"num\">(\d+)</td><td class=\"num\">([^<]*)<",
                      campaigns) == [("Spring Sale", "3", "2346.86 EUR"),
                                     ("Brand", "2", "45.10 EUR")]  # fmt: skip
    assert "Import 5 rows" in html
    assert _count(db) == 0  # nothing before the confirmation

    fields = _hidden(html)
    assert fields["text"].startswith("Campaign report\r\n") and "\t1,234.56\t" in fields["text"]
    assert (fields["name"], fields["source"], fields["medium"]) == (
        "google_ads.csv",
        "google",
        "cpc",
    )
    done = owner_client.post(f"{SETTINGS}/ad-spend/import", data=fields)
    assert done.status_code == 302 and done.location.endswith("#ad-spend")
    assert _count(db) == 5
    page = owner_client.get(done.location).get_data(as_text=True)
    assert (
        "Imported 5 cost rows of google_ads.csv (0 of them replaced rows already stored): "
        "2026-11-01 to 2026-11-03, 2391.96 EUR." in page
    )
    assert "The site&#39;s currency is now EUR." in page
    listed = _section(page, "ad-spend")
    assert "<td>Spring Sale</td>" in listed and "2346.86 EUR" in listed
    assert "<td>Brand</td>" in listed and "45.10 EUR" in listed

    # The same file again: the preview says what it replaces, the import replaces it.
    again = _upload(owner_client, data, "google_ads.csv", source="google", medium="cpc")
    assert "5 of them replace rows already stored" in again.get_data(as_text=True)
    owner_client.post(f"{SETTINGS}/ad-spend/import", data=_hidden(again.get_data(as_text=True)))
    assert _count(db) == 5


def test_settings_preview_lists_every_problem_and_offers_no_import(owner_client, db) -> None:
    text = (
        "Day;Campaign;Amount spent (EUR)\n2026-11-01;<b>Spring</b>;1,00\n2026-11-02;A;-1,00\n"
        "2026-11-31;B;2,00\n"
    )
    response = _upload(owner_client, text.encode(), "meta.csv", source="facebook", medium="paid")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    problems = _section(html, "problems")
    assert "2 problems: nothing will be imported" in problems
    assert re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>',
                      problems) == [
        ("3", "cost", "must not be negative"),
        ("4", "date", "&#39;2026-11-31&#39; is not a date that exists"),
    ]  # fmt: skip
    assert "&lt;b&gt;Spring&lt;/b&gt;" in html and "<b>Spring</b>" not in html  # escaped
    assert 'id="confirm"' not in html and "Upload again" in html
    assert _count(db) == 0


@pytest.mark.parametrize(
    ("data", "fields", "message"),
    [
        (b"", {}, "Choose the CSV file to import."),
        (b"Campaign report\nnothing\n", {}, "No header row found"),
        ((DATA / "meta_ads.csv").read_bytes(), {"currency": "euro"}, "The default currency"),
        (b"x" * (MAX_PAGE_BYTES + 1), {}, "The file is over 2 MB"),
    ],
)
def test_settings_upload_errors(owner_client, db, data, fields, message) -> None:
    response = _upload(owner_client, data, "export.csv" if data else "", **fields)
    assert response.status_code == 400
    assert message in _section(response.get_data(as_text=True), "file-problem")
    assert _count(db) == 0


def test_settings_confirm_checks_the_text_again(owner_client, db) -> None:
    fields = {
        "csrf_token": csrf_token(owner_client, SETTINGS),
        "text": "Day,Campaign,Cost,Currency\n2026-11-01,A,-5,EUR\n",
        "name": "edited.csv", "source": "google", "medium": "cpc", "currency": "",
    }  # fmt: skip
    response = owner_client.post(f"{SETTINGS}/ad-spend/import", data=fields)
    assert response.status_code == 400
    assert "must not be negative" in _section(response.get_data(as_text=True), "problems")
    too_large = {**fields, "text": "x" * (MAX_PAGE_BYTES + 1)}
    response = owner_client.post(f"{SETTINGS}/ad-spend/import", data=too_large)
    assert response.status_code == 400 and "over 2 MB" in response.get_data(as_text=True)
    assert _count(db) == 0


def test_settings_delete_a_month_of_a_campaign(owner_client, db) -> None:
    data = (DATA / "meta_ads.csv").read_bytes()
    preview = _upload(owner_client, data, "meta_ads.csv", source="facebook", medium="paid_social")
    owner_client.post(f"{SETTINGS}/ad-spend/import", data=_hidden(preview.get_data(as_text=True)))
    assert _count(db) == 4
    section = _section(owner_client.get(SETTINGS).get_data(as_text=True), "ad-spend")
    forms = re.findall(r'name="start" value="([^"]+)">\s*<input type="hidden" name="end" '
                       r'value="([^"]+)">\s*<input type="hidden" name="campaign" '
                       r'value="([^"]+)">', section)  # fmt: skip
    assert forms == [("2026-11-01", "2026-11-30", "retargeting"),
                     ("2026-11-01", "2026-11-30", "spring sale")]  # fmt: skip
    response = owner_client.post(
        f"{SETTINGS}/ad-spend/delete",
        data={"csrf_token": csrf_token(owner_client, SETTINGS), "start": "2026-11-01",
              "end": "2026-11-30", "campaign": "spring sale"},
    )  # fmt: skip
    assert response.status_code == 302
    assert "Deleted 3 cost rows of campaign spring sale from 2026-11-01 to 2026-11-30." in (
        owner_client.get(response.location).get_data(as_text=True)
    )
    assert _count(db) == 1
    no_token = owner_client.post(f"{SETTINGS}/ad-spend/delete", data={"start": "2026-11-01",
                                 "end": "2026-11-30"})  # fmt: skip
    assert no_token.status_code == 400 and _count(db) == 1


def test_viewers_cannot_import_or_delete(app: Flask, client, db, owner) -> None:
    with db.session() as session:
        session.scalar(select(Site).where(Site.domain == SITE)).public = True
    viewer = add_user(db, "viewer@example.com", admin=False)
    log_in(client, viewer)
    assert client.get(f"/sites/{SITE}").status_code == 200  # may see the stats
    token = csrf_token(client, "/sites")
    data = (DATA / "google_ads.csv").read_bytes()
    preview = client.post(
        f"{SETTINGS}/ad-spend/preview",
        data={"csrf_token": token, "file": (io.BytesIO(data), "g.csv"), "source": "google",
              "medium": "cpc"},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert preview.status_code == 404
    confirm = client.post(
        f"{SETTINGS}/ad-spend/import",
        data={"csrf_token": token, "text": "date,utm_source,utm_medium,utm_campaign,cost,currency"
              "\n2026-11-01,g,cpc,A,1,EUR\n"},
    )  # fmt: skip
    assert confirm.status_code == 404
    delete = client.post(
        f"{SETTINGS}/ad-spend/delete",
        data={"csrf_token": token, "start": "2026-01-01", "end": "2026-12-31"},
    )
    assert delete.status_code == 404
    assert _count(db) == 0
    anonymous = app.test_client()
    token = csrf_token(anonymous, "/login")
    response = anonymous.post(f"{SETTINGS}/ad-spend/preview", data={"csrf_token": token})
    assert response.status_code == 302 and "/login?next=" in response.location


def test_admins_may_import(client, db, owner) -> None:
    admin = add_user(db, "admin@example.com", admin=True)
    log_in(client, admin)
    preview = _upload(client, (DATA / "microsoft_ads.csv").read_bytes(), "ms.csv",
                      source="bing", medium="cpc")  # fmt: skip
    assert preview.status_code == 200
    client.post(f"{SETTINGS}/ad-spend/import", data=_hidden(preview.get_data(as_text=True)))
    assert _count(db) == 4
