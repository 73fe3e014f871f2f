"""Mail: the SMTP settings, a durable outbox sent by the jobs process, unsubscribe tokens.

Entry point, for any code that mails someone (reports, alerts, invitations):

    from tracker import mail
    if mail.is_configured(settings):
        mail.enqueue(session, to="ann@example.com", subject="...", text="...", html="...")

`enqueue` only adds a row to the outbox (`mail_outbox`) in the caller's transaction, so a
web request never waits for an SMTP server, and the mail exists exactly when the change
that caused it is committed. The jobs process's `send_mail` job calls `drain`, which sends
due mails over one SMTP connection; a failed send is tried again later, each wait twice
the last (RETRY_FIRST up to RETRY_MAX), and after MAX_ATTEMPTS the mail is kept, marked
failed, with its last error: `problems` lists those for the settings page. While SMTP is
not configured mails wait in the outbox and nothing else changes.

Mails are multipart (plain text, and HTML when given). A mail someone may stop receiving
carries `unsubscribe_headers(url)`: List-Unsubscribe and one-click List-Unsubscribe-Post
(RFC 8058), whose URL holds an `unsubscribe_token` signed with the secret key.

`send_test` sends one mail at once, for `tracker email test ADDRESS`; every failure is a
`MailError` of one line naming what failed (refused, authentication, TLS).
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from tracker.config import Settings
from tracker.db import Database
from tracker.db.models import OutboxMail, utcnow

SECURITY_MODES = ("starttls", "tls", "none")
SMTP_TIMEOUT_SECONDS = 20
BATCH = 50
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=6)
MAX_ATTEMPTS = 12  # about a day of retries with the waits above
# A claimed mail whose sender died is tried again after this; longer than a batch can take.
CLAIM_LEASE = timedelta(minutes=10)
KEEP_SENT = timedelta(days=30)
UNSUBSCRIBE_SALT = "tracker.unsubscribe"
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


class MailError(Exception):
    """Mail could not be sent; the message is one line saying what failed and where."""


def is_configured(settings: Settings) -> bool:
    """Whether this server can send mail (an SMTP host and a From address are set)."""
    return bool(settings.smtp_host and settings.mail_from)


def enqueue(
    session: Session,
    *,
    to: str,
    subject: str,
    text: str,
    html: str = "",
    headers: Mapping[str, str] | None = None,
    site_id: int | None = None,
) -> OutboxMail:
    """Queue one mail to `to` in the caller's transaction; the jobs process sends it.
    `site_id` names the site it is about, so the site's settings page shows its failures."""
    address = to.strip()
    if "@" not in parseaddr(address)[1] or any(c in address for c in "\r\n"):
        raise MailError(f"recipient: {to!r} is not an email address")
    for name, value in (headers or {}).items():
        if not HEADER_NAME.fullmatch(name) or any(c in value for c in "\r\n"):
            raise MailError(f"header {name!r}: a name of letters, digits and -, a one-line value")
    mail = OutboxMail(
        site_id=site_id,
        recipient=address,
        # One line: a line break in a header would end it (and could add others).
        subject=" ".join(subject.split())[:300],
        text_body=text,
        html_body=html,
        headers=dict(headers or {}),
        next_attempt_at=utcnow(),
        attempts=0,
        last_error="",
    )
    session.add(mail)
    session.flush()
    return mail


def unsubscribe_headers(url: str) -> dict[str, str]:
    """The headers that let a mail client offer "Unsubscribe" and do it in one click."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def unsubscribe_token(secret_key: str, payload: dict[str, Any]) -> str:
    return URLSafeSerializer(secret_key, salt=UNSUBSCRIBE_SALT).dumps(payload)


def read_unsubscribe_token(secret_key: str, token: str) -> dict[str, Any] | None:
    """The token's payload; None when it was not signed with this key (or was altered)."""
    try:
        payload = URLSafeSerializer(secret_key, salt=UNSUBSCRIBE_SALT).loads(token)
    except BadSignature:
        return None
    return payload if isinstance(payload, dict) else None


# Building and sending


