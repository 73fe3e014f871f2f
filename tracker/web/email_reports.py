"""Email on the web: the settings page's "Email reports" section (who receives the weekly
and monthly reports and alerts, a test report sent now, a preview, mails that failed) and
the unsubscribe link every such mail carries.

The section and its forms are the site's admins' and owners' (`site_access(domain,
ADMIN)`); the unsubscribe page is anyone's holding a signed link. Its POST is what mail
clients send for one-click unsubscribe (RFC 8058), without a CSRF token: the link's
signature is the proof.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from tracker import audit, digest, mail, report_schedule
from tracker.db.models import OutboxMail, ReportRecipient, Site
from tracker.members import ADMIN, list_members
from tracker.sites import site_today
from tracker.subscribers import (
    REPORT_KINDS,
    UNSUBSCRIBE_PATH,
    WEEKLY,
    RecipientError,
    find_unsubscribe,
    list_recipients,
    remove_recipient,
    set_recipient,
    unsubscribe,
)
from tracker.web import settings
from tracker.web.access import logged_in_user, site_access
from tracker.web.context import get_db, get_settings

bp = Blueprint("email_reports", __name__)
EXPIRED = "The form expired; reload the page and try again."


class ActionForm(FlaskForm):
    """Only the CSRF token: the other fields are read and checked by tracker.subscribers."""


@dataclass(frozen=True)
class EmailSection:
    configured: bool
    # Links in mails (the stats page, unsubscribing) need this server's public address.
    has_base_url: bool
    recipients: list[ReportRecipient]
    member_emails: list[str]
    problems: list[OutboxMail]
    error: str = ""
    typed: dict[str, str] = field(default_factory=dict)


@bp.app_template_global()
def email_section(site: Site) -> EmailSection:
    """What the settings page's Email reports section shows."""
    with get_db().session() as session:
        recipients = list_recipients(session, site)
        members = [m.email for m in list_members(session, site)]
        problems = mail.problems(session, site.id)
    return EmailSection(
        configured=mail.is_configured(get_settings()),
        has_base_url=bool(get_settings().base_url),
        recipients=recipients,
        member_emails=members,
        problems=problems,
        error=g.get("email_error", ""),
        typed=g.get("email_typed", {}),
    )


def _back(domain: str) -> Response:
    return redirect(url_for("site_settings.show", domain=domain) + "#email-reports")


def _kind() -> str:
    kind = request.values.get("kind", WEEKLY)
    if kind not in REPORT_KINDS:
        abort(400, f"kind: {kind!r} must be weekly or monthly.")
    return kind


@bp.post("/sites/<domain>/settings/email/recipients")
def add_recipient(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    choices = {k: request.form.get(k) == "on" for k in ("weekly", "monthly", "alerts")}
    try:
        with get_db().session() as session:
            recipient = set_recipient(
                session, access.site, request.form.get("email", ""), **choices
            )
            what = ", ".join(k for k, on in choices.items() if on)
            detail = f"{recipient.email}: {what}"
            audit.record(session, logged_in_user(), access.site, "email.recipient", detail)
    except RecipientError as exc:
        g.email_error = str(exc)
        g.email_typed = {"email": request.form.get("email", "")}
        response = make_response(settings.show(domain))
        response.status_code = 400
        return response
    flash(f"{detail}.")
    return _back(domain)


@bp.post("/sites/<domain>/settings/email/recipients/<int:recipient_id>/remove")
def remove_recipient_view(domain: str, recipient_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        removed = remove_recipient(session, access.site, recipient_id)
        if removed is None:
            abort(404)
        audit.record(
            session, logged_in_user(), access.site, "email.recipient_remove", removed.email
        )
    flash(f"{removed.email} no longer receives mail about {domain}.")
    return _back(domain)


@bp.post("/sites/<domain>/settings/email/test")
def send_test(domain: str) -> ResponseReturnValue:
    """The last whole period's report to the logged-in user, queued now (never blocking)."""
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    if not mail.is_configured(get_settings()):
        return "Mail is not configured on this server: set smtp_host and mail_from.", 409
    user = logged_in_user()
    assert user is not None  # site_access let a logged-in member through
    kind = _kind()
    report_schedule.send_test_report(
        get_db(), get_settings(), access.site, kind, user.email, site_today(access.site)
    )
    flash(f"The {kind} report is on its way to {user.email}; it arrives within a minute.")
    return _back(domain)


@bp.get("/sites/<domain>/settings/email/preview")
def preview(domain: str) -> ResponseReturnValue:
    """The last whole period's report as the mail's HTML."""
    access = site_access(domain, ADMIN)
    kind = _kind()
    period = digest.last_complete_period(kind, site_today(access.site))
    report = digest.build_digest(get_db(), access.site, kind, *period, _base_url())
    return digest.render_html(report)


def _base_url() -> str:
    return get_settings().base_url or request.host_url


@bp.get(f"{UNSUBSCRIBE_PATH}<token>")
def unsubscribe_page(token: str) -> ResponseReturnValue:
    with get_db().session() as session:
        found = find_unsubscribe(session, get_settings().secret_key, token)
    if found is None:
        return render_template("unsubscribe.html", found=None), 404
    return render_template("unsubscribe.html", found=found, done=False)


@bp.post(f"{UNSUBSCRIBE_PATH}<token>")
def unsubscribe_now(token: str) -> ResponseReturnValue:
    """One click, from the page or from the mail client (List-Unsubscribe-Post)."""
    with get_db().session() as session:
        found = unsubscribe(session, get_settings().secret_key, token)
        if found is not None:
            site = session.get(Site, found.site_id)
            audit.record(session, None, site, "email.unsubscribe", found.email)
    if found is None:
        return render_template("unsubscribe.html", found=None), 404
    return render_template("unsubscribe.html", found=found, done=True)
