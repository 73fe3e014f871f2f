"""The page of users, /admin/users: server administrators only (403 for anyone else, as
the audit log of every site). They list every account, add one, make or unmake server
administrators, require two-factor login or turn it off for a locked-out user, give a link
to choose a password, and delete an account.

Every change is tracker.accounts' (the same functions, and sentences, as `tracker users`),
in one transaction with its audit entry; a refused one comes back as the page with the
sentence and nothing changed (400; 404 for a user that is not there any more).

Nobody types someone else's password: a new account has none until its user chooses one
through a link (tracker.password_reset), valid as long as an invitation. The link is
mailed when the server sends mail and knows its address (`base_url`), and shown once on
the page that answers the form either way, never put in the (signed, not encrypted)
session cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden
from wtforms import BooleanField, HiddenField, StringField

from tracker import audit
from tracker.accounts import (
    MAX_EMAIL,
    AccountError,
    create_user,
    delete_user,
    disable_2fa,
    has_password,
    list_users,
    require_2fa,
    set_admin,
)
from tracker.db.models import User
from tracker.members import ROLES
from tracker.password_reset import (
    RESET_LIFETIME,
    can_mail_links,
    issue_reset,
    mail_reset,
    mail_welcome,
    reset_path,
)
from tracker.web.access import logged_in_user
from tracker.web.account import NO_STORE  # the page shows a password link
from tracker.web.context import get_db, get_settings
from tracker.web.sites import script_base_url

bp = Blueprint("users", __name__)
T = TypeVar("T")
EXPIRED = "The form expired; reload the page and try again."


class AddUserForm(FlaskForm):
    """Only the CSRF token is checked here: the address is tracker.accounts' to check, so
    the page and `tracker users add` refuse the same input with the same sentence."""

    email = StringField("Email address")
    admin = BooleanField("Server administrator (every site, the users, the audit log)")


class SwitchForm(FlaskForm):
    """Turning something on or off: `on` is "yes" or "no"."""

    on = HiddenField()


class DeleteForm(FlaskForm):
    confirm = StringField("Type the address to confirm")


class ActionForm(FlaskForm):
    """Only the CSRF token: turning two-factor login off, a password link."""


class Refused(Exception):
    """A refused change: the page comes back with the sentence and this status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NewLink:
    """A password link, shown once on the page that answers the form."""

    email: str
    url: str
    mailed: bool
    first: bool  # a new account's first password, not a reset
    expires: str  # "2026-12-10 14:00 UTC"


def _administrator() -> User:
    user = logged_in_user()
    if user is None or not user.is_admin:
        raise Forbidden("Only server administrators manage users.")
    return user


def page(
    status: int = 200,
    error: str = "",
    new_link: NewLink | None = None,
    add_form: AddUserForm | None = None,
) -> ResponseReturnValue:
    """The page of users; a refused form comes back with its sentence."""
    me = _administrator()
    with get_db().session() as session:
        users = list_users(session)
    html = render_template(
        "users.html",
        users=users,
        me=me.id,
        roles=ROLES,
        error=error,
        new_link=new_link,
        add_form=add_form or AddUserForm(formdata=None),
        can_mail=can_mail_links(get_settings()),
        expiry_hours=get_settings().invite_expiry_hours,
        max_email=MAX_EMAIL,
    )
    return html, status, NO_STORE


def _change(user_id: int, form: FlaskForm, change: Callable[[Session, User, User], T]) -> T:
    """Run `change(session, admin, user)` on the user, in one transaction with whatever it
    records; Refused (nothing changed) for an expired form, an unknown user or an
    AccountError."""
    admin = _administrator()
    if not form.validate_on_submit():
        raise Refused(EXPIRED)
    try:
        with get_db().session() as session:
            user = session.get(User, user_id)
            if user is None:
                raise Refused(f"There is no user with id {user_id}: deleted already?", 404)
            return change(session, admin, user)
    except AccountError as exc:
        raise Refused(str(exc)) from None


def _back(user_id: int | None = None) -> ResponseReturnValue:
    anchor = f"#user-{user_id}" if user_id is not None else ""
    return redirect(url_for("users.index") + anchor)


