"""The account page, /account: one's own email address, password, two-factor login, API
keys and sessions; for a server administrator, also the mail about no site that failed.

Every change that could lock the owner out or hand the account to someone else asks for
the current password first, checked behind the login guard (a wrong one counts toward the
login rate limit, as on the login page). A new password or "log out other sessions" counts
the session generation up, which ends every session of the account, and this browser is
logged in again with the new one. A new API key is shown on the page that answers its form,
once: it is never stored, and never put in the (signed, not encrypted) session cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, login_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response
from wtforms import EmailField, Field, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length

from tracker import audit, mail
from tracker.accounts import (
    MAX_KEY_NAME,
    MIN_PASSWORD_LENGTH,
    READ,
    SCOPES,
    AccountError,
    api_keys_of,
    as_utc,
    authenticate,
    change_email,
    create_api_key,
    describe_api_key,
    end_sessions,
    revoke_api_key,
    set_password,
)
from tracker.db.models import ApiKey, User
from tracker.twofactor import is_enabled, recovery_codes_left, required_for
from tracker.web.auth import LoggedInUser, guarded_check
from tracker.web.context import get_db, get_settings
from tracker.web.login_guard import TooManyLogins

bp = Blueprint("account", __name__)
WRONG_PASSWORD = "That is not your current password."
# On pages that show a secret (a new key, recovery codes, a TOTP secret): no copy of them
# kept in the browser's cache for the next user of the computer.
NO_STORE = {"Cache-Control": "no-store"}


class EmailForm(FlaskForm):
    email = EmailField("New email address", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Current password", validators=[DataRequired()])


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    new = PasswordField(
        "New password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH)]
    )
    confirm = PasswordField(
        "Confirm the new password",
        validators=[DataRequired(), EqualTo("new", "The new passwords differ.")],
    )


class KeyForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=MAX_KEY_NAME)])
    scope = SelectField(
        "Scope",
        choices=[SelectChoice(v, f"{v}: {label}") for v, label in SCOPES.items()],
        default=READ,
    )


class ConfirmForm(FlaskForm):
    """A password for actions that take nothing else (two-factor off, new recovery codes)."""

    password = PasswordField("Current password", validators=[DataRequired()])


class ActionForm(FlaskForm):
    """Only the CSRF token: revoking a key, logging out other sessions."""


@dataclass(frozen=True)
class KeyRow:
    id: int
    name: str
    prefix: str
    scope: str
    created: str
    last_used: str


@dataclass(frozen=True)
class NewKey:
    plain: str
    name: str
    scope: str


def _when(moment: datetime | None) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _key_rows(user: User) -> list[KeyRow]:
    with get_db().session() as session:
        keys = api_keys_of(session, user)
    return [
        KeyRow(k.id, k.name, k.prefix, k.scope, _when(k.created_at), _when(k.last_used_at))
        for k in keys
    ]


def page(
    status: int = 200, new_key: NewKey | None = None, **forms: FlaskForm
) -> ResponseReturnValue:
    """The account page; a refused form comes back as typed, with its errors."""
    user: User = current_user.record
    with get_db().session() as session:
        codes_left = recovery_codes_left(session, user)
        must_keep_2fa = required_for(session, user, get_settings())
        # Mail about no site (password resets) has no settings page: its administrators see it.
        server_mail = mail.problems(session, None) if user.is_admin else None
    html = render_template(
        "account.html",
        user=user,
        two_factor=is_enabled(user),
        codes_left=codes_left,
        must_keep_2fa=must_keep_2fa,
        keys=_key_rows(user),
        new_key=new_key,
        server_mail=server_mail,
        scopes=SCOPES,
        email_form=forms.get("email_form") or EmailForm(formdata=None),
        password_form=forms.get("password_form") or PasswordForm(formdata=None),
        key_form=forms.get("key_form") or KeyForm(formdata=None),
        confirm_form=forms.get("confirm_form") or ConfirmForm(formdata=None),
    )
    return html, status, NO_STORE


def password_checked(field: Field) -> bool:
    """Whether `field` holds the logged-in user's password; else its error says why."""
    email, password = current_user.email, field.data or ""
    try:
        if guarded_check(email, lambda session: authenticate(session, email, password)):
            return True
        field.errors = [WRONG_PASSWORD]
    except TooManyLogins as exc:
        field.errors = [str(exc)]
    return False


def log_in_again() -> None:
    """This browser's session, with the account's new generation (the others ended)."""
    with get_db().session() as session:
        user = session.get(User, current_user.id)
        assert user is not None
        login_user(LoggedInUser(user))


def _back(anchor: str) -> Response:
    return redirect(url_for("account.show") + anchor)


@bp.get("/account")
@login_required
def show() -> ResponseReturnValue:
    return page()


@bp.post("/account/email")
@login_required
def email() -> ResponseReturnValue:
    form = EmailForm()
    if not form.validate_on_submit() or not password_checked(form.password):
        return page(400, email_form=form)
    try:
        with get_db().session() as session:
            user = session.get(User, current_user.id)
            assert user is not None
            old = user.email
            new = change_email(session, user, form.email.data or "")
            audit.record(session, user, None, "account.email", f"Email changed from {old} to {new}")
    except AccountError as exc:
        form.email.errors = [str(exc)]
        return page(400, email_form=form)
    flash(f"You now log in as {new}.")
    return _back("#email")


@bp.post("/account/password")
@login_required
def password() -> ResponseReturnValue:
    form = PasswordForm()
    if not form.validate_on_submit() or not password_checked(form.current):
        return page(400, password_form=form)
    with get_db().session() as session:
        user = session.get(User, current_user.id)
        assert user is not None
        set_password(session, user, form.new.data or "")
        audit.record(session, user, None, "account.password", "Password changed")
    log_in_again()
    flash("Password changed. Every other session of your account is logged out.")
    return _back("#password")


@bp.post("/account/sessions")
@login_required
def end_other_sessions() -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        return page(400)
    with get_db().session() as session:
        end_sessions(session, current_user.id)
        audit.record(session, current_user.record, None, "account.sessions", "Other sessions ended")
    log_in_again()
    flash("Every other session of your account is logged out.")
    return _back("#sessions")


@bp.post("/account/apikeys")
@login_required
def create_key() -> ResponseReturnValue:
    form = KeyForm()
    if not form.validate_on_submit():
        return page(400, key_form=form)
    user: User = current_user.record
    try:
        with get_db().session() as session:
            key, plain = create_api_key(session, user, form.name.data or "", form.scope.data or "")
            audit.record(session, user, None, "apikey.create", describe_api_key(key, user))
            new_key = NewKey(plain=plain, name=key.name, scope=key.scope)
    except AccountError as exc:
        form.name.errors = [str(exc)]
        return page(400, key_form=form)
    return page(201, new_key=new_key)


@bp.post("/account/apikeys/<int:key_id>/revoke")
@login_required
def revoke_key(key_id: int) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        return page(400)
    user: User = current_user.record
    with get_db().session() as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.user_id != user.id:  # another's key: as if it did not exist
            raise NotFound("You have no API key with that id.")
        audit.record(session, user, None, "apikey.revoke", describe_api_key(key, user))
        revoke_api_key(session, key)
        flash(f"Key {key.prefix}… revoked: it is refused from the next request on.")
    return _back("#api-keys")
