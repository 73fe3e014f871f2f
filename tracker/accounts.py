"""Users and API keys: creation, passwords and addresses, sessions, key verification and
scopes; what a server administrator does to accounts (the list of users, administrator
rights, two-factor rules, deletion). Used by the CLI and web, so both refuse the same
input with the same sentence."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from tracker.db.models import ApiKey, Site, SiteMember, User
from tracker.members import OWNER, ROLES
from tracker.twofactor import disable, is_enabled

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # with fullmatch
MAX_EMAIL = 254
# The password hash of an account whose user has not chosen a password yet (added by an
# administrator, who sends a link to set one): no password matches it.
NO_PASSWORD = "!"
# New accounts start their session generation here, at random: SQLite gives a deleted
# user's id to the next user when it was the largest, and a session cookie of the deleted
# account ("<id>:<generation>") must not log in as the new one.
GENERATION_START = 2**30
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
    if len(email) > MAX_EMAIL:
        raise AccountError(f"an email address is at most {MAX_EMAIL} characters")
    if not EMAIL_RE.fullmatch(email):
        raise AccountError(f"{email!r} is not a valid email address")
    return email


def user_count(session: Session) -> int:
    return session.scalar(select(func.count(User.id))) or 0


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def create_user(
    session: Session, email: str, password: str | None, *, is_admin: bool = False
) -> User:
    """A new account. `password` None: none yet, the user chooses one through a link
    (tracker.password_reset.issue_reset) and cannot log in before."""
    email = normalize_email(email)
    password_hash = (
        NO_PASSWORD if password is None else generate_password_hash(_checked_password(password))
    )
    if find_user(session, email):
        raise AccountError(f"a user with email {email!r} already exists")
    user = User(
        email=email,
        password_hash=password_hash,
        is_admin=is_admin,
        session_generation=secrets.randbelow(GENERATION_START),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # added by another request since find_user: the unique email
        raise AccountError(f"a user with email {email!r} already exists") from None
    return user


def has_password(user: User) -> bool:
    return user.password_hash != NO_PASSWORD


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
    if user and has_password(user) and check_password_hash(user.password_hash, password):
        return user
    # Same work for unknown emails (and accounts without a password yet), so timing does
    # not reveal which accounts exist.
    check_password_hash(_dummy_hash(), password)
    return None


@functools.cache
def _dummy_hash() -> str:
    """Hashed at the first failed login, not at import: every process, each CLI command's
    too, paid scrypt's tenth of a second of CPU as it started."""
    return generate_password_hash("not-a-real-password")


def note_login(session: Session, user_id: int, when: datetime) -> None:
    """Remember when the user logged in last."""
    session.execute(update(User).where(User.id == user_id).values(last_login_at=when))


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


@dataclass(frozen=True)
class UserSummary:
    """A user as the list of users shows them (`tracker users list`, /admin/users)."""

    id: int
    email: str
    is_admin: bool
    two_factor: bool
    require_2fa: bool
    has_password: bool
    created_at: datetime
    last_login_at: datetime | None
    roles: dict[str, int]  # sites they are a member of, by role (owner, admin, viewer)
    api_keys: int

    @property
    def sites(self) -> int:
        return sum(self.roles.values())


def list_users(session: Session) -> list[UserSummary]:
    """Every user by email, with their sites' roles counted: three queries, not one a user."""
    roles: dict[int, dict[str, int]] = {}
    by_role = select(SiteMember.user_id, SiteMember.role, func.count()).group_by(
        SiteMember.user_id, SiteMember.role
    )
    for user_id, role, count in session.execute(by_role):
        roles.setdefault(user_id, {})[role] = count
    key_counts = select(ApiKey.user_id, func.count()).group_by(ApiKey.user_id)
    keys = {user_id: count for user_id, count in session.execute(key_counts)}
    return [
        UserSummary(
            id=user.id,
            email=user.email,
            is_admin=user.is_admin,
            two_factor=is_enabled(user),
            require_2fa=user.require_2fa,
            has_password=has_password(user),
            created_at=as_utc(user.created_at),
            last_login_at=as_utc(user.last_login_at) if user.last_login_at else None,
            roles={role: roles.get(user.id, {}).get(role, 0) for role in ROLES},
            api_keys=keys.get(user.id, 0),
        )
        for user in session.scalars(select(User).order_by(User.email))
    ]