def _password_link(
    session: Session, user: User, by: User, *, first: bool, now: datetime
) -> NewLink:
    """A link for the user to choose a password, mailed when the server can: a new account's
    lasts as long as an invitation, a reset as long as one asked for at /forgot."""
    settings = get_settings()
    lifetime = timedelta(hours=settings.invite_expiry_hours) if first else RESET_LIFETIME
    token = issue_reset(session, user, lifetime=lifetime, now=now)
    mailed = can_mail_links(settings)
    if mailed and first:
        mail_welcome(session, settings, user, token, now + lifetime, by)
    elif mailed:
        mail_reset(session, settings, user, token)
    return NewLink(
        email=user.email,
        url=script_base_url() + reset_path(token),
        mailed=mailed,
        first=first,
        expires=(now + lifetime).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _how(link: NewLink) -> str:
    return "mailed" if link.mailed else "shown to copy"


@bp.get("/admin/users")
@login_required
def index() -> ResponseReturnValue:
    return page()


@bp.post("/admin/users")
@login_required
def add() -> ResponseReturnValue:
    admin = _administrator()
    form = AddUserForm()
    if not form.validate_on_submit():
        return page(400, EXPIRED, add_form=form)
    try:
        with get_db().session() as session:
            user = create_user(session, form.email.data or "", None, is_admin=form.admin.data)
            link = _password_link(session, user, admin, first=True, now=datetime.now(UTC))
            rights = " as a server administrator" if user.is_admin else ""
            detail = f"Account {user.email} added{rights}; its password link {_how(link)}"
            audit.record(session, admin, None, "account.create", detail)
    except AccountError as exc:
        return page(400, str(exc), add_form=form)
    return page(201, new_link=link)


@bp.post("/admin/users/<int:user_id>/admin")
@login_required
def admin_rights(user_id: int) -> ResponseReturnValue:
    form = SwitchForm()

    def change(session: Session, admin: User, user: User) -> str:
        on = _switch(form)
        if not set_admin(session, user, on, by=admin):
            return f"{user.email} is {'' if on else 'not '}a server administrator already."
        state = "a server administrator" if on else "no longer a server administrator"
        message = f"{user.email} is {state}."
        audit.record(session, admin, None, "account.admin", message)
        return message

    return _done(user_id, form, change)


@bp.post("/admin/users/<int:user_id>/require-2fa")
@login_required
def require_two_factor(user_id: int) -> ResponseReturnValue:
    form = SwitchForm()

    def change(session: Session, admin: User, user: User) -> str:
        on = _switch(form)
        require_2fa(session, user, on)
        state = "required" if on else "no longer required"
        audit.record(
            session,
            admin,
            None,
            "account.2fa_required",
            f"Two-factor login {state} of {user.email}",
        )
        if on:
            return f"Two-factor login is required of {user.email}."
        return f"Two-factor login is no longer required of {user.email} by this setting."

    return _done(user_id, form, change)


@bp.post("/admin/users/<int:user_id>/disable-2fa")
@login_required
def disable_two_factor(user_id: int) -> ResponseReturnValue:
    form = ActionForm()

    def change(session: Session, admin: User, user: User) -> str:
        disable_2fa(session, user)
        audit.record(
            session, admin, None, "account.2fa_off", f"Two-factor login of {user.email} turned off"
        )
        return (
            f"Two-factor login is off for {user.email}: the password alone logs in, and their "
            "sessions are logged out."
        )

    return _done(user_id, form, change)


@bp.post("/admin/users/<int:user_id>/password-link")
@login_required
def password_link(user_id: int) -> ResponseReturnValue:
    form = ActionForm()

    def change(session: Session, admin: User, user: User) -> NewLink:
        first = not has_password(user)
        link = _password_link(session, user, admin, first=first, now=datetime.now(UTC))
        audit.record(
            session,
            admin,
            None,
            "account.reset_link",
            f"Password link of {user.email} {_how(link)}",
        )
        return link

    try:
        link = _change(user_id, form, change)
    except Refused as exc:
        return page(exc.status, str(exc))
    return page(201, new_link=link)


@bp.post("/admin/users/<int:user_id>/delete")
@login_required
def delete(user_id: int) -> ResponseReturnValue:
    form = DeleteForm()

    def change(session: Session, admin: User, user: User) -> str:
        typed = (form.confirm.data or "").strip().lower()
        if typed != user.email:
            raise Refused(f"Type {user.email} in the box to delete that account.")
        deleted = delete_user(session, user, by=admin)
        audit.record(session, admin, None, "account.delete", deleted.detail)
        return f"{deleted.detail}; their sessions are logged out."

    try:
        message = _change(user_id, form, change)
    except Refused as exc:
        return page(exc.status, str(exc))
    flash(message)
    return _back()


def _switch(form: SwitchForm) -> bool:
    if form.on.data not in ("yes", "no"):
        raise Refused("Say yes or no.")
    return form.on.data == "yes"


def _done(
    user_id: int, form: FlaskForm, change: Callable[[Session, User, User], str]
) -> ResponseReturnValue:
    """Make the change; back to the user's row with its sentence, or the page refusing."""
    try:
        message = _change(user_id, form, change)
    except Refused as exc:
        return page(exc.status, str(exc))
    flash(message)
    return _back(user_id)
