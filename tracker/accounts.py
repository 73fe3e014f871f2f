"""Users and API keys: creation, password checks, key verification. Used by the CLI and web."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from tracker.db.models import ApiKey, User

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # with fullmatch
MIN_PASSWORD_LENGTH = 8
API_KEY_PREFIX = "trk_"


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
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if find_user(session, email):
        raise AccountError(f"a user with email {email!r} already exists")
    user = User(email=email, password_hash=generate_password_hash(password), is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


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


def create_api_key(session: Session, user: User, name: str = "") -> tuple[ApiKey, str]:
    """Make a key; the plain key is returned once and never stored."""
    plain = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(user_id=user.id, name=name, prefix=plain[:12], key_hash=hash_api_key(plain))
    session.add(key)
    session.flush()
    return key, plain


def user_for_api_key(session: Session, plain: str) -> User | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(plain)))
    if key is None:
        return None
    key.last_used_at = datetime.now(UTC)
    return session.get(User, key.user_id)