def _keep_an_administrator(session: Session, user: User) -> None:
    """Refuse a change that leaves the server without an administrator. The administrators'
    rows are locked, so two administrators demoting each other at once cannot both pass."""
    admins = session.scalars(select(User.id).where(User.is_admin).with_for_update())
    if not set(admins) - {user.id}:
        raise AccountError(
            f"{user.email} is the last server administrator: make another user an "
            "administrator first."
        )


def set_admin(session: Session, user: User, is_admin: bool, *, by: User | None) -> bool:
    """Make the user a server administrator, or not; whether that changed anything.
    AccountError for the last administrator, or an administrator (`by`; None: the command
    line) taking their own rights away: another administrator does that. It counts from
    the user's next request: sessions and API keys read the flag each time."""
    if user.is_admin == is_admin:
        return False
    if not is_admin:
        if by is not None and by.id == user.id:
            raise AccountError(
                "You cannot take away your own administrator rights: another administrator can."
            )
        _keep_an_administrator(session, user)
    user.is_admin = is_admin
    session.flush()
    return True


def require_2fa(session: Session, user: User, required: bool) -> None:
    """Require two-factor login of the user, or lift that (the server's rule for
    administrators still applies): without it set up, they are sent to set it up after
    the password, and cannot turn it off."""
    user.require_2fa = required
    session.flush()


def disable_2fa(session: Session, user: User) -> None:
    """Two-factor login off for a locked-out user (a lost phone, no recovery code left):
    the password alone logs in, and every session of the user ends."""
    if not is_enabled(user):
        raise AccountError(f"{user.email} has no two-factor login to turn off")
    disable(session, user)
    end_sessions(session, user.id)


@dataclass(frozen=True)
class DeletedUser:
    email: str
    sites: int  # memberships that went with the account
    api_keys: int  # revoked

    @property
    def detail(self) -> str:
        """What was deleted, as the audit log and the messages say it."""
        return (
            f"Deleted the account {self.email}: its membership of {self.sites} site(s) and "
            f"its {self.api_keys} API key(s)"
        )


def delete_user(session: Session, user: User, *, by: User | None) -> DeletedUser:
    """Delete the account: its memberships and API keys go, its sessions end (the row they
    name is gone), its audit entries keep its address. AccountError, and nothing deleted,
    for an administrator deleting themselves (`by`; None: the command line), the last
    administrator, or the last owner of a site (named: they make someone else owner first)."""
    if by is not None and by.id == user.id:
        raise AccountError("You cannot delete your own account: another administrator can.")
    if user.is_admin:
        _keep_an_administrator(session, user)
    owned = select(SiteMember.site_id).where(
        SiteMember.user_id == user.id, SiteMember.role == OWNER
    )
    # Locked like a membership change (tracker.members), so no other owner leaves meanwhile.
    sites = list(
        session.scalars(
            select(Site).where(Site.id.in_(owned)).order_by(Site.domain).with_for_update()
        )
    )
    alone = [
        site.domain
        for site in sites
        if session.scalar(
            select(func.count())
            .select_from(SiteMember)
            .where(SiteMember.site_id == site.id, SiteMember.role == OWNER)
        )
        == 1
    ]
    if alone:
        raise AccountError(
            f"{user.email} is the last owner of {', '.join(alone)}: make another member an "
            "owner first, or delete the site."
        )
    memberships = session.execute(delete(SiteMember).where(SiteMember.user_id == user.id))
    keys = session.execute(delete(ApiKey).where(ApiKey.user_id == user.id))
    deleted = DeletedUser(
        email=user.email,
        sites=memberships.rowcount,  # type: ignore[attr-defined]
        api_keys=keys.rowcount,  # type: ignore[attr-defined]
    )
    # Recovery codes and reset links go with the row (ON DELETE CASCADE); invitations it
    # sent and audit entries keep their rows without it (SET NULL).
    session.delete(user)
    session.flush()
    return deleted
