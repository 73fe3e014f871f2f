""" "Forgot password?": /forgot mails a single-use reset link (tracker.password_reset), and
/reset/<token> chooses the new password, or a new account's first one (the link a server
administrator sends from the page of users, tracker/web/users.py).

The link is built on the `base_url` setting, never on the request's Host header: anyone can
post the form with a Host of their own, and the mail would then carry the token to their
server. So without `base_url`, or without mail, the page says how the administrator resets
a password instead (`tracker users password`).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from tracker import audit
from tracker.accounts import MIN_PASSWORD_LENGTH, AccountError, has_password
from tracker.db.models import User
from tracker.password_reset import (
    ResetUnusable,
    can_mail_links,
    mail_reset,
    open_reset,
    request_reset,
    use_reset,
)
from tracker.web.context import get_db, get_settings

bp = Blueprint("password_reset", __name__)


class ForgotForm(FlaskForm):
    email = EmailField("Your account's email address", validators=[DataRequired(), Length(max=254)])


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        "New password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH)]
    )
    confirm = PasswordField(
        "Confirm the new password",
        validators=[DataRequired(), EqualTo("password", "The passwords differ.")],
    )


@bp.route("/forgot", methods=["GET", "POST"])
def forgot() -> ResponseReturnValue:
    if not can_mail_links(get_settings()):
        return render_template("forgot.html", can_mail=False)
    form = ForgotForm()
    if not form.validate_on_submit():
        status = 400 if form.errors else 200
        return render_template("forgot.html", can_mail=True, form=form), status
    with get_db().session() as session:
        requested = request_reset(session, form.email.data or "")
        if requested is not None:
            user, token = requested
            mail_reset(session, get_settings(), user, token)
            audit.record(session, user, None, "account.reset_request", "Reset link mailed")
    # The same page either way: it does not tell whether an account uses the address.
    return render_template("forgot.html", can_mail=True, sent=True)


def _unusable(exc: ResetUnusable) -> ResponseReturnValue:
    return render_template("reset.html", unusable=str(exc)), exc.status


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> ResponseReturnValue:
    try:
        with get_db().session() as session:
            user = session.get(User, open_reset(session, token).user_id)
            assert user is not None  # deleting a user deletes their links
            # A new account's first password: the page says so, and whose account it is.
            email, first = user.email, not has_password(user)
    except ResetUnusable as exc:
        return _unusable(exc)
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            with get_db().session() as session:
                user = use_reset(session, token, form.password.data or "")
                detail = "First password chosen by link" if first else "Password reset by link"
                audit.record(session, user, None, "account.password", detail)
        except ResetUnusable as exc:
            return _unusable(exc)
        except AccountError as exc:
            form.password.errors = [str(exc)]
        else:
            if first:
                flash(f"Your password is set. Log in as {email} with it.")
            else:
                flash(
                    "Your new password is set, and every session of the account is logged "
                    "out. Log in with it."
                )
            return redirect(url_for("auth.login"))
    status = 400 if form.errors else 200
    return render_template("reset.html", form=form, email=email, first=first), status
