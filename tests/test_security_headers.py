"""Security headers: a Content-Security-Policy without inline script on every page, no
framing, no sniffing, no Referer to other sites; the collector stays open to any origin."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import add_user, log_in
from tests.stats_fixture import SITE, store_fixture
from tracker.goals import add_goal
from tracker.members import OWNER, add_member
from tracker.sites import create_share_link, find_site

TEMPLATES = Path(__file__).resolve().parents[1] / "tracker" / "web" / "templates"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def _assert_page_headers(response, path: str) -> None:
    assert response.mimetype == "text/html", path
    policy = response.headers.get("Content-Security-Policy", "")
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    assert directives.get("script-src") == ["'self'"], (path, policy)
    assert directives.get("default-src") == ["'self'"], (path, policy)
    assert directives.get("frame-ancestors") == ["'none'"], (path, policy)
    assert directives.get("object-src") == ["'none'"], (path, policy)
    assert "'unsafe-inline'" not in " ".join(directives.get("script-src", [])), path
    assert response.headers.get("X-Frame-Options") == "DENY", path
    assert response.headers.get("X-Content-Type-Options") == "nosniff", path
    assert response.headers.get("Referrer-Policy") == "same-origin", path


def test_every_kind_of_page_has_the_headers(app, client, db):
    anonymous = app.test_client()
    _assert_page_headers(anonymous.get("/setup"), "/setup")
    owner = add_user(db)
    store_fixture(app)
    with db.session() as session:
        site = find_site(session, SITE)
        add_member(session, site, owner, OWNER)
        add_goal(session, site, name="Signup", kind="event", event_name="Signup")
        token = create_share_link(session, site, "Agency").token
    _assert_page_headers(anonymous.get("/login"), "/login")
    _assert_page_headers(anonymous.get(f"/share/{token}"), "share link")
    _assert_page_headers(anonymous.get("/no-such-page"), "404")
    log_in(client, owner)
    for path in (
        "/sites",
        f"/sites/{SITE}",
        f"/sites/{SITE}/realtime",
        f"/sites/{SITE}/settings",
        f"/sites/{SITE}/links",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        _assert_page_headers(response, path)


def test_no_template_holds_inline_script():
    """The policy would block it: every script is a file under /assets."""
    offenders = []
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, JAVASCRIPT_URL):
            offenders += [f"{template.name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert offenders == []


def test_the_collector_stays_open_to_every_origin(client):
    script = client.get("/tracker.js", headers={"Origin": "https://shop.example"})
    assert script.status_code == 200
    assert script.headers["Access-Control-Allow-Origin"] == "*"
    assert script.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    assert script.mimetype == "application/javascript"
    preflight = client.options(
        "/api/event",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    refused = client.post("/api/event", data="{}", headers={"Origin": "https://shop.example"})
    assert refused.status_code == 400
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
