"""Users and API keys: creation, passwords and addresses, sessions, key verification and
scopes. Used by the CLI and web."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from tracker.db.models import ApiKey, User

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # with fullmatch
MIN_PASSWORD_LENGTH = 8
API_KEY_PREFIX = "trk_"
# A key's last use is written when the stored one is older than this (lists show minutes):
# a write per request cost many times the read.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MIN_PREFIX = 8  # characters of a key's prefix that name it in `tracker apikeys revoke`
MAX_KEY_NAME = 100
READ, WRITE = "read", "write"
# What a key may do, by scope. A write key also reads: keys from before scopes did both.
SCOPES = {
    READ: "Read stats",
    WRITE: "Read stats; send events, costs, goals and notes",
}


class AccountError(ValueError):
    """A user-facing problem with an account operation."""


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.fullmatch(email) or len(email) > 254:
        raise AccountError(f"{email!r} is not a valid email address")
    return email


def user_count(session: Session) -> int:
    return session.scalar(select(func.count(User.id))) or 0


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def create_user(session: Session, email: str, password: str, *, is_admin: bool = False) -> User:
    email = normalize_email(email)
    _checked_password(password)
    if find_user(session, email):
        raise AccountError(f"a user with email {email!r} already exists")
    user = User(email=email, password_hash=generate_password_hash(password), is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def _checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return password


def set_password(session: Session, user: User, password: str) -> None:
    """A new password; every session of the user ends (a stolen one included)."""
    user.password_hash = generate_password_hash(_checked_password(password))
    end_sessions(session, user.id)


def change_email(session: Session, user: User, email: str) -> str:
    """The user logs in with `email` from now on; the normalized address."""
    email = normalize_email(email)
    other = find_user(session, email)
    if other is not None and other.id != user.id:
        raise AccountError(f"another account already uses {email!r}")
    user.email = email
    session.flush()
    return email


def end_sessions(session: Session, user_id: int) -> None:
    """Every login session of the user stops working: each carries the generation counted
    up here (tracker/web/auth.py)."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
    )


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = find_user(session, email)
    if user and check_password_hash(user.password_hash, password):
        return user
    # Same work for unknown emails, so timing does not reveal which accounts exist.
    check_password_hash(_DUMMY_HASH, password)
    return None


_DUMMY_HASH = generate_password_hash("not-a-real-password")


def bearer_token(header: str) -> str:
    """The key in an `Authorization: Bearer <key>` header value; ValueError for anything else."""
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ValueError("not a Bearer authorization")
    return key.strip()


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    session: Session, user: User, name: str = "", scope: str = WRITE
) -> tuple[ApiKey, str]:
    """Make a key; the plain key is returned once and never stored."""
    name = name.strip()
    if len(name) > MAX_KEY_NAME:
        raise AccountError(f"a key's name is at most {MAX_KEY_NAME} characters")
    if scope not in SCOPES:
        raise AccountError(f"{scope!r} is not a scope: give {' or '.join(SCOPES)}")
    plain = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id, name=name, prefix=plain[:12], key_hash=hash_api_key(plain), scope=scope
    )
    session.add(key)
    session.flush()
    return key, plain


@dataclass(frozen=True)
class ApiCaller:
    """Who an API key speaks for, and what it may do."""

    user: User
    scope: str

    @property
    def may_write(self) -> bool:
        return self.scope == WRITE


READ_ONLY_KEY = (
    "This API key's scope is read: it reads stats only. Create a key with the write scope "
    "to send events, costs, goals or notes."
)


def api_key_caller(session: Session, plain: str) -> ApiCaller | None:
    """The key's owner and scope, None for an unknown (or revoked) key.

    Read anew for every request, one indexed lookup: a revoked key, or its owner's
    changed admin flag, counts from the next request on, on every worker and server. (A
    per-worker cache kept a deleted key working, with its user's old flag, for a minute.)
    """
    row = session.execute(
        select(User, ApiKey.id, ApiKey.last_used_at, ApiKey.scope)
        .join(ApiKey, ApiKey.user_id == User.id)
        .where(ApiKey.key_hash == hash_api_key(plain))
    ).first()
    if row is None:
        return None
    user, key_id, last_used, scope = row
    now = datetime.now(UTC)
    if last_used is None or as_utc(last_used) < now - LAST_USED_RESOLUTION:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    return ApiCaller(user, scope)


def as_utc(moment: datetime) -> datetime:
    """A stored moment, aware: SQLite gives back naive datetimes for what was stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def find_api_key(session: Session, ident: str) -> ApiKey:
    """The key named by its id (as `tracker apikeys list` shows), by the start of its
    prefix (at least MIN_PREFIX characters; a trailing "…" is ignored) or by the whole
    key; AccountError when none or several match."""
    ident = ident.strip().removesuffix("…").removesuffix("...")
    if ident.isdigit():
        key = session.get(ApiKey, int(ident))
        if key is None:
            raise AccountError(f"no API key with id {ident}")
        return key
    whole = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(ident)))
    if whole is not None:
        return whole
    if len(ident) < MIN_PREFIX:
        raise AccountError(
            f"{ident!r}: give a key's id or at least {MIN_PREFIX} characters of its prefix"
        )
    # A prefix is the key's first 12 characters; any more given cannot be checked.
    start = ApiKey.prefix.startswith(ident[:12], autoescape=True)
    matches = list(session.scalars(select(ApiKey).where(start)))
    if not matches:
        raise AccountError(f"no API key starts with {ident!r}")
    if len(matches) > 1:
        ids = ", ".join(str(key.id) for key in matches)
        raise AccountError(f"{len(matches)} API keys start with {ident!r} (ids {ids}): give the id")
    return matches[0]


def api_keys_of(session: Session, user: User) -> list[ApiKey]:
    """The user's keys, oldest first."""
    return list(
        session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
    )


def describe_api_key(key: ApiKey, owner: User | None) -> str:
    """The key as the audit log names it (never the key itself)."""
    named = f" ({key.name})" if key.name else ""
    whose = owner.email if owner else "a deleted user"
    return f"Key {key.prefix}…{named}, scope {key.scope}, of {whose}"


def revoke_api_key(session: Session, key: ApiKey) -> None:
    """Delete the key: the next request with it is refused (401), on every server."""
    session.delete(key)
    session.flush()
