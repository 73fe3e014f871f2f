"""People on a site and what their role lets them do.

- owner: everything, including deleting the site and making others owners;
- admin: settings, goals, costs, budgets, links, annotations, share links, and members
  (inviting, changing and removing admins and viewers, not owners);
- viewer: reads stats and exports, changes nothing.

A server administrator (User.is_admin) acts as an owner of every site without being a
member. A site keeps at least one owner: the last one cannot be removed, demoted or leave.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.db.models import Site, SiteMember, User

OWNER, ADMIN, VIEWER = "owner", "admin", "viewer"
ROLES = (OWNER, ADMIN, VIEWER)  # highest first, as lists and menus show them
_RANK = {VIEWER: 1, ADMIN: 2, OWNER: 3}
# What each role may do, in the words error messages use.
ROLE_NEEDS = {
    VIEWER: "a member",
    ADMIN: "an admin or an owner",
    OWNER: "an owner",
}


class MemberError(ValueError):
    """A user-facing refusal of a membership change; `status` is the HTTP answer."""

    status = 400


class MemberForbidden(MemberError):
    """The change needs a higher role than the one asking has (an admin making an owner)."""

    status = 403


def check_role(role: str) -> str:
    """`role` if it is one; MemberError with the choices otherwise."""
    if role not in _RANK:
        raise MemberError(f"{role[:40]!r} is not a role: choose owner, admin or viewer.")
    return role


def allows(role: str | None, need: str) -> bool:
    """Whether `role` (None: not a member) may do what `need` is required for."""
    return role is not None and _RANK[role] >= _RANK[need]


def role_of(session: Session, user: User | None, site: Site) -> str | None:
    """The user's role on the site: owner for a server administrator, None for a non-member."""
    if user is None:
        return None
    if user.is_admin:
        return OWNER
    query = select(SiteMember.role).where(
        SiteMember.site_id == site.id, SiteMember.user_id == user.id
    )
    return session.scalar(query)


def memberships(session: Session, user: User) -> dict[int, str]:
    """The user's role on each site they are a member of, by site id."""
    rows = session.execute(
        select(SiteMember.site_id, SiteMember.role).where(SiteMember.user_id == user.id)
    )
    return {site_id: role for site_id, role in rows}


@dataclass(frozen=True)
class Member:
    user_id: int
    email: str
    role: str


def list_members(session: Session, site: Site) -> list[Member]:
    """The site's members, owners first, then by email."""
    rank = {role: n for n, role in enumerate(ROLES)}
    rows = session.execute(
        select(SiteMember.user_id, User.email, SiteMember.role)
        .join(User, User.id == SiteMember.user_id)
        .where(SiteMember.site_id == site.id)
    )
    members = [Member(user_id, email, role) for user_id, email, role in rows]
    return sorted(members, key=lambda m: (rank.get(m.role, len(rank)), m.email))


def add_member(session: Session, site: Site, user: User, role: str) -> SiteMember:
    """Make the user a member with `role` (a new site's creator, an accepted invitation)."""
    member = SiteMember(site_id=site.id, user_id=user.id, role=check_role(role))
    session.add(member)
    session.flush()
    return member


def _membership(session: Session, site: Site, user_id: int) -> SiteMember:
    member = session.get(SiteMember, (site.id, user_id))
    if member is None:
        raise MemberError("That person is not a member of this site (any more).")
    return member


def _may_touch(actor_role: str, member: SiteMember, new_role: str | None) -> None:
    """Admins manage admins and viewers; owners (and server administrators) everyone."""
    if actor_role == OWNER:
        return
    if not allows(actor_role, ADMIN):
        raise MemberForbidden("Only the site's admins and owners may change its members.")
    if member.role == OWNER or new_role == OWNER:
        raise MemberForbidden("Only an owner may make someone an owner, or change an owner.")


def _lock_site(session: Session, site: Site) -> None:
    """Serialize membership changes of one site: two owners demoting each other at once
    must not both see the other one left. (SQLite has one writer at a time already.)"""
    session.execute(select(Site.id).where(Site.id == site.id).with_for_update())


def _keep_an_owner(session: Session, site: Site, message: str) -> None:
    """Refuse (roll back) a change that left the site without an owner."""
    session.flush()
    owners = session.scalar(
        select(func.count())
        .select_from(SiteMember)
        .where(SiteMember.site_id == site.id, SiteMember.role == OWNER)
    )
    if not owners:
        raise MemberError(message)


def _last_owner(email: str, site: Site) -> str:
    return f"{email} is the last owner of {site.domain}: make another member an owner first."


def change_role(
    session: Session, site: Site, actor_role: str, user_id: int, role: str
) -> tuple[str, str]:
    """Give the member `role`; (their email, their old role). MemberError says why not."""
    check_role(role)
    _lock_site(session, site)
    member = _membership(session, site, user_id)
    _may_touch(actor_role, member, role)
    old = member.role
    member.role = role
    email = _email(session, user_id)
    if old == OWNER:
        _keep_an_owner(session, site, _last_owner(email, site))
    return email, old


def remove_member(session: Session, site: Site, actor_role: str, user_id: int) -> Member:
    """Take the member off the site; what they were. MemberError says why not."""
    _lock_site(session, site)
    member = _membership(session, site, user_id)
    _may_touch(actor_role, member, None)
    removed = Member(user_id, _email(session, user_id), member.role)
    session.delete(member)
    if removed.role == OWNER:
        _keep_an_owner(session, site, _last_owner(removed.email, site))
    return removed


def leave_site(session: Session, site: Site, user: User) -> str:
    """The user stops being a member; their role was. MemberError for the last owner."""
    _lock_site(session, site)
    member = _membership(session, site, user.id)
    role = member.role
    session.delete(member)
    if role == OWNER:
        _keep_an_owner(
            session,
            site,
            f"You are the last owner of {site.domain}: make another member an owner first, "
            "or delete the site.",
        )
    return role


def _email(session: Session, user_id: int) -> str:
    return session.scalar(select(User.email).where(User.id == user_id)) or f"user {user_id}"
