"""Setting up two-factor login from the account page, and the server's rule that makes it
compulsory for administrators.

/account/2fa shows a QR code drawn on the page (tracker.twofactor.qr_svg: no remote image,
no outside service) and the secret as text; a code from the app, with the password, turns it
on and shows the recovery codes, once. Turning it off and getting new recovery codes ask for
the password too.

A user it is required of (`require_2fa_for_admins`, or a server administrator's
`tracker users require-2fa`) who has no second factor yet is sent to /account/2fa from every
page until it is on (logging out still works), and cannot turn it off.
"""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from tracker import audit
from tracker.db.models import User
from tracker.twofactor import (
    TwoFactorError,
    confirm,
    disable,
    is_enabled,
    new_recovery_codes,
    provisioning_uri,
    qr_svg,
    required_for,
    start_enrolment,
)
from tracker.web.account import NO_STORE, ConfirmForm, page, password_checked
from tracker.web.context import get_db, get_settings

bp = Blueprint("twofactor", __name__)
# Where a user who must set up two-factor login may still go.
OPEN_DURING_ENROLMENT = {"twofactor.enrol", "twofactor.confirm_code", "auth.logout", "static"}
REQUIRED = "This server requires two-factor login of your account"
# Blueprints without login pages: the collector, the API, health checks, the beacon.
NO_LOGIN = {"ingest", "api", "health", "beacon"}


class CodeForm(FlaskForm):
    code = StringField("Code from the app", validators=[DataRequired(), Length(max=12)])
    # A stolen session alone must not turn it on: the owner would be locked out.
    password = PasswordField("Your password", validators=[DataRequired()])


def init_twofactor(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_send_to_enrolment)


def _send_to_enrolment() -> Response | None:
    if (
        request.blueprint in NO_LOGIN
        or request.endpoint in OPEN_DURING_ENROLMENT
        or not current_user.is_authenticated
        or is_enabled(current_user.record)
    ):
        return None
    with get_db().session() as session:
        required = required_for(session, current_user.record, get_settings())
    if not required:
        return None
    flash(f"{REQUIRED}: set it up to go on.")
    return redirect(url_for("twofactor.enrol"))


def _me(session: Session) -> User:
    user = session.get(User, current_user.id)
    assert user is not None
    return user


def _enrolment_page(form: CodeForm | None = None, status: int = 200) -> ResponseReturnValue:
    """The QR code of the pending secret (a new one when there is none)."""
    with get_db().session() as session:
        user = _me(session)
        secret = user.totp_secret or start_enrolment(user)
        uri = provisioning_uri(user, secret)
    html = render_template(
        "twofactor.html",
        qr=Markup(qr_svg(uri)),  # segno's SVG: paths only, the address is not in it as text
        secret=secret,
        form=form or CodeForm(formdata=None),
    )
    return html, status, NO_STORE


@bp.get("/account/2fa")
@login_required
def enrol() -> ResponseReturnValue:
    if is_enabled(current_user.record):
        flash("Two-factor login is on.")
        return redirect(url_for("account.show") + "#two-factor")
    return _enrolment_page()


@bp.post("/account/2fa")
@login_required
def confirm_code() -> ResponseReturnValue:
    form = CodeForm()
    if not form.validate_on_submit() or not password_checked(form.password):
        return _enrolment_page(form, 400)
    try:
        with get_db().session() as session:
            user = _me(session)
            codes = confirm(session, user, form.code.data or "")
            audit.record(session, user, None, "account.2fa_on", "Two-factor login turned on")
    except TwoFactorError as exc:
        form.code.errors = [str(exc)]
        return _enrolment_page(form, 400)
    return render_template("recovery_codes.html", codes=codes, first=True), 200, NO_STORE


@bp.post("/account/2fa/disable")
@login_required
def turn_off() -> ResponseReturnValue:
    form = ConfirmForm()
    if not form.validate_on_submit() or not password_checked(form.password):
        return page(400, confirm_form=form)
    with get_db().session() as session:
        user = _me(session)
        if required_for(session, user, get_settings()):
            form.password.errors = [f"{REQUIRED}: it stays on."]
            return page(403, confirm_form=form)
        disable(session, user)
        audit.record(session, user, None, "account.2fa_off", "Two-factor login turned off")
    flash("Two-factor login is off: your password alone logs you in.")
    return redirect(url_for("account.show") + "#two-factor")


@bp.post("/account/2fa/recovery-codes")
@login_required
def renew_codes() -> ResponseReturnValue:
    form = ConfirmForm()
    if not form.validate_on_submit() or not password_checked(form.password):
        return page(400, confirm_form=form)
    with get_db().session() as session:
        user = _me(session)
        if not is_enabled(user):
            return redirect(url_for("twofactor.enrol"))
        codes = new_recovery_codes(session, user)
        audit.record(session, user, None, "account.2fa_codes", "New recovery codes")
    return render_template("recovery_codes.html", codes=codes, first=False), 200, NO_STORE
