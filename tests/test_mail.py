"""Mail (tracker.mail): the outbox sent to a real SMTP server (aiosmtpd), retries with
backoff while the server is down, two senders sending each mail once, and
`tracker email test` naming each failure in one line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.concurrency import on_two_servers
from tests.mailserver import PASSWORD, USER, SmtpServer
from tracker.cli import cli
from tracker.config import Settings
from tracker.db import Database
from tracker.db.models import OutboxMail, utcnow
from tracker.mail import (
    MAX_ATTEMPTS,
    MailError,
    drain,
    enqueue,
    is_configured,
    problems,
    read_unsubscribe_token,
    retry_delay,
    unsubscribe_headers,
    unsubscribe_token,
)


def _queue(db: Database, count: int = 1, **kwargs: object) -> list[int]:
    with db.session() as session:
        return [
            enqueue(
                session,
                to=f"ann{i}@example.com",
                subject=f"Report {i}",
                text=f"Visitors: {i}",
                html=f"<p>Visitors: <b>{i}</b></p>",
                **kwargs,  # type: ignore[arg-type]
            ).id
            for i in range(count)
        ]


def _mail(db: Database, mail_id: int) -> OutboxMail:
    with db.session() as session:
        mail = session.get(OutboxMail, mail_id)
        assert mail is not None
        return mail


def test_a_queued_mail_arrives_multipart_with_its_headers(
    db: Database, make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    settings = make_settings(**smtp_server.settings())
    url = "https://stats.example/unsubscribe/abc"
    [mail_id] = _queue(db, headers=unsubscribe_headers(url))
    assert drain(db, settings).sent == 1
    [message] = smtp_server.inbox.messages
    assert message["To"] == "ann0@example.com"
    assert message["From"] == "Tracker <reports@tracker.example>"
    assert message["Subject"] == "Report 0"
    assert message["List-Unsubscribe"] == f"<{url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content().strip() == "Visitors: 0"
    assert "<b>0</b>" in message.get_body(("html",)).get_content()
    assert _mail(db, mail_id).sent_at is not None
    assert drain(db, settings).sent == 0  # sent once


def test_server_down_retries_with_backoff_and_loses_nothing(
    db: Database,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    free_port: int,
) -> None:
    down = make_settings(**smtp_server.settings(smtp_port=free_port))
    up = make_settings(**smtp_server.settings())
    [mail_id] = _queue(db)
    start = utcnow()
    assert drain(db, down, now=start).failed == 1
    mail = _mail(db, mail_id)
    assert mail.attempts == 1 and mail.sent_at is None
    assert mail.last_error == (
        f"connection refused by 127.0.0.1:{free_port}: is the SMTP server running on that port?"
    )
    with db.session() as session:
        assert [m.id for m in problems(session, None)] == [mail_id]
    # Not due again before the first wait is over, even with the server back.
    assert drain(db, up, now=start + retry_delay(1) - timedelta(seconds=1)).sent == 0
    assert drain(db, down, now=start + retry_delay(1)).failed == 1
    assert _mail(db, mail_id).attempts == 2
    later = start + retry_delay(1) + retry_delay(2)
    assert drain(db, up, now=later).sent == 1
    assert len(smtp_server.inbox.messages) == 1
    with db.session() as session:
        assert problems(session, None) == []


def test_retries_double_then_give_up_kept_as_failed(
    db: Database, make_settings: Callable[..., Settings], free_port: int
) -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert retry_delay(30) == timedelta(hours=6)
    down = make_settings(smtp_host="127.0.0.1", smtp_port=free_port, mail_from="t@example.com")
    with db.session() as session:
        site_mail = enqueue(session, to="bob@example.com", subject="S", text="T").id
    now = utcnow()
    for _ in range(MAX_ATTEMPTS):
        drain(db, down, now=now)
        now += retry_delay(MAX_ATTEMPTS)
    mail = _mail(db, site_mail)
    assert mail.attempts == MAX_ATTEMPTS and mail.failed_at is not None
    assert drain(db, down, now=now + timedelta(days=2)).failed == 0  # given up: not tried
    with db.session() as session:
        assert [m.id for m in problems(session, None)] == [site_mail]


def test_two_senders_send_each_mail_once(
    db: Database,
    database_url: str,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
) -> None:
    settings = make_settings(**smtp_server.settings())
    ids = _queue(db, 30)

    def send(server: Database) -> None:
        while drain(server, settings).sent:
            pass

    on_two_servers(database_url, send)
    received = sorted(str(m["To"]) for m in smtp_server.inbox.messages)
    assert received == sorted(f"ann{i}@example.com" for i in range(30))
    with db.session() as session:
        sent = session.scalars(select(OutboxMail.id).where(OutboxMail.sent_at.is_not(None)))
        assert sorted(sent) == ids


def test_without_mail_settings_mails_wait(
    db: Database, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    assert not is_configured(settings)
    [mail_id] = _queue(db)
    assert drain(db, settings).sent == 0
    mail = _mail(db, mail_id)
    assert mail.attempts == 0 and mail.sent_at is None


def test_enqueue_refuses_what_is_not_an_address(db: Database) -> None:
    with db.session() as session:
        with pytest.raises(MailError, match="recipient: 'nobody' is not an email address"):
            enqueue(session, to="nobody", subject="S", text="T")
        with pytest.raises(MailError, match="is not an email address"):
            enqueue(session, to="a@example.com\r\nBcc: x@example.com", subject="S", text="T")
        with pytest.raises(MailError, match="header 'X-Tag': a name of letters"):
            enqueue(session, to="a@example.com", subject="S", text="T",
                    headers={"X-Tag": "a\r\nBcc: x@example.com"})  # fmt: skip


def test_a_subject_is_one_line(
    db: Database, make_settings: Callable[..., Settings], smtp_server: SmtpServer
) -> None:
    with db.session() as session:
        enqueue(session, to="a@example.com", subject="Report\r\nBcc: x@example.com", text="T")
    assert drain(db, make_settings(**smtp_server.settings())).sent == 1
    [message] = smtp_server.inbox.messages
    assert message["Subject"] == "Report Bcc: x@example.com"
    assert message["Bcc"] is None and smtp_server.inbox.envelopes == [["a@example.com"]]


def test_unsubscribe_token_is_signed() -> None:
    token = unsubscribe_token("key", {"recipient": 7})
    assert read_unsubscribe_token("key", token) == {"recipient": 7}
    assert read_unsubscribe_token("other key", token) is None
    assert read_unsubscribe_token("key", token[:-2] + "xx") is None


def _email_test(env: dict[str, str], address: str = "me@example.com") -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["email", "test", address], env=env, prog_name="tracker")
    return result.exit_code, result.output


def _env(**values: object) -> dict[str, str]:
    return {f"TRACKER_{k.upper()}": str(v) for k, v in values.items()} | {"TRACKER_CONFIG": ""}


def test_email_test_command_sends(smtp_server: SmtpServer) -> None:
    code, output = _email_test(_env(**smtp_server.settings(smtp_user=USER, smtp_password=PASSWORD)))
    assert code == 0, output
    assert output.strip() == (
        f"Sent a test mail to me@example.com through 127.0.0.1:{smtp_server.port} (none)."
    )
    [message] = smtp_server.inbox.messages
    assert message["Subject"] == "tracker: test mail"


def test_email_test_password_from_a_file(smtp_server: SmtpServer, tmp_path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    env = _env(**smtp_server.settings(smtp_user=USER, smtp_password_file=secret))
    assert _email_test(env)[0] == 0
    assert len(smtp_server.inbox.messages) == 1


def test_email_test_names_each_failure(smtp_server: SmtpServer, free_port: int) -> None:
    where = f"127.0.0.1:{smtp_server.port}"
    cases = [
        (
            smtp_server.settings(smtp_port=free_port),
            f"connection refused by 127.0.0.1:{free_port}: is the SMTP server running on "
            "that port?",
        ),
        (
            smtp_server.settings(smtp_user=USER, smtp_password="wrong"),
            f"authentication refused by {where} for user 'mailer': 535 5.7.8 "
            "Authentication credentials invalid",
        ),
        (
            smtp_server.settings(smtp_security="starttls"),
            f"TLS: {where} does not offer STARTTLS (set smtp_security to tls or none)",
        ),
        (smtp_server.settings(smtp_security="tls"), f"TLS failed with {where}: "),
        (
            smtp_server.settings(smtp_security="ssl"),
            "smtp_security must be one of starttls, tls, none, not 'ssl'",
        ),
        ({}, "mail is not configured: set smtp_host and mail_from"),
    ]
    for settings, message in cases:
        code, output = _email_test(_env(**settings))
        assert code == 1
        lines = output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {message}"), output
    assert smtp_server.inbox.messages == []
