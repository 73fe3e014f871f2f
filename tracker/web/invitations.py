"""Accepting an invitation: /invite/<token>, open to anyone holding the link.

Someone without an account chooses a password (the account gets the invited address)
and then logs in; someone with an account logs in with the invited address and joins
with one click. A link that is unknown (404), used, revoked or expired (410) gets a page
saying which, and changes nothing.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from tracker import audit
from tracker.accounts import MIN_PASSWORD_LENGTH, AccountError, find_user
from tracker.db.models import Invitation, Site
from tracker.invitations import (
    InviteError,
    InviteUnusable,
    accept,
    accept_new_account,
    open_invitation,
)
from tracker.web.access import logged_in_user
from tracker.web.context import get_db

bp = Blueprint("invitations", __name__)


class PasswordForm(FlaskForm):
    password = PasswordField(
        "Choose a password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH)]
    )
    confirm = PasswordField(
        "Confirm password", validators=[DataRequired(), EqualTo("password", "Passwords differ.")]
    )


class JoinForm(FlaskForm):
    """Only the CSRF token: a logged-in user joins with one click."""


def _site_of(invitation: Invitation) -> Site:
    with get_db().session() as session:
        site = session.get(Site, invitation.site_id)
    assert site is not None  # deleting a site deletes its invitations
    return site


def _page(token: str, form: PasswordForm | None = None, status: int = 200) -> ResponseReturnValue:
    """The invitation as the visitor may take it up, or why the link opens nothing."""
    try:
        with get_db().session() as session:
            invitation = open_invitation(session, token)
            has_account = find_user(session, invitation.email) is not None
    except InviteUnusable as exc:
        return render_template("invite.html", unusable=str(exc)), exc.status
    user = logged_in_user()
    html = render_template(
        "invite.html",
        token=token,
        invitation=invitation,
        site=_site_of(invitation),
        user=user,
        wrong_user=user is not None and user.email != invitation.email,
        has_account=has_account,
        form=form or PasswordForm(formdata=None),
        join_form=JoinForm(formdata=None),
    )
    return html, status


@bp.get("/invite/<token>")
def show(token: str) -> ResponseReturnValue:
    return _page(token)


@bp.post("/invite/<token>")
def take(token: str) -> ResponseReturnValue:
    user = logged_in_user()
    if user is not None:
        return _join(token)
    form = PasswordForm()
    if not form.validate_on_submit():
        return _page(token, form, 400)
    try:
        with get_db().session() as session:
            new_user, invitation, role = accept_new_account(session, token, form.password.data)
            site = session.get(Site, invitation.site_id)
            audit.record(
                session, new_user, site, "invite.accept", f"{new_user.email} joined as {role}"
            )
    except InviteUnusable as exc:
        return render_template("invite.html", unusable=str(exc)), exc.status
    except AccountError as exc:
        form.password.errors = [str(exc)]
        return _page(token, form, 400)
    assert site is not None
    flash(f"Your account is ready and you joined {site.domain} as {role}. Log in to see it.")
    return redirect(url_for("auth.login", next=url_for("stats.dashboard", domain=site.domain)))


def _join(token: str) -> ResponseReturnValue:
    """The logged-in user, whose address is the invited one, joins the site."""
    user = logged_in_user()
    assert user is not None
    if not JoinForm().validate_on_submit():
        return _page(token, status=400)
    try:
        with get_db().session() as session:
            invitation, role = accept(session, token, user)
            site = session.get(Site, invitation.site_id)
            audit.record(session, user, site, "invite.accept", f"{user.email} joined as {role}")
    except (InviteUnusable, InviteError) as exc:
        return render_template("invite.html", unusable=str(exc)), exc.status
    assert site is not None
    flash(f"You joined {site.domain} as {role}.")
    return redirect(url_for("stats.dashboard", domain=site.domain))
