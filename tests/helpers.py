"""Small helpers shared by tests: users, logins and CSRF tokens."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tracker.accounts import create_user
from tracker.db import Database
from tracker.db.models import User

CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'name="csrf_token" value="([^"]+)"'
)


def csrf_token(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def add_user(
    db: Database,
    email: str = "admin@example.com",
    password: str = "correct horse",
    *,
    admin: bool = True,
) -> User:
    with db.session() as session:
        return create_user(session, email, password, is_admin=admin)


def log_in(client: FlaskClient, user: User) -> None:
    """Log in by session, as Flask-Login stores it (the login form has its own tests)."""
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
