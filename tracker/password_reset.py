"""Password reset by mail: a single-use link that lets its holder choose a new password.

The link carries a random token; only its SHA-256 is stored (as for API keys and
invitations). It works once, for RESET_LIFETIME, and a new password ends every session of
the account. Asking for a link answers the same whether or not an account uses the address,
so the form does not tell who has one; a second request within RESEND_AFTER sends nothing
more, so the form cannot flood someone's mailbox. A reset does not turn two-factor login
off: the code is still asked for at the next login. Every function takes `now` so tests can
move the clock.

A server administrator gives links too (the page of users): to a new account, which has no
password until its user chooses one through it (valid as long as an invitation), or to a
user who forgot theirs. Mailed when the server sends mail and knows its address
(`base_url`), shown to copy otherwise.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tracker import mail
from tracker.accounts import as_utc, find_user, hash_api_key, set_password
from tracker.config import Settings
from tracker.db.models import PasswordReset, User

RESET_LIFETIME = timedelta(hours=1)
RESEND_AFTER = timedelta(minutes=5)
RESET_PATH = "/reset/{token}"  # the web route (tracker/web/password_reset.py)


class ResetUnusable(ValueError):
    """A link that resets nothing: unknown (`status` 404), used or expired (410)."""

    def __init__(self, message: str, status: int = 410) -> None:
        super().__init__(message)
        self.status = status


def reset_path(token: str) -> str:
    return RESET_PATH.format(token=token)


def _utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def request_reset(
    session: Session, email: str, now: datetime | None = None
) -> tuple[User, str] | None:
    """A new link's user and token for the account using `email`; None when there is no such
    account, or a link was sent less than RESEND_AFTER ago."""
    now = _utc(now)
    user = find_user(session, email)
    if user is None:
        return None
    recent = select(PasswordReset.id).where(
        PasswordReset.user_id == user.id, PasswordReset.created_at > now - RESEND_AFTER
    )
    if session.scalar(recent.limit(1)) is not None:
        return None
    return user, issue_reset(session, user, now=now)


def issue_reset(
    session: Session,
    user: User,
    *,
    lifetime: timedelta = RESET_LIFETIME,
    now: datetime | None = None,
) -> str:
    """A new link's token for the user, whatever was sent before (a server administrator
    asks, not a stranger at the form); links sent before keep working until used."""
    moment = _utc(now)
    token = secrets.token_urlsafe(32)
    session.add(
        PasswordReset(
            user_id=user.id,
            token_hash=hash_api_key(token),
            created_at=moment,
            expires_at=moment + lifetime,
        )
    )
    session.flush()
    return token


def can_mail_links(settings: Settings) -> bool:
    """Whether links can be mailed: the server sends mail and knows its address. Links are
    built on `base_url` only, never on a request's Host header, which whoever posts a form
    chooses (the mail would carry the token to their server)."""
    return mail.is_configured(settings) and bool(settings.base_url)


def link_url(settings: Settings, token: str) -> str:
    return settings.base_url.rstrip("/") + reset_path(token)


def mail_reset(session: Session, settings: Settings, user: User, token: str) -> None:
    """Queue the mail of a reset link, in the session's transaction (can_mail_links first)."""
    minutes = int(RESET_LIFETIME.total_seconds() // 60)
    text = (
        f"Someone, hopefully you, asked to reset the password of the tracker account "
        f"{user.email}.\n\n"
        f"Open this link within {minutes} minutes to choose a new password (it works once):\n"
        f"{link_url(settings, token)}\n\n"
        "If it was not you, ignore this mail: your password stays as it is.\n"
    )
    mail.enqueue(session, to=user.email, subject="Reset your tracker password", text=text)


def mail_welcome(
    session: Session, settings: Settings, user: User, token: str, expires: datetime, by: User
) -> None:
    """Queue the mail of a new account's link to choose its password (can_mail_links first)."""
    text = (
        f"{by.email} made you an account on the web analytics server {settings.base_url}, "
        f"to log in as {user.email}.\n\n"
        f"Open this link to choose your password (it works once, until "
        f"{as_utc(expires):%Y-%m-%d %H:%M} UTC):\n{link_url(settings, token)}\n\n"
        "Not expecting this? Ignore this mail: nobody can log in before a password is chosen.\n"
    )
    mail.enqueue(session, to=user.email, subject="Your tracker account", text=text)


def open_reset(session: Session, token: str, now: datetime | None = None) -> PasswordReset:
    """The reset a link names, while it can be used; else ResetUnusable saying why."""
    reset = session.scalar(
        select(PasswordReset).where(PasswordReset.token_hash == hash_api_key(token))
    )
    if reset is None:
        raise ResetUnusable(
            "This reset link is not valid: check that it was copied whole, or ask for a new one.",
            404,
        )
    if reset.used_at is not None:
        raise ResetUnusable("This reset link was used already: ask for a new one if need be.")
    if as_utc(reset.expires_at) <= _utc(now):
        # Links last an hour, or longer when an administrator sent one to a new account.
        when = as_utc(reset.expires_at).strftime("%Y-%m-%d %H:%M UTC")
        raise ResetUnusable(f"This link has expired (on {when}): ask for a new one.")
    return reset


def use_reset(session: Session, token: str, password: str, now: datetime | None = None) -> User:
    """Set the new password through the link; the link, and any other of the user's still
    open, stop working. AccountError for a password too short (the link stays usable)."""
    reset = open_reset(session, token, now)
    user = session.get(User, reset.user_id)
    assert user is not None  # deleting a user deletes their resets
    set_password(session, user, password)
    session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=_utc(now))
    )
    return user
