"""Invitations: a single-use link that makes its holder a member of a site with a role.

The link carries a random token; only its SHA-256 is stored (as for API keys), so the
database alone opens nothing. A link works once, until it expires (`invite_expiry_hours`,
72 by default) or is revoked; each of those, and an unknown token, has its own sentence.
When the server sends mail and knows its address (`base_url`), `mail_invitation` mails the
link; else whoever invites copies it (web page or `tracker invite`) and sends it.

Accepting: someone without an account chooses a password and gets one with the invited
address; someone with one logs in with that address and joins. Every function takes
`now` so tests can move the clock.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from tracker import mail
from tracker.accounts import (
    AccountError,
    as_utc,
    create_user,
    find_user,
    hash_api_key,
    normalize_email,
)
from tracker.config import Settings
from tracker.db.models import Invitation, Site, SiteMember, User
from tracker.members import (
    OWNER,
    MemberError,
    MemberForbidden,
    add_member,
    allows,
    check_role,
)

MAX_EMAIL = 254
INVITE_PATH = "/invite/{token}"  # the web route (tracker/web/invitations.py)
PENDING, ACCEPTED, REVOKED, EXPIRED = "pending", "accepted", "revoked", "expired"


class InviteError(MemberError):
    """A refused invitation (bad address, duplicate...): the sentence says why."""


class InviteUnusable(ValueError):
    """A link that opens nothing: unknown (`status` 404), or used, revoked, expired (410)."""

    def __init__(self, message: str, status: int = 410) -> None:
        super().__init__(message)
        self.status = status


def invite_path(token: str) -> str:
    return INVITE_PATH.format(token=token)


def mail_invitation(
    session: Session,
    settings: Settings,
    invitation: Invitation,
    site: Site,
    token: str,
    by: User | None,
) -> bool:
    """Queue the invitation's mail, in the session's transaction, when this server sends
    mail and knows its address; whether it did. The link is built on `base_url` only, never
    on a request's Host header, which whoever posts the form chooses."""
    if not (mail.is_configured(settings) and settings.base_url):
        return False
    link = settings.base_url.rstrip("/") + invite_path(token)
    who = by.email if by else "An administrator"
    text = (
        f"{who} invites you to see {site.domain}'s web analytics as {invitation.role}.\n\n"
        f"Open this link to join (it works once, until "
        f"{as_utc(invitation.expires_at):%Y-%m-%d %H:%M} UTC):\n{link}\n\n"
        "Not expecting this? Ignore this mail: nothing happens without the link.\n"
    )
    subject = f"You are invited to {site.domain}'s analytics"
    mail.enqueue(session, to=invitation.email, subject=subject, text=text, site_id=site.id)
    return True


def _utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _email(email: str) -> str:
    if len(email.strip()) > MAX_EMAIL:
        raise InviteError(f"The email address is longer than {MAX_EMAIL} characters.")
    try:
        return normalize_email(email)
    except AccountError:
        raise InviteError(f"{email.strip()!r} is not a valid email address.") from None


def state(invitation: Invitation, now: datetime | None = None) -> str:
    """pending, accepted, revoked or expired."""
    if invitation.accepted_at is not None:
        return ACCEPTED
    if invitation.revoked_at is not None:
        return REVOKED
    if as_utc(invitation.expires_at) <= _utc(now):
        return EXPIRED
    return PENDING


def _pending_query(site: Site, now: datetime) -> Select[Invitation]:
    return select(Invitation).where(
        Invitation.site_id == site.id,
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )


