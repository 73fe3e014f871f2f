"""Site gate: is this site registered, and may this page host send events for it?

Sites are cached for a few seconds per process, so the gate costs no database round trip
per event; a site added a moment ago is found on a cache miss.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from tracker.db import Database
from tracker.db.models import Site, SiteMember
from tracker.members import ADMIN, OWNER

CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class SiteInfo:
    id: int
    domain: str
    allowed_hostnames: tuple[str, ...]
    honour_dnt: bool = False
    # Users whose API keys may send events for the site: its owners and admins (server
    # administrators may for every site). Cached like the rest: a role change counts
    # within CACHE_SECONDS.
    writer_ids: frozenset[int] = frozenset()

    def allows_host(self, host: str) -> bool:
        """The domain, its subdomains (www. included) and the site's extra allowed hosts."""
        host = host.lower()
        domain = self.domain.split(":")[0]
        if host == domain or host.endswith("." + domain):
            return True
        return any(
            host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:]))
            for allowed in self.allowed_hostnames
        )


class SiteCache:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._sites: dict[str, tuple[float, SiteInfo]] = {}
        self._lock = threading.Lock()

    def get(self, domain: str) -> SiteInfo | None:
        domain = domain.strip().lower().removeprefix("www.")
        now = time.monotonic()
        cached = self._sites.get(domain)
        if cached and cached[0] > now:
            return cached[1]
        with self.db.session() as session:
            site = session.scalar(select(Site).where(Site.domain == domain))
            info = (
                SiteInfo(
                    id=site.id,
                    domain=site.domain,
                    allowed_hostnames=tuple(h.lower() for h in site.allowed_hostnames or ()),
                    honour_dnt=site.honour_dnt,
                    writer_ids=frozenset(
                        session.scalars(
                            select(SiteMember.user_id).where(
                                SiteMember.site_id == site.id,
                                SiteMember.role.in_((OWNER, ADMIN)),
                            )
                        )
                    ),
                )
                if site
                else None
            )
        # Unknown sites are not cached: a site added now must work on its next event.
        with self._lock:
            if info is None:
                self._sites.pop(domain, None)
            else:
                self._sites[domain] = (now + CACHE_SECONDS, info)
        return info
