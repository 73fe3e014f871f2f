"""Two-factor login: a time-based code (TOTP, RFC 6238) from an authenticator app, or a
single-use recovery code, asked after the password.

Enrolling stores a new secret that does nothing until a code from the app confirms it
(so a mistyped scan cannot lock anyone out); confirming turns it on and gives ten recovery
codes, shown once and stored as SHA-256 digests (they are random, like API keys, so a slow
hash adds nothing). A code is taken once: the time step of the last one is kept, and a code
of that step or an earlier one is refused, so a code seen over a shoulder cannot be replayed.
A clock one step (30 s) off either way is accepted, as authenticator apps expect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import pyotp
import segno
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tracker.config import Settings
from tracker.db.models import RecoveryCode, SiteMember, User
from tracker.members import ADMIN, OWNER

ISSUER = "tracker"  # the name authenticator apps list the account under
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
RECOVERY_LENGTH = 10  # ~49 bits each


class TwoFactorError(ValueError):
    """A code that does not fit; the sentence says why."""


def is_enabled(user: User) -> bool:
    return user.totp_enabled_at is not None


def required_for(session: Session, user: User, settings: Settings) -> bool:
    """Whether the server makes this user use two-factor login: required of the user alone
    (`User.require_2fa`), or by `require_2fa_for_admins` of server administrators and of
    owners and admins of any site."""
    if user.require_2fa:
        return True
    if not settings.require_2fa_for_admins:
        return False
    if user.is_admin:
        return True
    manages = select(SiteMember.site_id).where(
        SiteMember.user_id == user.id, SiteMember.role.in_((OWNER, ADMIN))
    )
    return session.scalar(manages.limit(1)) is not None


def start_enrolment(user: User) -> str:
    """A new secret for the user, off until `confirm` (a second enrolment starts over)."""
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled_at = None
    user.totp_last_step = None
    return user.totp_secret


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// address the QR code carries."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code of `uri` as an inline <svg> element, drawn here (no remote image)."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#111", light="#fff")


def confirm(session: Session, user: User, code: str, now: datetime | None = None) -> list[str]:
    """Turn two-factor login on with a first code from the app; the new recovery codes."""
    if user.totp_secret is None or is_enabled(user):
        raise TwoFactorError("Start the set-up again: there is no code to confirm.")
    if not _take_totp(user, code, now):
        raise TwoFactorError(
            "That code does not match. Check the phone's clock and type the code the app shows now."
        )
    user.totp_enabled_at = _utc(now)
    return new_recovery_codes(session, user)


def new_recovery_codes(session: Session, user: User) -> list[str]:
    """Replace the user's recovery codes with new ones; the plain codes, to show once."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_digest(c)) for c in codes)
    session.flush()
    return codes


def recovery_codes_left(session: Session, user: User) -> int:
    query = select(func.count(RecoveryCode.id)).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
    )
    return session.scalar(query) or 0


def check_code(session: Session, user: User, code: str, now: datetime | None = None) -> bool:
    """Whether `code` (the app's six digits, or an unused recovery code) lets the user in;
    either is used up by it."""
    if not is_enabled(user):
        return False
    plain = _normalize(code)
    if plain.isdigit() and len(plain) == 6:
        return _take_totp(user, plain, now)
    used = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _digest(plain),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=_utc(now))
    )
    return bool(used.rowcount)  # type: ignore[attr-defined]


def disable(session: Session, user: User) -> None:
    """Two-factor login off: the secret and the recovery codes are deleted."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def _take_totp(user: User, code: str, now: datetime | None) -> bool:
    """Whether `code` is the app's code for now (a step either way), not taken before."""
    assert user.totp_secret is not None
    totp = pyotp.TOTP(user.totp_secret)
    plain = _normalize(code)
    current = int(_utc(now).timestamp()) // totp.interval
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), plain):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False
            user.totp_last_step = step
            return True
    return False


def _recovery_code() -> str:
    chars = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return f"{chars[:5]}-{chars[5:]}"


def _normalize(code: str) -> str:
    """A code as typed: spaces and dashes dropped, letters lower-cased."""
    return "".join(code.split()).replace("-", "").lower()


def _digest(code: str) -> str:
    return hashlib.sha256(_normalize(code).encode()).hexdigest()


def _utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)
