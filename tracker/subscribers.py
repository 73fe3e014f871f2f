"""Who receives a site's mail: addresses (members' or any other) that get the weekly and/or
monthly report and the site's alerts, and unsubscribing from them with the signed link
every such mail carries (tracker.mail's one-click List-Unsubscribe)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.accounts import AccountError, normalize_email
from tracker.config import Settings
from tracker.db.models import ReportRecipient, Site
from tracker.mail import enqueue, read_unsubscribe_token, unsubscribe_headers, unsubscribe_token

# What a recipient may receive: the two reports, and alerts.
WEEKLY, MONTHLY, ALERTS = "weekly", "monthly", "alerts"
REPORT_KINDS = (WEEKLY, MONTHLY)
UNSUBSCRIBE_PATH = "/unsubscribe/"


class RecipientError(ValueError):
    """A recipient that cannot be saved; the message says why."""


def list_recipients(session: Session, site: Site) -> list[ReportRecipient]:
    return list(
        session.scalars(
            select(ReportRecipient)
            .where(ReportRecipient.site_id == site.id)
            .order_by(ReportRecipient.email)
        )
    )


def recipients_of(session: Session, site_id: int, kind: str) -> list[ReportRecipient]:
    """The site's recipients of `kind` (WEEKLY, MONTHLY or ALERTS)."""
    column = getattr(ReportRecipient, kind)
    return list(
        session.scalars(
            select(ReportRecipient)
            .where(ReportRecipient.site_id == site_id, column.is_(True))
            .order_by(ReportRecipient.email)
        )
    )


def set_recipient(
    session: Session, site: Site, email: str, *, weekly: bool, monthly: bool, alerts: bool
) -> ReportRecipient:
    """Add the address, or change what it receives when it is there already."""
    try:
        address = normalize_email(email)
    except AccountError as exc:
        raise RecipientError(str(exc).capitalize() + ".") from None
    if not (weekly or monthly or alerts):
        raise RecipientError("Choose what to send: the weekly report, the monthly one, alerts.")
    recipient = session.scalar(
        select(ReportRecipient).where(
            ReportRecipient.site_id == site.id, ReportRecipient.email == address
        )
    )
    if recipient is None:
        recipient = ReportRecipient(site_id=site.id, email=address)
        session.add(recipient)
    recipient.weekly, recipient.monthly, recipient.alerts = weekly, monthly, alerts
    session.flush()
    return recipient


def remove_recipient(session: Session, site: Site, recipient_id: int) -> ReportRecipient | None:
    recipient = session.get(ReportRecipient, recipient_id)
    if recipient is None or recipient.site_id != site.id:
        return None
    session.delete(recipient)
    return recipient


def unsubscribe_url(settings: Settings, recipient: ReportRecipient) -> str:
    """The recipient's link to stop every mail of this site (absolute with base_url)."""
    token = unsubscribe_token(settings.secret_key, {"r": recipient.id, "e": recipient.email})
    return f"{settings.base_url.rstrip('/')}{UNSUBSCRIBE_PATH}{token}"


def mail_recipients(
    session: Session,
    settings: Settings,
    recipients: list[ReportRecipient],
    subject: str,
    render: Callable[[str], tuple[str, str]],
) -> None:
    """Queue one mail per recipient: `render(unsubscribe_url)` gives its text and HTML,
    each with the recipient's own link, also in the List-Unsubscribe headers."""
    for recipient in recipients:
        url = unsubscribe_url(settings, recipient)
        text, html = render(url)
        enqueue(
            session,
            to=recipient.email,
            subject=subject,
            text=text,
            html=html,
            headers=unsubscribe_headers(url),
            site_id=recipient.site_id,
        )


@dataclass(frozen=True)
class Unsubscribed:
    email: str
    site_id: int
    domain: str


def find_unsubscribe(session: Session, secret_key: str, token: str) -> Unsubscribed | None:
    """Whom the link names (None: not a link of ours, or already used)."""
    recipient = _recipient(session, secret_key, token)
    return None if recipient is None else _unsubscribed(session, recipient)


def unsubscribe(session: Session, secret_key: str, token: str) -> Unsubscribed | None:
    """Stop every mail of the site to the link's address; None if it gets none already."""
    recipient = _recipient(session, secret_key, token)
    if recipient is None:
        return None
    found = _unsubscribed(session, recipient)
    session.delete(recipient)
    return found


def _unsubscribed(session: Session, recipient: ReportRecipient) -> Unsubscribed:
    site = session.get(Site, recipient.site_id)
    return Unsubscribed(recipient.email, recipient.site_id, site.domain if site else "")


def _recipient(session: Session, secret_key: str, token: str) -> ReportRecipient | None:
    payload = read_unsubscribe_token(secret_key, token)
    if payload is None or not isinstance(payload.get("r"), int):
        return None
    recipient = session.get(ReportRecipient, payload["r"])
    # The address too: an id of a deleted recipient may be given to another address.
    if recipient is None or recipient.email != payload.get("e"):
        return None
    return recipient
