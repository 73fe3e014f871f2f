"""Who sees a site's stats: owner, admin, public sites, share links (and revoking them)."""

import re

import pytest

from tests.helpers import add_user, csrf_token, log_in
from tracker.sites import add_site, create_share_link


@pytest.fixture
def two_sites(db):
    """ann owns ann.example, bob owns bob.example; neither is an admin."""
    ann = add_user(db, "ann@example.com", admin=False)
    bob = add_user(db, "bob@example.com", admin=False)
    with db.session() as session:
        add_site(session, "ann.example", owner=ann)
        add_site(session, "bob.example", owner=bob)
    return ann, bob


def test_stats_are_private_by_default(client, two_sites):
    response = client.get("/sites/ann.example")
    assert response.status_code == 302 and "/login?next=" in response.location
    assert client.get("/sites/ann.example/settings").status_code == 302
    assert client.get("/sites/ann.example/status.json").status_code == 302


def test_owner_sees_own_site_not_another_users(client, two_sites):
    ann, _bob = two_sites
    log_in(client, ann)
    assert client.get("/sites/ann.example").status_code == 200
    assert client.get("/sites/ann.example/settings").status_code == 200
    # Another user's site and an unknown site look the same: not found.
    for path in ("/sites/bob.example", "/sites/bob.example/settings", "/sites/nope.example"):
        assert client.get(path).status_code == 404, path
    token = csrf_token(client, "/sites/ann.example/settings")
    forged = client.post(
        "/sites/bob.example/settings/delete", data={"csrf_token": token, "confirm": "bob.example"}
    )
    assert forged.status_code == 404


def test_admin_sees_every_site(client, db, two_sites):
    log_in(client, add_user(db, "root@example.com", admin=True))
    assert client.get("/sites/bob.example").status_code == 200
    assert client.get("/sites/bob.example/settings").status_code == 200


def test_public_site_is_readable_by_anyone_but_settings_stay_private(client, db, two_sites):
    with db.session() as session:
        from tracker.sites import find_site

        find_site(session, "ann.example").public = True
    page = client.get("/sites/ann.example")
    assert page.status_code == 200 and "ann.example" in page.get_data(as_text=True)
    assert "/settings" not in page.get_data(as_text=True)
    assert client.get("/sites/ann.example/settings").status_code == 302
    assert client.get("/sites/bob.example").status_code == 302


def _share(db, domain):
    from tracker.sites import find_site

    with db.session() as session:
        return create_share_link(session, find_site(session, domain), "agency").token


def test_share_link_sees_only_its_site_read_only(app, client, two_sites, db):
    from tracker.web.local_pages import note_local_page

    token = _share(db, "ann.example")
    note_local_page(app.extensions["tracker.settings"].data_dir, "http://127.0.0.1:5500")
    page = client.get(f"/share/{token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "ann.example" in html and "/settings" not in html and "<script defer" not in html
    assert "127.0.0.1:5500" not in html  # the server's local-page note is for site managers
    assert client.get(f"/share/{token}/status.json").get_json() == {"has_events": False}
    # The link opens nothing else: not settings, not another site, not the private URL.
    for path in (
        f"/share/{token}/settings",
        "/sites/ann.example",
        "/sites/ann.example/settings",
        "/sites/bob.example",
    ):
        assert client.get(path).status_code in (302, 404), path
    assert client.get(f"/share/{token}x").status_code == 404


def test_revoked_share_link_stops_working(client, two_sites, db):
    ann, bob = two_sites
    token = _share(db, "ann.example")
    viewer = client.application.test_client()
    assert viewer.get(f"/share/{token}").status_code == 200
    log_in(client, ann)
    settings = client.get("/sites/ann.example/settings").get_data(as_text=True)
    assert f"/share/{token}" in settings
    link_id = re.search(r"/settings/shares/(\d+)/revoke", settings).group(1)

    # Bob cannot revoke Ann's link through his own site's settings.
    intruder = client.application.test_client()
    log_in(intruder, bob)
    bob_csrf = csrf_token(intruder, "/sites/bob.example/settings")
    intruder.post(
        f"/sites/bob.example/settings/shares/{link_id}/revoke", data={"csrf_token": bob_csrf}
    )
    assert viewer.get(f"/share/{token}").status_code == 200

    no_csrf = client.post(f"/sites/ann.example/settings/shares/{link_id}/revoke")
    assert no_csrf.status_code == 400
    assert viewer.get(f"/share/{token}").status_code == 200

    csrf = csrf_token(client, "/sites/ann.example/settings")
    revoked = client.post(
        f"/sites/ann.example/settings/shares/{link_id}/revoke", data={"csrf_token": csrf}
    )
    assert revoked.status_code == 302
    assert viewer.get(f"/share/{token}").status_code == 404
    assert viewer.get(f"/share/{token}/status.json").status_code == 404
    assert f"/share/{token}" not in client.get("/sites/ann.example/settings").get_data(as_text=True)


def test_share_link_reports_stay_inside_the_link(app, client, db):
    from tests.stats_fixture import DAY, SITE, kpis, store_fixture

    store_fixture(app)
    token = _share(db, SITE)
    html = client.get(f"/share/{token}?{DAY}").get_data(as_text=True)
    assert kpis(html)["Visitors"][0] == "3" and "/settings" not in html
    links = {h.replace("&amp;", "&") for h in re.findall(r'href="(/[^"]*)"', html)}
    stats_links = {link for link in links if link != "/" and not link.startswith("/assets/")}
    assert len(stats_links) > 20
    assert all(link.startswith(f"/share/{token}") for link in stats_links), stats_links
    for path in ("reports/sources", "reports/sources.csv", "realtime", "live.json"):
        assert client.get(f"/share/{token}/{path}?{DAY}").status_code == 200, path
    assert client.get(f"/sites/{SITE}/reports/sources.csv?{DAY}").status_code == 302
