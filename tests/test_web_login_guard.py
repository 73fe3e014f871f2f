"""Logins: failures limited per account and per address (in the database, so across
workers), password hashing bounded per process, and logging out ending the session."""

from __future__ import annotations

import threading

from tests.helpers import add_user, csrf_token
from tests.waiting import wait_until
from tracker.web import auth, login_guard
from tracker.web.login_guard import ACCOUNT_FAILURES_PER_HOUR, ADDRESS_FAILURES_PER_HOUR


def _log_in(client, email, password, address="198.51.100.1"):
    token = csrf_token(client, "/login")
    return client.post(
        "/login",
        data={"csrf_token": token, "email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_failed_logins_per_account_are_limited_across_workers(make_app):
    worker_a, worker_b = make_app(), make_app()  # two workers, one database
    add_user(worker_a.extensions["tracker.db"], "ann@example.com", "right password")
    a, b = worker_a.test_client(), worker_b.test_client()
    for n in range(ACCOUNT_FAILURES_PER_HOUR):
        # From ever new addresses: only the account's count can stop them.
        assert _log_in(a, "ann@example.com", "guess", f"198.51.100.{n + 10}").status_code == 400
    refused = _log_in(b, "Ann@example.com", "right password", "198.51.100.99")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    page = refused.get_data(as_text=True)
    assert "Too many failed logins for this account. Try again in" in page
    # Another account is not held up.
    add_user(worker_a.extensions["tracker.db"], "bob@example.com", "bob password")
    assert _log_in(b, "bob@example.com", "bob password", "198.51.100.99").status_code == 302


def test_failed_logins_per_address_are_limited(client, db):
    add_user(db, "ann@example.com", "right password")
    for n in range(ADDRESS_FAILURES_PER_HOUR):
        assert _log_in(client, f"nobody{n}@example.com", "guess").status_code == 400
    refused = _log_in(client, "ann@example.com", "right password")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "Too many failed logins for your address" in refused.get_data(as_text=True)
    assert _log_in(client, "ann@example.com", "right password", "192.0.2.7").status_code == 302


def test_password_hashing_is_bounded_and_the_rest_answered_at_once(app, db, monkeypatch):
    add_user(db, "ann@example.com", "right password")
    app.config["WTF_CSRF_ENABLED"] = False
    hashes_done = threading.Event()

    def slow_authenticate(session, email, password):
        hashes_done.wait(60)  # a hash on a busy machine, lasting until the test ends it
        return None

    monkeypatch.setattr(auth, "authenticate", slow_authenticate)
    answers: list[tuple[int, str | None]] = []

    def attempt(n: int) -> None:
        response = app.test_client().post(
            "/login",
            data={"email": f"user{n}@example.com", "password": "guess"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n + 1}"},
        )
        answers.append((response.status_code, response.headers.get("Retry-After")))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    # Answered at once: the logins beyond the hashing slots, while every hash still runs.
    busy = wait_until(
        lambda: len(answers) == 8 - login_guard.HASHING_SLOTS and list(answers),
        "a 503 for each login beyond the hashing slots",
    )
    hashes_done.set()
    for thread in threads:
        thread.join()
    assert busy == [(503, "1")] * (8 - login_guard.HASHING_SLOTS)
    assert sorted(answers) == sorted(busy + [(400, None)] * login_guard.HASHING_SLOTS)


def test_logout_ends_the_session_even_for_a_copied_cookie(make_app):
    app = make_app()
    add_user(app.extensions["tracker.db"], "ann@example.com", "right password")
    laptop, phone = app.test_client(), app.test_client()
    assert _log_in(laptop, "ann@example.com", "right password").status_code == 302
    assert _log_in(phone, "ann@example.com", "right password").status_code == 302
    stolen = laptop.get_cookie("session")
    assert stolen is not None
    laptop.post("/logout", data={"csrf_token": csrf_token(laptop, "/sites")})
    assert laptop.get("/sites").status_code == 302
    replayed = app.test_client()
    replayed.set_cookie("session", stolen.value)
    assert replayed.get("/sites").status_code == 302  # the copy no longer logs in
    assert phone.get("/sites").status_code == 302  # logging out ends every session
    assert _log_in(laptop, "ann@example.com", "right password").status_code == 302
    assert laptop.get("/sites").status_code == 200


def test_session_cookie_is_httponly_and_samesite_lax(client, db):
    add_user(db, "ann@example.com", "right password")
    cookie = _log_in(client, "ann@example.com", "right password").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def _login_cookie(app, headers=None):
    add_user(app.extensions["tracker.db"], "ann@example.com", "right password")
    client = app.test_client()
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        data={"csrf_token": token, "email": "ann@example.com", "password": "right password"},
        headers=headers or {},
    )
    assert response.status_code == 302
    return response.headers["Set-Cookie"]


def test_session_cookie_is_secure_behind_a_trusted_https_proxy(make_app):
    # Over HTTPS, Flask-WTF also wants a same-site Referer, as browsers send.
    headers = {"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"}
    cookie = _login_cookie(make_app(proxy_count=1), headers)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_forwarded_proto_is_ignored_without_a_configured_proxy(make_app):
    # Any client can send the header; plain HTTP keeps a cookie the browser sends back.
    assert "Secure" not in _login_cookie(make_app(), {"X-Forwarded-Proto": "https"})
