"""CSV for spreadsheets: a UTF-8 byte-order mark with `bom=1`, which the page's download
links ask for; without it (the API, scripts) plain UTF-8; a bad value is refused."""

import html
import re

import pytest

from tests.helpers import add_user, log_in
from tests.stats_fixture import DAY, SITE, store_fixture
from tracker.web.spreadsheet import with_bom

BOM = "\ufeff".encode()


@pytest.fixture
def viewer(app, client, db):
    store_fixture(app)
    log_in(client, add_user(db, "owner@example.com"))
    return client


def _links(client) -> list[str]:
    page = client.get(f"/sites/{SITE}?{DAY}").get_data(as_text=True)
    return [html.unescape(u) for u in re.findall(r'href="([^"]*\.csv[^"]*)"', page)]


def test_download_links_ask_for_the_mark_and_get_it(viewer):
    links = _links(viewer)
    assert len(links) >= 8  # every card, the chart, the raw exports
    for url in links:
        assert "bom=1" in url, url
        response = viewer.get(url)
        assert response.status_code == 200, url
        assert response.data.startswith(BOM), url
        plain = viewer.get(url.replace("bom=1", "bom=0"))
        assert plain.data == response.data[len(BOM) :], url  # the same file otherwise


def test_without_asking_csv_is_plain_utf8(viewer):
    for url in (
        f"/sites/{SITE}/reports/sources.csv?{DAY}",
        f"/sites/{SITE}/export/events.csv?from=2026-03-02&to=2026-03-02",
    ):
        response = viewer.get(url)
        assert response.status_code == 200 and not response.data.startswith(BOM)
        response.data.decode("utf-8")


def test_a_bad_value_is_refused(viewer):
    response = viewer.get(f"/sites/{SITE}/reports/sources.csv?{DAY}&bom=yes")
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith("bom: 'yes' is not 1")


@pytest.mark.parametrize(
    ("url", "marked"),
    [
        ("/sites/a/chart.csv?period=7d", "/sites/a/chart.csv?period=7d&bom=1"),
        ("/x.csv?bom=0&a=%C3%8Ele", "/x.csv?a=%C3%8Ele&bom=1"),
        ("/x.csv", "/x.csv?bom=1"),
    ],
)
def test_with_bom(url, marked):
    assert with_bom(url) == marked
