"""Sending the scheduled reports: each site's weekly and monthly report, once per period.

The `email_reports` job (every 10 minutes) looks at each site with recipients: the last
whole week or month in the site's time zone is due SEND_AFTER after it ended. Its mails go
to the outbox in the same transaction that inserts the period's `report_runs` row, whose
primary key (site, kind, period start) admits one insert ever: a second scheduler, another
server on the database, or a run after a restart finds the row and sends nothing. After
downtime only the last whole period is due, so a missed report is sent once, late, and
earlier missed ones are not (a stale report helps nobody).

While mail is not configured nothing is claimed, so the report goes out once it is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tracker import mail
from tracker.config import Settings
from tracker.db import Database
from tracker.db.models import ReportRecipient, ReportRun, Site
from tracker.digest import build_digest, last_complete_period, render_html, render_text
from tracker.stats.periods import local_midnight_ms
from tracker.subscribers import REPORT_KINDS, mail_recipients, recipients_of

# Beacons of the period's last minutes (engagement, a visit still going on) are stored by then.
SEND_AFTER = timedelta(hours=1)


def due_period(site: Site, kind: str, now: datetime) -> tuple[date, date] | None:
    """The period whose report is due now, or None (too early, or before the site)."""
    tz = ZoneInfo(site.timezone)
    start, end = last_complete_period(kind, now.astimezone(tz).date())
    ended = datetime.fromtimestamp(local_midnight_ms(end + timedelta(days=1), tz) / 1000, UTC)
    created = site.created_at if site.created_at.tzinfo else site.created_at.replace(tzinfo=UTC)
    if now < ended + SEND_AFTER or ended <= created:
        return None
    return start, end


def _claimed(db: Database, site_id: int, kind: str, start: date) -> bool:
    with db.session() as session:
        return session.get(ReportRun, (site_id, kind, start)) is not None


def send_report(db: Database, settings: Settings, site: Site, kind: str, now: datetime) -> int:
    """Queue the site's due report of `kind` unless it was; the number of mails queued."""
    period = due_period(site, kind, now)
    if period is None or _claimed(db, site.id, kind, period[0]):
        return 0
    with db.session() as session:
        if not recipients_of(session, site.id, kind):
            return 0
    digest = build_digest(db, site, kind, *period, settings.base_url)
    try:
        with db.session() as session:
            recipients = recipients_of(session, site.id, kind)
            session.add(ReportRun(site_id=site.id, kind=kind, period_start=period[0],
                                  claimed_at=now, recipients=len(recipients)))  # fmt: skip
            session.flush()  # the claim first: a second claimer fails here, queueing nothing
            mail_recipients(
                session,
                settings,
                recipients,
                digest.subject,
                lambda url: (render_text(digest, url), render_html(digest, url)),
            )
    except IntegrityError:
        return 0  # another process claimed it first and sent it
    return len(recipients)


def send_due_reports(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Every site's due reports; the number of mails queued."""
    if not mail.is_configured(settings):
        return 0
    now = now or datetime.now(UTC)
    with db.session() as session:
        sites = list(
            session.scalars(
                select(Site).where(Site.id.in_(select(ReportRecipient.site_id))).order_by(Site.id)
            )
        )
    return sum(
        send_report(db, settings, site, kind, now) for site in sites for kind in REPORT_KINDS
    )


def send_test_report(
    db: Database, settings: Settings, site: Site, kind: str, to: str, today: date
) -> None:
    """Queue the last whole period's report to `to` now, claiming nothing."""
    digest = build_digest(db, site, kind, *last_complete_period(kind, today), settings.base_url)
    with db.session() as session:
        mail.enqueue(
            session,
            to=to,
            subject=f"[Test] {digest.subject}",
            text=render_text(digest),
            html=render_html(digest),
            site_id=site.id,
        )