def build_message(settings: Settings, mail: OutboxMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at)
    message["Message-ID"] = make_msgid(domain=_sender_domain(settings))
    for name, value in mail.headers.items():
        message[name] = value
    message.set_content(mail.text_body)
    if mail.html_body:
        message.add_alternative(mail.html_body, subtype="html")
    return message


def _sender_domain(settings: Settings) -> str:
    address = parseaddr(settings.mail_from)[1]
    try:
        return Address(addr_spec=address).domain or "localhost"
    except (ValueError, IndexError):
        return "localhost"


def _password(settings: Settings) -> str:
    if settings.smtp_password or not settings.smtp_password_file:
        return settings.smtp_password
    try:
        return Path(settings.smtp_password_file).read_text().strip()
    except OSError as exc:
        raise MailError(
            f"smtp_password_file {settings.smtp_password_file!r} cannot be read: {exc.strerror}"
        ) from None


def _where(settings: Settings) -> str:
    return f"{settings.smtp_host}:{settings.smtp_port}"


def describe(exc: BaseException, settings: Settings) -> str:
    """One line for the person fixing the settings: what failed, and where."""
    where = _where(settings)
    if isinstance(exc, MailError):
        return str(exc)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"authentication refused by {where} for user {settings.smtp_user!r}: {_reply(exc)}"
    if isinstance(exc, smtplib.SMTPNotSupportedError) and "STARTTLS" in str(exc):
        return f"TLS: {where} does not offer STARTTLS (set smtp_security to tls or none)"
    if isinstance(exc, smtplib.SMTPNotSupportedError | smtplib.SMTPException) and "AUTH" in str(
        exc
    ):
        return f"authentication: {where} offers no login (AUTH); leave smtp_user empty"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        reason = getattr(exc, "reason", None) or str(exc)
        return f"TLS failed with {where}: {reason}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = "; ".join(f"{to}: {_reply_of(*r)}" for to, r in exc.recipients.items())
        return f"recipient refused by {where}: {codes}"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender {exc.sender!r} refused by {where}: {_reply(exc)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{where} answered {_reply(exc)}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}: is the SMTP server running on that port?"
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"no answer from {where} within {SMTP_TIMEOUT_SECONDS} s"
    if isinstance(exc, socket.gaierror):
        return f"unknown SMTP host {settings.smtp_host!r}: {exc.strerror}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"{where} closed the connection: {exc}"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    return f"{where}: {exc}"


def _reply_of(code: int, message: bytes | str) -> str:
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return _reply_of(exc.smtp_code, exc.smtp_error)


@contextmanager
def smtp_connection(settings: Settings) -> Iterator[smtplib.SMTP]:
    """A connection to the configured server, secured and logged in; MailError otherwise."""
    if settings.smtp_security not in SECURITY_MODES:
        raise MailError(
            f"smtp_security must be one of {', '.join(SECURITY_MODES)}, "
            f"not {settings.smtp_security!r}"
        )
    if not is_configured(settings):
        raise MailError("mail is not configured: set smtp_host and mail_from")
    password = _password(settings)
    context = ssl.create_default_context()
    connection: smtplib.SMTP | None = None
    try:
        if settings.smtp_security == "tls":
            connection = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=SMTP_TIMEOUT_SECONDS,
                context=context,
            )
        else:
            connection = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS
            )
            if settings.smtp_security == "starttls":
                connection.starttls(context=context)
        if settings.smtp_user:
            connection.login(settings.smtp_user, password)
    except (OSError, smtplib.SMTPException) as exc:
        _close(connection)
        raise MailError(describe(exc, settings)) from None
    try:
        yield connection
    finally:
        _close(connection)


def _close(connection: smtplib.SMTP | None) -> None:
    if connection is None:
        return
    try:
        connection.quit()
    except (OSError, smtplib.SMTPException):
        connection.close()


def send_test(settings: Settings, to: str) -> None:
    """Send a short mail to `to` now, through the configured server (MailError if not)."""
    mail = OutboxMail(
        recipient=to,
        subject="tracker: test mail",
        text_body=f"This test mail was sent by tracker through {_where(settings)}.\n",
        html_body="",
        headers={},
        created_at=utcnow(),
    )
    with smtp_connection(settings) as connection:
        try:
            connection.send_message(build_message(settings, mail))
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(describe(exc, settings)) from None


