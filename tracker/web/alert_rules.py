"""Alerts on the web: the settings page's Alerts section (the rules, what they fired and
when it cleared, adding and deleting a rule). The site's admins' and owners' only
(`site_access(domain, ADMIN)`); a rule that fails validation is not saved and the page
comes back (400) with the reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, abort, flash, g, make_response, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from tracker import audit
from tracker.alerts import (
    KINDS,
    THRESHOLD_HELP,
    AlertError,
    add_rule,
    delete_rule,
    describe_rule,
    list_rules,
    recent_events,
)
from tracker.db.models import AlertEvent, Site
from tracker.goals import list_goals
from tracker.members import ADMIN
from tracker.web import settings
from tracker.web.access import logged_in_user, site_access
from tracker.web.context import get_db

bp = Blueprint("alerts", __name__)
EXPIRED = "The form expired; reload the page and try again."


class ActionForm(FlaskForm):
    """Only the CSRF token: the fields are checked by tracker.alerts."""


@dataclass(frozen=True)
class RuleItem:
    id: int
    text: str
    cooldown_hours: float
    webhook_url: str
    webhook_secret: str


@dataclass(frozen=True)
class AlertSection:
    rules: list[RuleItem]
    events: list[tuple[AlertEvent, str]]  # the event and its rule's description
    goals: list[tuple[int, str]]
    kinds: dict[str, str] = field(default_factory=lambda: KINDS)
    threshold_help: dict[str, str] = field(default_factory=lambda: THRESHOLD_HELP)
    error: str = ""


@bp.app_template_global()
def alert_section(site: Site) -> AlertSection:
    with get_db().session() as session:
        goals = {g.id: g.name for g in list_goals(session, site)}
        rules = list_rules(session, site)
        texts = {r.id: describe_rule(r, goals.get(r.goal_id or 0, "")) for r in rules}
        events = [(e, texts.get(e.rule_id, "")) for e in recent_events(session, site)]
    items = [
        RuleItem(r.id, texts[r.id], r.cooldown_minutes / 60, r.webhook_url, r.webhook_secret)
        for r in rules
    ]
    return AlertSection(items, events, list(goals.items()), error=g.get("alert_error", ""))


def _back(domain: str) -> Response:
    return redirect(url_for("site_settings.show", domain=domain) + "#alerts")


def _number(name: str, default: int = 0) -> int:
    raw = request.form.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(float(raw))
    except ValueError:
        raise AlertError(name, f"{raw!r} is not a number.") from None


@bp.post("/sites/<domain>/settings/alerts")
def add(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    try:
        goal = _number("goal_id")
        with get_db().session() as session:
            rule = add_rule(
                session,
                access.site,
                kind=request.form.get("kind", ""),
                threshold=_number("threshold"),
                goal_id=goal or None,
                cooldown_minutes=round(_number("cooldown_hours", 6) * 60),
                webhook_url=request.form.get("webhook_url", ""),
            )
            text = describe_rule(rule)
            audit.record(session, logged_in_user(), access.site, "alert.add", text)
    except AlertError as exc:
        g.alert_error = str(exc)
        response = make_response(settings.show(domain))
        response.status_code = 400
        return response
    flash(f"Alert added: {text}.")
    return _back(domain)


@bp.post("/sites/<domain>/settings/alerts/<int:rule_id>/delete")
def delete(domain: str, rule_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        rule = delete_rule(session, access.site, rule_id)
        if rule is None:
            abort(404)
        text = describe_rule(rule)
        audit.record(session, logged_in_user(), access.site, "alert.delete", text)
    flash(f"Alert deleted: {text}.")
    return _back(domain)