def create_invitation(
    session: Session,
    site: Site,
    email: str,
    role: str,
    *,
    actor_role: str,
    by: User | None,
    expiry: timedelta,
    now: datetime | None = None,
) -> tuple[Invitation, str]:
    """A new invitation and its token (returned once, never stored). InviteError for a bad
    address or role, a member already, or a pending invitation to the same address;
    MemberForbidden when an admin invites an owner."""
    address = _email(email)
    check_role(role)
    if role == OWNER and actor_role != OWNER:
        raise MemberForbidden("Only an owner may invite an owner.")
    moment = _utc(now)
    user = find_user(session, address)
    if user is not None:
        member = session.get(SiteMember, (site.id, user.id))
        if member is not None:
            raise InviteError(
                f"{address} is already a member of {site.domain} ({member.role}): change "
                "their role in the list of members instead."
            )
    if session.scalar(_pending_query(site, moment).where(Invitation.email == address)):
        raise InviteError(
            f"{address} already has a pending invitation to {site.domain}: revoke it first "
            "to send a new one."
        )
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        site_id=site.id,
        email=address,
        role=role,
        token_hash=hash_api_key(token),  # the same SHA-256 as API keys
        invited_by_id=by.id if by else None,
        created_at=moment,
        expires_at=moment + expiry,
    )
    session.add(invitation)
    session.flush()
    return invitation, token


def pending_invitations(
    session: Session, site: Site, now: datetime | None = None
) -> list[Invitation]:
    """The site's invitations that can still be accepted, oldest first."""
    return list(session.scalars(_pending_query(site, _utc(now)).order_by(Invitation.id)))


def revoke_invitation(
    session: Session, site: Site, invitation_id: int, now: datetime | None = None
) -> Invitation | None:
    """Withdraw a pending invitation of this site; None when there is none such."""
    moment = _utc(now)
    invitation = session.scalar(_pending_query(site, moment).where(Invitation.id == invitation_id))
    if invitation is not None:
        invitation.revoked_at = moment
        session.flush()
    return invitation


def open_invitation(session: Session, token: str, now: datetime | None = None) -> Invitation:
    """The pending invitation of a link; InviteUnusable saying why the link opens nothing."""
    invitation = session.scalar(
        select(Invitation).where(Invitation.token_hash == hash_api_key(token))
    )
    if invitation is None:
        raise InviteUnusable(
            "This invitation link is not valid: check that it was copied whole, or ask the "
            "person who invited you for a new one.",
            404,
        )
    found = state(invitation, now)
    if found == ACCEPTED:
        raise InviteUnusable(
            "This invitation was already used: an invitation link works once. Log in to see "
            "the site, or ask for a new invitation."
        )
    if found == REVOKED:
        raise InviteUnusable(
            "This invitation was withdrawn. Ask the person who invited you for a new one."
        )
    if found == EXPIRED:
        when = as_utc(invitation.expires_at).strftime("%Y-%m-%d %H:%M UTC")
        raise InviteUnusable(
            f"This invitation expired on {when}. Ask the person who invited you for a new one."
        )
    return invitation


def accept(
    session: Session, token: str, user: User, now: datetime | None = None
) -> tuple[Invitation, str]:
    """The user (whose address must be the invited one) joins the site; the invitation and
    the role they now have. A member already keeps the higher of the two roles."""
    invitation = open_invitation(session, token, now)
    if user.email != invitation.email:
        raise InviteError(
            f"This invitation is for {invitation.email}, and you are logged in as "
            f"{user.email}: log out, then open the link again."
        )
    # Used once even when two tabs accept at the same moment: only one update matches.
    used = session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None))
        .values(accepted_at=_utc(now))
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise InviteUnusable("This invitation was already used: an invitation link works once.")
    site = session.get(Site, invitation.site_id)
    assert site is not None  # deleting a site deletes its invitations
    member = session.get(SiteMember, (site.id, user.id))
    if member is None:
        add_member(session, site, user, invitation.role)
        return invitation, invitation.role
    if not allows(member.role, invitation.role):
        member.role = invitation.role
    return invitation, member.role


def accept_new_account(
    session: Session, token: str, password: str, now: datetime | None = None
) -> tuple[User, Invitation, str]:
    """An account for the invited address with this password, which then joins the site.
    AccountError (short password, the address has an account) changes nothing."""
    invitation = open_invitation(session, token, now)
    user = create_user(session, invitation.email, password)
    accepted, role = accept(session, token, user, now)
    return user, accepted, role