# The outbox


@dataclass(frozen=True)
class DrainResult:
    sent: int = 0
    failed: int = 0  # attempts that failed (the mail is retried unless it gave up)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: doubling from RETRY_FIRST."""
    return min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX)


def _due(session: Session, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(OutboxMail.id)
            .where(
                OutboxMail.sent_at.is_(None),
                OutboxMail.failed_at.is_(None),
                OutboxMail.next_attempt_at <= now,
            )
            .order_by(OutboxMail.id)
            .limit(BATCH)
        )
    )


def _claim(db: Database, mail_id: int, now: datetime) -> bool:
    """Whether this process takes the mail: a second drainer (another server on the same
    database) finds it no longer due and leaves it."""
    with db.session() as session:
        claimed = session.execute(
            update(OutboxMail)
            .where(
                OutboxMail.id == mail_id,
                OutboxMail.sent_at.is_(None),
                OutboxMail.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + CLAIM_LEASE)
        )
        return claimed.rowcount == 1  # type: ignore[attr-defined]


def _record(db: Database, mail_id: int, now: datetime, error: str | None) -> None:
    with db.session() as session:
        mail = session.get(OutboxMail, mail_id)
        if mail is None:
            return
        if error is None:
            mail.sent_at = now
            mail.last_error = ""
            return
        mail.attempts += 1
        mail.last_error = error[:500]
        if mail.attempts >= MAX_ATTEMPTS:
            mail.failed_at = now
        else:
            mail.next_attempt_at = now + retry_delay(mail.attempts)


def drain(db: Database, settings: Settings, now: datetime | None = None) -> DrainResult:
    """Send the due mails of the outbox (up to BATCH) over one connection; record each
    outcome. Without mail settings, nothing happens: the mails wait."""
    if not is_configured(settings):
        return DrainResult()
    now = now or utcnow()
    with db.session() as session:
        due = _due(session, now)
        session.execute(
            delete(OutboxMail).where(
                OutboxMail.sent_at.is_not(None), OutboxMail.sent_at < now - KEEP_SENT
            )
        )
    claimed = [mail_id for mail_id in due if _claim(db, mail_id, now)]
    if not claimed:
        return DrainResult()
    try:
        with smtp_connection(settings) as connection:
            return _send_claimed(db, settings, connection, claimed, now)
    except MailError as exc:
        # The server cannot be reached: every mail waits for the next attempt.
        for mail_id in claimed:
            _record(db, mail_id, now, str(exc))
        return DrainResult(failed=len(claimed))


def _send_claimed(
    db: Database, settings: Settings, connection: smtplib.SMTP, claimed: list[int], now: datetime
) -> DrainResult:
    sent = failed = 0
    for index, mail_id in enumerate(claimed):
        with db.session() as session:
            mail = session.get(OutboxMail, mail_id)
            message = build_message(settings, mail) if mail is not None else None
        if message is None:
            continue
        try:
            connection.send_message(message)
        except smtplib.SMTPServerDisconnected as exc:
            # The connection is gone: this mail and the rest of the batch wait.
            for rest in claimed[index:]:
                _record(db, rest, now, describe(exc, settings))
            return DrainResult(sent=sent, failed=failed + len(claimed) - index)
        except (OSError, smtplib.SMTPException) as exc:
            _record(db, mail_id, now, describe(exc, settings))
            failed += 1
            continue
        _record(db, mail_id, now, None)
        sent += 1
    return DrainResult(sent=sent, failed=failed)


def problems(session: Session, site_id: int | None, limit: int = 10) -> list[OutboxMail]:
    """Mails about the site (None: to users) that failed at least once and are not sent:
    waiting for a retry or given up, newest first."""
    site_clause = OutboxMail.site_id.is_(None) if site_id is None else OutboxMail.site_id == site_id
    return list(
        session.scalars(
            select(OutboxMail)
            .where(
                site_clause,
                OutboxMail.sent_at.is_(None),
                or_(OutboxMail.attempts > 0, OutboxMail.failed_at.is_not(None)),
            )
            .order_by(OutboxMail.id.desc())
            .limit(limit)
        )
    )
