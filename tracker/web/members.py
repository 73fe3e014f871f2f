"""Members on the settings page: who has which role, changing a role, removing someone,
inviting by email and revoking pending invitations; and leaving a site (any member).

Admins and owners reach these (`site_access(domain, ADMIN)`); admins manage admins and
viewers, only owners manage owners (tracker.members). A refused change comes back as the
settings page with the sentence in the Members section and nothing changed (400; 403
when it takes an owner). Every change is written to the audit log.

A new invitation's link is shown once on the page to copy; when the server sends mail
(and knows its address, `base_url`) it is also mailed to the invited address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Blueprint, flash, g, make_response, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField

from tracker import audit
from tracker.accounts import as_utc
from tracker.invitations import (
    MAX_EMAIL,
    create_invitation,
    invite_path,
    mail_invitation,
    pending_invitations,
    revoke_invitation,
)
from tracker.members import (
    ADMIN,
    OWNER,
    ROLES,
    VIEWER,
    Member,
    MemberError,
    change_role,
    leave_site,
    list_members,
    remove_member,
)
from tracker.web import settings, sites
from tracker.web.access import SiteAccess, logged_in_user, site_access
from tracker.web.context import get_db, get_settings
from tracker.web.sites import script_base_url

bp = Blueprint("members", __name__)
EXPIRED = "The form expired; reload the page and try again."


class InviteForm(FlaskForm):
    """Only the CSRF token is checked here: the address and the role are tracker.invitations'
    checks, so the page and `tracker invite` refuse the same input with the same sentence."""

    email = StringField("Email address")
    role = SelectField("Role", choices=list(ROLES), default=VIEWER, validate_choice=False)


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=list(ROLES), validate_choice=False)


class ActionForm(FlaskForm):
    """Only the CSRF token: removing, leaving, revoking is a POST to the item's own URL."""


@dataclass(frozen=True)
class PendingInvite:
    id: int
    email: str
    role: str
    expires: str  # "2026-12-10 14:00 UTC"


@dataclass(frozen=True)
class MembersSection:
    members: list[Member]
    invitations: list[PendingInvite]
    roles: tuple[str, ...]  # the roles this user may give
    me: int | None
    is_owner: bool
    form: InviteForm
    error: str
    new_link: str  # a new invitation's link, shown once; "" otherwise
    new_email: str
    mailed: bool  # the new invitation was mailed too
    expiry_hours: int
    max_email: int = MAX_EMAIL

    def may_change(self, member: Member) -> bool:
        """Owners change everyone; admins everyone but owners."""
        return self.is_owner or member.role != OWNER


@bp.app_template_global()
def members_section(access: SiteAccess) -> MembersSection:
    """What the settings page's Members section shows; a refused form comes back as typed."""
    with get_db().session() as session:
        members = list_members(session, access.site)
        invitations = [
            PendingInvite(
                i.id, i.email, i.role, as_utc(i.expires_at).strftime("%Y-%m-%d %H:%M UTC")
            )
            for i in pending_invitations(session, access.site)
        ]
    user = logged_in_user()
    return MembersSection(
        members=members,
        invitations=invitations,
        roles=ROLES if access.is_owner else (ADMIN, VIEWER),
        me=user.id if user else None,
        is_owner=access.is_owner,
        form=g.get("invite_form") or InviteForm(formdata=None),
        error=g.get("members_error", ""),
        new_link=g.get("new_invite_link", ""),
        new_email=g.get("new_invite_email", ""),
        mailed=g.get("new_invite_mailed", False),
        expiry_hours=get_settings().invite_expiry_hours,
    )


def _page(domain: str, status: int) -> ResponseReturnValue:
    """The settings page, with what `g` holds for the Members section."""
    response = make_response(settings.show(domain))
    response.status_code = status
    return response


def _refused(domain: str, error: MemberError) -> ResponseReturnValue:
    g.members_error = str(error)
    return _page(domain, error.status)


def _back(domain: str) -> Response:
    return redirect(url_for("site_settings.show", domain=domain) + "#members")


@bp.post("/sites/<domain>/settings/members/<int:user_id>/role")
def role_view(domain: str, user_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = RoleForm()
    if not form.validate_on_submit():
        return EXPIRED, 400
    role = form.role.data or ""
    try:
        with get_db().session() as session:
            email, old = change_role(session, access.site, access.role or "", user_id, role)
            message = f"{email} is now {role} of {access.site.domain} (was {old})."
            audit.record(session, logged_in_user(), access.site, "member.role", message)
    except MemberError as exc:
        return _refused(domain, exc)
    flash(message)
    return _back(domain)


@bp.post("/sites/<domain>/settings/members/<int:user_id>/remove")
def remove_view(domain: str, user_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    try:
        with get_db().session() as session:
            removed = remove_member(session, access.site, access.role or "", user_id)
            message = f"{removed.email} ({removed.role}) no longer has access to {domain}."
            audit.record(session, logged_in_user(), access.site, "member.remove", message)
    except MemberError as exc:
        return _refused(domain, exc)
    flash(message)
    me = logged_in_user()
    if me is not None and me.id == user_id and not me.is_admin:
        return redirect(url_for("sites.index"))
    return _back(domain)


@bp.post("/sites/<domain>/leave")
@login_required  # a public site lets anyone read it, and only members leave
def leave_view(domain: str) -> ResponseReturnValue:
    """Any member leaves the site (not its last owner); back to the list of sites."""
    access = site_access(domain, VIEWER)
    user = current_user.record
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    try:
        with get_db().session() as session:
            role = leave_site(session, access.site, user)
            audit.record(session, user, access.site, "member.leave", f"{user.email} ({role}) left")
    except MemberError as exc:
        flash(str(exc))
        return sites.page(status=exc.status)
    flash(f"You left {access.site.domain}.")
    return redirect(url_for("sites.index"))


@bp.post("/sites/<domain>/settings/invitations")
def invite_view(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = InviteForm()
    g.invite_form = form
    if not form.validate_on_submit():
        return _refused(domain, MemberError(EXPIRED))
    user = logged_in_user()
    try:
        with get_db().session() as session:
            invitation, token = create_invitation(
                session,
                access.site,
                form.email.data or "",
                form.role.data or "",
                actor_role=access.role or "",
                by=user,
                expiry=timedelta(hours=get_settings().invite_expiry_hours),
            )
            mailed = mail_invitation(session, get_settings(), invitation, access.site, token, user)
            detail = f"{invitation.email} invited as {invitation.role}"
            detail += " (mailed)" if mailed else ""
            audit.record(session, user, access.site, "invite.create", detail)
    except MemberError as exc:
        return _refused(domain, exc)
    g.invite_form = InviteForm(formdata=None)
    g.new_invite_link = script_base_url() + invite_path(token)
    g.new_invite_email = invitation.email
    g.new_invite_mailed = mailed
    return _page(domain, 200)


@bp.post("/sites/<domain>/settings/invitations/<int:invitation_id>/revoke")
def revoke_view(domain: str, invitation_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        invitation = revoke_invitation(session, access.site, invitation_id)
        if invitation is not None:
            detail = f"Invitation of {invitation.email} ({invitation.role}) revoked"
            audit.record(session, logged_in_user(), access.site, "invite.revoke", detail)
    if invitation is None:
        flash("That invitation is no longer pending: nothing to revoke.")
    else:
        flash(f"Invitation of {invitation.email} revoked: its link no longer works.")
    return _back(domain)
