"""The Campaigns tab: the same figures on the page, in its CSV and from the Stats API
(the fixture of tests/test_spend.py, hand-counted there)."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import add_user, log_in, store_events
from tests.test_spend import DAY, SITE, shop
from tracker.accounts import create_api_key
from tracker.db import Database
from tracker.db.models import User
from tracker.members import OWNER, add_member

PERIOD = f"period=custom&from={DAY}&to={DAY}&compare=off"
ROW_RE = re.compile(r"<tr><td title=\"[^\"]*\">(?:<a href=\"([^\"]*)\">|<span>)([^<]*)</(?:a|span)>"
                    r"(?:<small[^>]*>[^<]*</small>)?</td>((?:<td>.*?</td>)*)</tr>")  # fmt: skip
CELL_RE = re.compile(r"<td>([^<]*)")


@pytest.fixture
def owner(app: Flask, client: FlaskClient, db: Database) -> FlaskClient:
    site = shop(app, db, rollups=False)
    user = add_user(db, "owner@example.com")
    with db.session() as session:
        add_member(session, site, user, OWNER)
    log_in(client, user)
    return client


def page(client: FlaskClient, query: str = "") -> str:
    response = client.get(f"/sites/{SITE}/campaigns?{PERIOD}{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def table(text: str) -> dict[str, tuple[str, ...]]:
    return {
        html.unescape(label): tuple(html.unescape(c) for c in CELL_RE.findall(cells))
        for _url, label, cells in ROW_RE.findall(text)
    }


def test_campaign_rows_totals_and_what_matched_nothing(owner: FlaskClient) -> None:
    text = page(owner)
    assert table(text) == {
        # cost, impr., ad clicks, CTR, visits, cost/visit, bounce, conv., rate, CPA, revenue, ROAS
        "Retarget": ("25.00", "500", "10", "2.0%", "1", "25.00", "0.0%", "1", "100.0%",
                     "25.00", "50.00", "2.00"),
        "Spring Sale": ("20.00", "1k", "40", "4.0%", "3", "6.67", "66.7%", "1", "33.3%",
                        "20.00", "30.00", "1.50"),
        "Weekly": ("-", "-", "-", "-", "1", "-", "100.0%", "0", "0.0%", "-", "0.00", "-"),
    }  # fmt: skip
    assert list(table(text)) == ["Retarget", "Spring Sale", "Weekly"]  # most cost first
    assert "Cost (EUR)" in text and "<tfoot>" in text
    assert "Cost with no visits:</strong> Ghost (5.00)" in text
    assert "Visits with no cost imported:</strong> Weekly." in text
    assert 'aria-current="page">Campaigns</a>' in text


def test_sort_drill_down_and_goal_choice(owner: FlaskClient) -> None:
    by_cpc = page(owner, "&campaigns_sort=cpc:asc")
    assert list(table(by_cpc)) == ["Weekly", "Spring Sale", "Retarget"]
    links = {html.unescape(label): html.unescape(url) for url, label, _ in ROW_RE.findall(by_cpc)}
    drill = links["Spring Sale"]
    assert "utm_campaign=Spring+Sale%7Cspring+sale" in drill and "campaigns_level=source" in drill
    sources = owner.get(drill).get_data(as_text=True)
    assert table(sources)["google"][:5] == ("20.00", "1k", "40", "4.0%", "3")
    assert "Conversions of: <a href=" in page(owner)  # one goal: no "Any goal"


def test_csv_and_api_give_the_page_figures(app: Flask, owner: FlaskClient, db: Database) -> None:
    response = owner.get(f"/sites/{SITE}/campaigns.csv?{PERIOD}")
    assert response.status_code == 200
    lines = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert lines[0][:6] == ["campaign", "cost", "impressions", "ad_clicks", "ctr", "visits"]
    by_label = {line[0]: line for line in lines[1:]}
    assert by_label["Spring Sale"][1:13] == [
        "20.00", "1000", "40", "4.0", "3", "6.67", "66.7", "1", "33.3", "20.00", "30.00", "1.5"
    ]  # fmt: skip
    assert by_label["(total)"][1] == "50.00" and by_label["(total)"][13] == "EUR"
    with db.session() as session:
        user = session.scalars(select(User).where(User.email == "owner@example.com")).one()
        _, key = create_api_key(session, user)
    api = owner.get(
        "/api/v1/stats/breakdown",
        query_string={
            "site_id": SITE,
            "period": "custom",
            "date": f"{DAY},{DAY}",
            "property": "visit:utm_campaign",
            "metrics": "visits,cost,cpc,cpa,roas",
            "filters": "event:goal==Purchase",
        },  # fmt: skip
        headers={"Authorization": f"Bearer {key}"},
    )
    assert api.status_code == 200, api.get_data(as_text=True)
    retarget = next(r for r in api.get_json()["results"] if r["utm_campaign"] == "Retarget")
    assert retarget == {"utm_campaign": "Retarget", "visits": 1, "cost": {"EUR": "25.00"},
                        "cpc": {"EUR": "25.00"}, "cpa": {"EUR": "25.00"}, "roas": 2.0}  # fmt: skip


def test_filters_cost_cannot_follow_and_an_empty_period(owner: FlaskClient) -> None:
    text = page(owner, "&entry_page=/")
    assert "Cost is known per campaign tag only" in text
    assert table(text)["Spring Sale"][0] == "-"
    empty = owner.get(f"/sites/{SITE}/campaigns?period=custom&from=2020-01-01&to=2020-01-02")
    assert "No tagged visits in this period" in empty.get_data(as_text=True)


def test_escaped_and_formula_safe(app: Flask, owner: FlaskClient) -> None:
    tagged = f"https://{SITE}/?utm_campaign=%3Cb%3E%3Dcmd"
    store_events(app, [{"ip": "203.0.113.9", "timestamp": f"{DAY}T15:00:00Z", "url": tagged}],
                 site=SITE)  # fmt: skip
    assert "&lt;b&gt;=cmd" in page(owner) and "<b>=cmd" not in page(owner)
    text = owner.get(f"/sites/{SITE}/campaigns.csv?{PERIOD}").get_data(as_text=True)
    assert "\n<b>=cmd," in text  # starts with <, not a formula
    store_events(app, [{"ip": "203.0.113.8", "timestamp": f"{DAY}T15:10:00Z",
                        "url": f"https://{SITE}/?utm_campaign=%3Dcmd"}], site=SITE)  # fmt: skip
    text = owner.get(f"/sites/{SITE}/campaigns.csv?{PERIOD}").get_data(as_text=True)
    assert "\n'=cmd," in text
