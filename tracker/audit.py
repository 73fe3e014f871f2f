"""The audit log: who changed what on which site, and when.

Every change to members, roles, invitations, API keys, goals and funnels, ad spend,
budgets, annotations, saved links, share links, settings and sites is recorded by the
web view, API endpoint or command that made it, in the same transaction, so an entry
exists exactly when the change does. `user` None is the command line.

Actions are `<thing>.<verb>` (member.role, invite.create, goal.delete...); `detail` is a
sentence for people. Site owners and admins read their site's latest entries on its
settings page; server administrators read every site's at /audit.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.db.models import AuditEntry, Site, User

SHOWN = 100  # entries a page lists, latest first
MAX_DETAIL = 1000


def record(
    session: Session, user: User | None, site: Site | None, action: str, detail: str = ""
) -> None:
    """Add an entry to the log, in the session's transaction."""
    session.add(
        AuditEntry(
            user_id=user.id if user else None,
            user_email=user.email if user else "",
            site_id=site.id if site else None,
            site_domain=site.domain if site else "",
            action=action,
            detail=detail[:MAX_DETAIL],
        )
    )


def latest(session: Session, site: Site | None = None, limit: int = SHOWN) -> list[AuditEntry]:
    """The latest entries, newest first: of one site, or of everything (site None)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if site is not None:
        query = query.where(AuditEntry.site_id == site.id)
    return list(session.scalars(query))
