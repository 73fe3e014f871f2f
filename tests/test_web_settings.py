"""The site settings page: time zone, hostnames, visibility, share links, deletion; CSRF."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import add_user, csrf_token, log_in
from tracker.db.models import DropCount
from tracker.sites import add_site, find_site


@pytest.fixture
def owner_client(client, db):
    owner = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_site(session, "shop.example", owner=owner)
    log_in(client, owner)
    return client


def _site(db):
    with db.session() as session:
        return find_site(session, "shop.example")


def test_save_settings(owner_client, db):
    token = csrf_token(owner_client, "/sites/shop.example/settings")
    response = owner_client.post(
        "/sites/shop.example/settings",
        data={
            "csrf_token": token,
            "timezone": "America/New_York",
            "allowed_hostnames": (
                "Checkout.Example.NET\nhttps://www.shop-example.com/, checkout.example.net"
            ),
            "public": "y",
            "shared_export": "y",
            "currency": " usd",
        },
    )
    assert response.status_code == 302
    site = _site(db)
    assert site.currency == "USD"
    assert site.timezone == "America/New_York"
    assert site.allowed_hostnames == ["checkout.example.net", "www.shop-example.com"]
    assert site.public is True and site.shared_export is True
    page = owner_client.get("/sites/shop.example/settings").get_data(as_text=True)
    assert "Settings saved." in page
    assert 'name="timezone" id="timezone" value="America/New_York"' in page
    # Unticked boxes turn the flags off again.
    owner_client.post(
        "/sites/shop.example/settings",
        data={"csrf_token": token, "timezone": "UTC", "allowed_hostnames": ""},
    )
    site = _site(db)
    assert (site.public, site.shared_export, site.allowed_hostnames) == (False, False, [])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "&#39;Mars/Olympus&#39; is not a time zone"),
        ("allowed_hostnames", "bad host!", "is not a valid hostname"),
        ("currency", "EURO", "is not an ISO 4217 currency code"),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(owner_client, db, field, value, message):
    data = {"timezone": "Europe/Paris", "allowed_hostnames": "ok.example", field: value}
    data["csrf_token"] = csrf_token(owner_client, "/sites/shop.example/settings")
    response = owner_client.post("/sites/shop.example/settings", data=data)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert _site(db).timezone == "UTC" and _site(db).allowed_hostnames == []
    assert _site(db).currency == ""


def test_honour_dnt_is_saved_and_requests_not_counted_are_shown(owner_client, db):
    page = owner_client.get("/sites/shop.example/settings").get_data(as_text=True)
    assert "None: no bot, spam or opted-out visitor was turned away." in page
    token = csrf_token(owner_client, "/sites/shop.example/settings")
    owner_client.post(
        "/sites/shop.example/settings",
        data={"csrf_token": token, "timezone": "UTC", "honour_dnt": "y"},
    )
    assert _site(db).honour_dnt is True
    today = datetime.now(UTC).date()
    with db.session() as session:
        site_id = _site(db).id
        session.add_all(
            [
                DropCount(site_id=site_id, day=today, reason="bot", count=1234),
                DropCount(site_id=site_id, day=today - timedelta(days=3), reason="dnt", count=7),
                DropCount(site_id=site_id, day=today - timedelta(days=40), reason="spam", count=9),
            ]
        )
    page = owner_client.get("/sites/shop.example/settings").get_data(as_text=True)
    assert '<input checked id="honour_dnt"' in page
    rows = page.split('id="not-counted"')[1].split("</section>")[0]
    assert 'Bots and prefetches</td><td class="num">1,234' in rows
    assert 'Do Not Track or Global Privacy Control</td><td class="num">7' in rows
    assert "Referrer spam" not in rows  # older than 30 days


def test_every_form_needs_csrf(owner_client, db):
    posts = {
        "/sites/shop.example/settings": {"timezone": "Europe/Paris", "public": "y"},
        "/sites/shop.example/settings/shares": {"name": "x"},
        "/sites/shop.example/settings/delete": {"confirm": "shop.example"},
    }
    for path, data in posts.items():
        assert owner_client.post(path, data=data).status_code == 400, path
    site = _site(db)
    assert site is not None and site.timezone == "UTC" and site.public is False
    assert "No share links" in owner_client.get("/sites/shop.example/settings").get_data(
        as_text=True
    )


def test_share_link_label_is_escaped(owner_client):
    token = csrf_token(owner_client, "/sites/shop.example/settings")
    owner_client.post(
        "/sites/shop.example/settings/shares", data={"csrf_token": token, "name": "<b>x</b>"}
    )
    page = owner_client.get("/sites/shop.example/settings").get_data(as_text=True)
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "http://localhost/share/" in page


def test_delete_needs_the_domain_typed(owner_client, db):
    token = csrf_token(owner_client, "/sites/shop.example/settings")
    wrong = owner_client.post(
        "/sites/shop.example/settings/delete", data={"csrf_token": token, "confirm": "shop"}
    )
    assert wrong.status_code == 400
    assert "Type shop.example exactly" in wrong.get_data(as_text=True)
    assert _site(db) is not None
    ok = owner_client.post(
        "/sites/shop.example/settings/delete",
        data={"csrf_token": token, "confirm": " Shop.Example "},
    )
    assert ok.status_code == 302 and ok.location.endswith("/sites")
    assert _site(db) is None
    assert owner_client.get("/sites/shop.example").status_code == 404
