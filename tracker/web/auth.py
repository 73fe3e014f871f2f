"""First run (create the first admin), login (with the two-factor code step) and logout."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as cookie
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from werkzeug.urls import iri_to_uri
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from tracker.accounts import (
    MIN_PASSWORD_LENGTH,
    AccountError,
    authenticate,
    create_user,
    end_sessions,
    note_login,
    user_count,
)
from tracker.db.models import User
from tracker.ingest.client import client_ip, parse_networks
from tracker.sites import list_sites
from tracker.twofactor import check_code, is_enabled
from tracker.web.context import get_db, get_settings
from tracker.web.login_guard import LoginGuard, TooManyLogins

T = TypeVar("T")
PENDING_KEY = "pending_login"  # in the session cookie: who passed the password step, until
PENDING_SECONDS = 300
bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see this page."


class LoggedInUser(UserMixin):
    """What the session knows of a user; loaded fresh from the database each request."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.email = user.email
        self.is_admin = user.is_admin
        self.session_generation = user.session_generation
        self.record = user

    def get_id(self) -> str:
        # What the session keeps: with the generation in it, logging out (which counts the
        # user's up) ends this session even if a copy of the cookie is replayed.
        return f"{self.id}:{self.session_generation}"


@login_manager.user_loader
def _load_user(session_id: str) -> LoggedInUser | None:
    user_id, _, generation = session_id.partition(":")
    try:
        # A session from before generations is generation 0, ended by the next logout.
        key, generation_number = int(user_id), int(generation or 0)
    except ValueError:
        return None
    with get_db().session() as session:
        user = session.get(User, key)
        if user is None or user.session_generation != generation_number:
            return None
        return LoggedInUser(user)


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
    app.extensions["tracker.login_guard"] = LoginGuard(app.extensions["tracker.db"])


class SetupForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH)]
    )
    confirm = PasswordField(
        "Confirm password", validators=[DataRequired(), EqualTo("password", "Passwords differ.")]
    )


class CodeForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[DataRequired(), Length(max=40)],
    )


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _no_users_yet() -> bool:
    with get_db().session() as session:
        return user_count(session) == 0


@bp.route("/", methods=["GET"])
def index():
    if _no_users_yet():
        return redirect(url_for("auth.setup"))
    if current_user.is_authenticated:
        return redirect(url_for("sites.index"))
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    if not _no_users_yet():
        return redirect(url_for("auth.login"))
    form = SetupForm()
    if form.validate_on_submit():
        try:
            with get_db().session() as session:
                user = create_user(session, form.email.data, form.password.data, is_admin=True)
                note_login(session, user.id, datetime.now(UTC))
                login_user(LoggedInUser(user))
                # `make run` may have made a demo site already: then "first site" is wrong.
                sites = list_sites(session)
        except AccountError as exc:
            form.email.errors = [str(exc)]
        else:
            if sites:
                flash(f"Welcome! Open {sites[0].domain} below to look around, or add your site.")
            else:
                flash("Welcome! Add your first site below.")
            return redirect(url_for("sites.index"))
    return render_template("setup.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    if _no_users_yet():
        return redirect(url_for("auth.setup"))
    form = LoginForm()
    if form.validate_on_submit():
        email, password = form.email.data.strip().lower(), form.password.data
        try:
            user = guarded_check(email, lambda session: authenticate(session, email, password))
        except TooManyLogins as exc:
            form.password.errors = [str(exc)]
            page = render_template("login.html", form=form)
            return page, exc.status, {"Retry-After": str(exc.retry_after)}
        if user and is_enabled(user):
            return ask_for_code(user, _safe_next(request.args.get("next")))
        if user:
            _log_in(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors = ["Wrong email or password."]
    return render_template("login.html", form=form), 400 if form.errors else 200


def _log_in(user: User) -> None:
    """The browser's session starts, and the user's last login is now."""
    with get_db().session() as session:
        note_login(session, user.id, datetime.now(UTC))
    login_user(LoggedInUser(user))


def ask_for_code(user: User, next_path: str) -> ResponseReturnValue:
    """The password was right and the account has two-factor login: the browser holds a
    signed note of that for a few minutes, and the code page finishes the login."""
    cookie[PENDING_KEY] = {
        "user": user.id,
        "email": user.email,
        "generation": user.session_generation,
        "until": time.time() + PENDING_SECONDS,
        "next": next_path,
    }
    return redirect(url_for("auth.login_code"))


def _pending_login() -> dict[str, Any] | None:
    pending = cookie.get(PENDING_KEY)
    if not isinstance(pending, dict) or pending.get("until", 0) < time.time():
        return None
    return pending


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> ResponseReturnValue:
    pending = _pending_login()
    if pending is None:
        flash("Log in with your password first (the code is asked for a few minutes after it).")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if form.validate_on_submit():
        code = form.code.data

        def right_code(session: Session) -> User | None:
            user = session.get(User, pending["user"])
            # A password changed or a logout since the password step ends it too.
            if user is None or user.session_generation != pending["generation"]:
                return None
            return user if check_code(session, user, code) else None

        try:
            user = guarded_check(pending["email"], right_code)
        except TooManyLogins as exc:
            form.code.errors = [str(exc)]
            page = render_template("login_code.html", form=form)
            return page, exc.status, {"Retry-After": str(exc.retry_after)}
        if user:
            cookie.pop(PENDING_KEY)
            _log_in(user)
            return redirect(_safe_next(pending["next"]))
        form.code.errors = ["That code is not right, or was used already."]
    return render_template("login_code.html", form=form), 400 if form.errors else 200


def guarded_check(email: str, check: Callable[[Session], T | None]) -> T | None:
    """`check` (a password or a code of the account `email`) behind the login guard: refused
    (TooManyLogins) when the account or the address failed too often, and a failure (None)
    counted against both."""
    guard: LoginGuard = current_app.extensions["tracker.login_guard"]
    address = _client_address()
    guard.check_allowed(email, address)
    with guard.hashing_slot(), get_db().session() as session:
        passed = check(session)
    if passed is None:
        guard.record_failure(email, address)
    return passed


def _client_address() -> str:
    """The address failed logins are counted against: the collector's rule, so behind a
    trusted proxy it is the browser's, not the proxy's (which would lock everyone out)."""
    trusted = parse_networks(get_settings().trusted_proxies)
    forwarded = request.headers.get("X-Forwarded-For", "")
    return client_ip(request.remote_addr or "", forwarded, trusted)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    if current_user.is_authenticated:
        with get_db().session() as session:
            end_sessions(session, current_user.id)
    logout_user()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """A path of this site to go to after logging in; the sites page for anything else.

    The check reads the URL as the browser will: Werkzeug's `iri_to_uri` (applied to every
    Location header) drops tabs and newlines, and browsers also read `\\` as `/`, so
    `/<tab>/evil.example` becomes `//evil.example`, another host. Control characters and
    backslashes are refused outright (no link of ours has them), and what is checked is
    what is sent.
    """
    if not target or any(ch < " " or ch in "\x7f\\" for ch in target):
        return url_for("sites.index")
    location = iri_to_uri(target)
    parts = urlsplit(location)
    if parts.scheme or parts.netloc or not location.startswith("/") or location.startswith("//"):
        return url_for("sites.index")
    return location
