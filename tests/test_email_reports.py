"""Scheduled email reports (tracker.digest, tracker.report_schedule, tracker.web.email_reports):
the numbers are the stats page's for the same period, in the site's time zone across a DST
change; each period is sent once, with two claimers at once and after downtime; the mails
reach a real SMTP server and their unsubscribe link works in one click."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.concurrency import on_two_servers
from tests.helpers import add_user, csrf_token, log_in, store_events
from tests.mailserver import SmtpServer
from tracker.config import Settings
from tracker.costs import parse_cost_json, store_costs
from tracker.db import Database
from tracker.db.models import OutboxMail, ReportRecipient, ReportRun, Site, User
from tracker.digest import build_digest, last_complete_period, page_params
from tracker.goals import add_goal
from tracker.mail import drain
from tracker.members import OWNER
from tracker.report_schedule import send_due_reports
from tracker.sites import add_site, find_site
from tracker.stats import run
from tracker.subscribers import set_recipient
from tracker.web.access import SiteAccess
from tracker.web.dashboard import kpis, page_query
from tracker.web.reports import REPORTS

SITE = "shop.example"
# Europe/Paris moves to summer time on Sunday 29 March 2026: that week is 167 hours long.
WEEK = (date(2026, 3, 23), date(2026, 3, 29))
AFTER_WEEK = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # Monday 10:00 in Paris


def _visit(ip: str, when: str, url: str = f"https://{SITE}/", **extra: str) -> dict[str, str]:
    return {"ip": ip, "timestamp": when, "url": url, **extra}


# Visitors of the DST week in Paris time, and around its edges.
EVENTS = [
    # Monday 23 March 00:30 in Paris is Sunday 22 March 23:30 UTC: in the week.
    _visit("203.0.113.1", "2026-03-22T23:30:00Z", f"https://{SITE}/?utm_source=news"),
    _visit("203.0.113.2", "2026-03-25T10:00:00Z", f"https://{SITE}/pricing"),
    _visit("203.0.113.2", "2026-03-25T10:01:00Z", f"https://{SITE}/signup"),
    _visit("203.0.113.3", "2026-03-26T09:00:00Z", f"https://{SITE}/?utm_source=google&utm_medium=cpc&utm_campaign=spring"),
    # Sunday 29 March 23:30 in Paris (summer time) is 21:30 UTC: in the week.
    _visit("203.0.113.4", "2026-03-29T21:30:00Z", f"https://{SITE}/pricing"),
    # Monday 30 March 00:30 in Paris is 29 March 22:30 UTC: the next week.
    _visit("203.0.113.5", "2026-03-29T22:30:00Z"),
    # Sunday 22 March 23:00 in Paris (winter time) is 22:00 UTC: the week before.
    _visit("203.0.113.6", "2026-03-22T22:00:00Z"),
    _visit("203.0.113.7", "2026-03-17T12:00:00Z"),
]  # fmt: skip


SPRING_COST = {"date": "2026-03-26", "utm_source": "google", "utm_medium": "cpc",
               "utm_campaign": "Spring", "cost": "12.30", "currency": "EUR"}  # fmt: skip


@pytest.fixture
def mail_app(make_app: Callable[..., Flask], smtp_server: SmtpServer) -> Flask:
    app = make_app(**smtp_server.settings(), base_url="https://stats.example")
    db: Database = app.extensions["tracker.db"]
    store_events(app, EVENTS, site=SITE)
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
        site.timezone = "Europe/Paris"
        site.created_at = datetime(2026, 3, 1, tzinfo=UTC)  # no February report
        set_recipient(session, site, "ann@example.com", weekly=True, monthly=True, alerts=False)
        add_goal(session, site, name="Signup", kind="page", pattern="/signup")
        store_costs(session, site, parse_cost_json([SPRING_COST]).rows)
        set_recipient(session, site, "bob@example.com", weekly=True, monthly=False, alerts=True)
    return app


def _site(db: Database) -> Site:
    with db.session() as session:
        site = find_site(session, SITE)
        assert site is not None
        return site


def _settings(app: Flask) -> Settings:
    return app.extensions["tracker.settings"]


def test_week_and_month_in_the_site_time_zone() -> None:
    assert last_complete_period("weekly", date(2026, 3, 30)) == WEEK
    assert last_complete_period("weekly", date(2026, 4, 5)) == WEEK  # a Sunday
    assert last_complete_period("monthly", date(2026, 3, 1)) == (
        date(2026, 2, 1),
        date(2026, 2, 28),
    )


def test_report_numbers_are_the_stats_page_numbers(mail_app: Flask) -> None:
    db: Database = mail_app.extensions["tracker.db"]
    site = _site(db)
    report = build_digest(db, site, "weekly", *WEEK, "https://stats.example")
    # Four visitors in the Paris week (its DST edges included), one in the week before.
    assert report.totals["visitors"] == 4
    assert report.totals["comparison"]["visitors"] == 2  # type: ignore[index]
    with mail_app.test_request_context():
        view = page_query(db, SiteAccess(site=site, role=OWNER), page_params(*WEEK))
        page = {k.label: (k.value, k.change) for k in kpis(db, view)}
        for figure in report.figures:
            assert page[figure.label] == (figure.value, figure.change), figure.label
        tables = {t.title: t for t in report.tables}
        pairs = (("Top sources", "sources"), ("Channels", "channels"), ("Top pages", "pages"),
                 ("Goals", "goals"))  # fmt: skip
        for title, key in pairs:
            rows = run(db, view.report_query(REPORTS[key], limit=5)).rows
            dim = REPORTS[key].dimension
            assert [r[0] for r in tables[title].rows] == [str(r[dim]) for r in rows]
    # The campaign's spend, matched to its visit whatever the letter case; no conversion.
    assert tables["Campaigns"].columns == (
        "Visits", "Cost (EUR)", "Conversions", "CPA (EUR)", "ROAS"
    )  # fmt: skip
    assert tables["Campaigns"].rows == [("spring", "1", "12.30", "0", "-", "0.00")]
    assert tables["Goals"].rows == [("Signup", "1", "1", "25.0%")]
    assert report.link == (
        "https://stats.example/sites/shop.example?period=custom&from=2026-03-23&to=2026-03-29"
    )


def test_reports_reach_the_recipients_with_an_unsubscribe_link(
    mail_app: Flask, smtp_server: SmtpServer
) -> None:
    db: Database = mail_app.extensions["tracker.db"]
    settings = _settings(mail_app)
    assert send_due_reports(db, settings, AFTER_WEEK) == 2  # the weekly report, to both
    assert drain(db, settings).sent == 2
    [message] = smtp_server.inbox.to("ann@example.com")
    assert message["Subject"] == (
        "Weekly report for shop.example, 23 Mar – 29 Mar 2026: 4 visitors (+100%)"
    )
    text = message.get_body(("plain",)).get_content()
    assert "Visitors: 4 (+100% vs 2)" in text
    html = message.get_body(("html",)).get_content()
    assert "<script" not in html and "<img" not in html and "<link" not in html
    assert "period=custom&amp;from=2026-03-23&amp;to=2026-03-29" in html
    url = message["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://stats.example/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # One click, as a mail client does it: no session, no CSRF token.
    client = mail_app.test_client()
    path = url.removeprefix("https://stats.example")
    assert "Stop mail about shop.example?" in client.get(path).get_data(as_text=True)
    answer = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert "ann@example.com no longer receives" in answer.get_data(as_text=True)
    assert client.post(path).status_code == 404  # used: nothing left to stop
    assert client.post(path[:-3] + "abc").status_code == 404
    with db.session() as session:
        left = session.scalars(select(ReportRecipient.email)).all()
    assert left == ["bob@example.com"]
    # The next week goes to the other recipient only.
    later = datetime(2026, 4, 6, 8, 0, tzinfo=UTC)
    assert send_due_reports(db, settings, later) == 1


def _runs(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(ReportRun)) or 0


def _queued(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(OutboxMail)) or 0


def test_two_schedulers_send_each_period_once(mail_app: Flask, database_url: str) -> None:
    settings = _settings(mail_app)
    counts = on_two_servers(
        database_url, lambda server: send_due_reports(server, settings, AFTER_WEEK)
    )
    assert sorted(counts) == [0, 2]
    db: Database = mail_app.extensions["tracker.db"]
    assert _queued(db) == 2 and _runs(db) == 1
    # After a restart, later in the same week: nothing more.
    assert send_due_reports(db, settings, datetime(2026, 3, 31, 9, tzinfo=UTC)) == 0
    assert _queued(db) == 2


def test_after_downtime_the_last_period_is_sent_once(mail_app: Flask) -> None:
    db: Database = mail_app.extensions["tracker.db"]
    settings = _settings(mail_app)
    # Down from before 30 March to 15 April: three weekly reports were due, and the
    # March report. The last week (6-12 April) and March go out, once each.
    back = datetime(2026, 4, 15, 7, 0, tzinfo=UTC)
    assert send_due_reports(db, settings, back) == 3  # weekly to two, monthly to one
    for tick in range(6):
        assert send_due_reports(db, settings, back.replace(minute=10 * tick)) == 0
    with db.session() as session:
        runs = session.execute(select(ReportRun.kind, ReportRun.period_start)).all()
    assert sorted(runs) == [("monthly", date(2026, 3, 1)), ("weekly", date(2026, 4, 6))]


def test_not_due_before_an_hour_after_the_period_nor_without_mail(
    mail_app: Flask, make_settings: Callable[..., Settings]
) -> None:
    db: Database = mail_app.extensions["tracker.db"]
    # Monday 30 March 00:30 in Paris: the week ended 30 minutes ago.
    early = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)
    assert send_due_reports(db, _settings(mail_app), early) == 0
    assert send_due_reports(db, make_settings(), AFTER_WEEK) == 0  # no SMTP settings
    assert _runs(db) == 0  # nothing claimed: sent once mail is set up
    assert send_due_reports(db, _settings(mail_app), AFTER_WEEK) == 2


def test_settings_section_recipients_preview_and_test_mail(
    mail_app: Flask, smtp_server: SmtpServer
) -> None:
    db: Database = mail_app.extensions["tracker.db"]
    user = add_user(db, "owner@example.com")
    client = mail_app.test_client()
    log_in(client, user)
    page = client.get(f"/sites/{SITE}/settings").get_data(as_text=True)
    assert "ann@example.com" in page and "weekly report, monthly report" in page
    assert "<code>base_url</code>" not in page
    token = csrf_token(client, f"/sites/{SITE}/settings")
    bad = client.post(
        f"/sites/{SITE}/settings/email/recipients",
        data={"csrf_token": token, "email": "not-an-address", "weekly": "on"},
    )
    assert bad.status_code == 400
    assert "&#39;not-an-address&#39; is not a valid email address." in bad.get_data(as_text=True)
    added = client.post(
        f"/sites/{SITE}/settings/email/recipients",
        data={"csrf_token": token, "email": "Cy@Example.com", "monthly": "on"},
    )
    assert added.status_code == 302
    with db.session() as session:
        cy = session.scalar(
            select(ReportRecipient).where(ReportRecipient.email == "cy@example.com")
        )
        assert cy is not None and (cy.weekly, cy.monthly, cy.alerts) == (False, True, False)
    preview = client.get(f"/sites/{SITE}/settings/email/preview?kind=weekly")
    assert preview.status_code == 200 and "Weekly report" in preview.get_data(as_text=True)
    assert client.get(f"/sites/{SITE}/settings/email/preview?kind=daily").status_code == 400
    sent = client.post(f"/sites/{SITE}/settings/email/test", data={"csrf_token": token})
    assert sent.status_code == 302
    assert drain(db, _settings(mail_app)).sent == 1
    [message] = smtp_server.inbox.to("owner@example.com")
    assert message["Subject"].startswith("[Test] Weekly report for shop.example")


def test_mail_server_down_page_answers_and_shows_the_failure(
    make_app: Callable[..., Flask], free_port: int
) -> None:
    app = make_app(smtp_host="127.0.0.1", smtp_port=free_port, mail_from="t@example.com",
                   smtp_security="none")  # fmt: skip
    db: Database = app.extensions["tracker.db"]
    user = add_user(db, "owner@example.com")
    with db.session() as session:
        add_site(session, SITE, owner=session.get(User, user.id))
    client = app.test_client()
    log_in(client, user)
    token = csrf_token(client, f"/sites/{SITE}/settings")
    # Queued only: the request never talks to the SMTP server.
    sent = client.post(f"/sites/{SITE}/settings/email/test", data={"csrf_token": token})
    assert sent.status_code == 302
    assert drain(db, app.extensions["tracker.settings"]).failed == 1
    page = client.get(f"/sites/{SITE}/settings").get_data(as_text=True)
    assert "Mails not delivered" in page
    assert f"connection refused by 127.0.0.1:{free_port}" in page
    assert "1 attempt, retried at" in page
    assert "administrator sets <code>base_url</code>" in page  # links in mails need it
    assert _queued(db) == 1  # kept for the retry


def test_monthly_report_across_the_autumn_change(mail_app: Flask) -> None:
    """October 2026 in Paris is 745 hours long (summer time ends on the 25th)."""
    db: Database = mail_app.extensions["tracker.db"]
    store_events(
        mail_app,
        [
            # 1 October 00:30 in Paris (summer time) is 30 September 22:30 UTC: in October.
            _visit("192.0.2.1", "2026-09-30T22:30:00Z"),
            # 31 October 23:30 in Paris (winter time) is 22:30 UTC: in October.
            _visit("192.0.2.2", "2026-10-31T22:30:00Z"),
            # 1 November 00:30 in Paris is 31 October 23:30 UTC: November.
            _visit("192.0.2.3", "2026-10-31T23:30:00Z"),
            # 30 September 23:30 in Paris is 21:30 UTC: September.
            _visit("192.0.2.4", "2026-09-30T21:30:00Z"),
        ],
        site=SITE,
    )
    october = last_complete_period("monthly", date(2026, 11, 1))
    report = build_digest(db, _site(db), "monthly", *october, "https://stats.example")
    assert october == (date(2026, 10, 1), date(2026, 10, 31))
    assert report.totals["visitors"] == 2
    assert report.totals["comparison"]["visitors"] == 1  # September's last half hour
    assert report.period_text == "October 2026"
