"""First run, login, logout, the sites page and health."""

import html

from tests.helpers import add_user, csrf_token, log_in


def test_first_run_offers_to_create_admin(client, db):
    response = client.get("/")
    assert response.status_code == 302 and response.location.endswith("/setup")
    token = csrf_token(client, "/setup")
    response = client.post(
        "/setup",
        data={
            "csrf_token": token,
            "email": "Me@Example.com",
            "password": "long enough",
            "confirm": "long enough",
        },
    )
    assert response.status_code == 302 and response.location.endswith("/sites")
    page = client.get("/sites").get_data(as_text=True)
    assert "No sites yet" in page and "me@example.com" in page
    # Setup is closed once a user exists.
    assert client.get("/setup").location.endswith("/login")


def test_setup_rejects_mismatched_passwords_and_missing_csrf(client):
    token = csrf_token(client, "/setup")
    bad = client.post(
        "/setup",
        data={
            "csrf_token": token,
            "email": "a@example.com",
            "password": "long enough",
            "confirm": "different!",
        },
    )
    assert bad.status_code == 400 and "Passwords differ" in bad.get_data(as_text=True)
    no_csrf = client.post(
        "/setup",
        data={"email": "a@example.com", "password": "long enough", "confirm": "long enough"},
    )
    assert no_csrf.status_code == 400


def test_login_and_logout(client, db):
    add_user(db, "ann@example.com", "right password")
    assert client.get("/sites").status_code == 302
    token = csrf_token(client, "/login")
    wrong = client.post(
        "/login",
        data={"csrf_token": token, "email": "ann@example.com", "password": "wrong password"},
    )
    assert wrong.status_code == 400 and "Wrong email or password" in wrong.get_data(as_text=True)
    ok = client.post(
        "/login?next=//evil.example/",
        data={"csrf_token": token, "email": "ANN@example.com", "password": "right password"},
    )
    assert ok.status_code == 302 and ok.location.endswith("/sites")  # no open redirect
    assert client.get("/sites").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/sites")})
    assert client.get("/sites").status_code == 302


def test_add_site_shows_script_tag_and_escapes(client, db):
    log_in(client, add_user(db))
    token = csrf_token(client, "/sites")
    response = client.post(
        "/sites",
        data={
            "csrf_token": token,
            "domain": "https://Shop.Example.org/",
            "timezone": "Europe/Paris",
        },
    )
    assert response.status_code == 302
    page = html.unescape(client.get("/sites").get_data(as_text=True))
    assert 'data-site="shop.example.org" src="http://localhost/tracker.js"' in page
    bad = client.post(
        "/sites", data={"csrf_token": token, "domain": "<script>x</script>", "timezone": "UTC"}
    )
    assert bad.status_code == 400
    body = bad.get_data(as_text=True)
    assert "not a valid domain" in body and "<script>x" not in body


def test_users_see_only_their_sites(client, db):
    from tracker.sites import add_site

    owner = add_user(db, "owner@example.com", admin=False)
    other = add_user(db, "other@example.com", admin=False)
    with db.session() as session:
        add_site(session, "mine.example", owner=owner)
        add_site(session, "theirs.example", owner=other)
    log_in(client, owner)
    page = client.get("/sites").get_data(as_text=True)
    assert "mine.example" in page and "theirs.example" not in page


def test_healthz(client, make_app):
    assert client.get("/healthz").status_code == 200
    broken = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["error"] == "database unreachable"


SAFE_NEXT_CASES = [
    ("/%09/evil.example/x", "/sites"),  # a tab Werkzeug drops: //evil.example
    ("/%0a/evil.example/x", "/sites"),  # a newline: was a 500
    ("/%0d%0a/evil.example", "/sites"),
    ("%09//evil.example", "/sites"),
    ("/\\evil.example", "/sites"),  # browsers read \ as /
    ("\\\\evil.example", "/sites"),
    ("//evil.example/x", "/sites"),
    ("///evil.example", "/evil.example"),  # sent as a path of this site
    ("%20//evil.example", "/sites"),
    ("https://evil.example/", "/sites"),
    ("javascript:alert(1)", "/sites"),
    ("evil.example", "/sites"),
    ("/sites/demo.example?period=7d", "/sites/demo.example?period=7d"),
    ("/sites/caf%C3%A9", "/sites/caf%C3%A9"),
]


def test_login_next_goes_only_to_paths_of_this_site(client, db):
    add_user(db, "ann@example.com", "right password")
    token = csrf_token(client, "/login")
    for raw, expected in SAFE_NEXT_CASES:
        client.post("/logout", data={"csrf_token": token})
        response = client.post(
            f"/login?next={raw}",
            data={"csrf_token": token, "email": "ann@example.com", "password": "right password"},
        )
        assert response.status_code == 302, raw
        assert response.headers["Location"] == expected, raw
