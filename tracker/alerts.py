"""Alerts: conditions watched on a site, fired and cleared, mailed and sent to a webhook.

Kinds (`AlertRule.kind`, with what `threshold` means):

- spike: current visitors (real time: the last 5 minutes) above `threshold`;
- drop: today's visitors up to this time of day (site time zone) below `threshold` % of
  the average of the same weekday, up to the same time, over the WEEKS before; a tag
  removed from the site or an outage shows here first. Quiet sites (a usual day under
  MIN_USUAL_VISITORS so far) never fire: a few visitors more or less is no news;
- goal_drop: no conversion of the rule's goal in the last `threshold` hours, while the
  WEEKS * 7 whole days before today made at least one per that many hours on average;
- pacing: a budget of this month over or under its even pace (tracker.stats.pacing).

Numbers come from the stats layer (`run` on raw rows for exact bounds, `current_visitors`,
`month_pacing`). The `alerts` job calls `check_alerts` every few minutes: a condition that
starts is recorded as an `AlertEvent` (fired_at), and recorded as cleared when it ends.
A fired alert is mailed to the site's recipients of alerts and POSTed to the rule's webhook
unless an earlier one of the rule was notified less than `cooldown_minutes` before (still
recorded, not sent: no mail storm while a condition flaps). When it clears, whoever was told
it fired gets a short "cleared" mail and webhook event; a quiet firing clears quietly. Two
checkers (servers on one database) record and send each change once: each holds the rule
while it reads and writes its events. The webhook body is JSON (`event`: "fired" or
"cleared"), signed: `X-Tracker-Signature: sha256=<HMAC-SHA256 of the body with the rule's
secret>`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from markupsafe import escape
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tracker import mail
from tracker.config import Settings
from tracker.db import Database
from tracker.db.models import AlertEvent, AlertRule, Goal, Site
from tracker.stats import GOAL, Filter, Query, SiteRef, current_visitors, run, site_ref
from tracker.stats.pacing import OVER, OVER_BUDGET, STATUS_TEXT, UNDER, month_pacing
from tracker.stats.periods import make_period
from tracker.subscribers import ALERTS, mail_recipients, recipients_of

SPIKE, DROP, GOAL_DROP, PACING = "spike", "drop", "goal_drop", "pacing"
KINDS = {
    SPIKE: "Traffic spike",
    DROP: "Traffic drop",
    GOAL_DROP: "Goal drop",
    PACING: "Budget pacing",
}
THRESHOLD_HELP = {
    SPIKE: "current visitors above",
    DROP: "% of the usual visitors so far today, below",
    GOAL_DROP: "hours without a conversion",
    PACING: "",
}
WEEKS = 4
MIN_USUAL_VISITORS = 20
OFF_PACE = (OVER_BUDGET, OVER, UNDER)
WEBHOOK_TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Tracker-Signature"


class AlertError(ValueError):
    """A rule that cannot be saved; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# Rules


def add_rule(
    session: Session,
    site: Site,
    *,
    kind: str,
    threshold: int = 0,
    goal_id: int | None = None,
    cooldown_minutes: int = 360,
    webhook_url: str = "",
) -> AlertRule:
    if kind not in KINDS:
        raise AlertError("kind", f"Choose one of: {', '.join(KINDS.values())}.")
    if kind == SPIKE and threshold < 1:
        raise AlertError("threshold", "A spike needs a number of current visitors, 1 or more.")
    if kind == DROP and not 1 <= threshold <= 99:
        raise AlertError("threshold", "A drop needs a percentage from 1 to 99.")
    if kind == GOAL_DROP:
        if not 1 <= threshold <= 24 * 7:
            raise AlertError("threshold", "A goal drop needs a number of hours from 1 to 168.")
        goal = session.get(Goal, goal_id) if goal_id is not None else None
        if goal is None or goal.site_id != site.id:
            raise AlertError("goal_id", "Choose the goal to watch.")
    else:
        goal_id = None
    if cooldown_minutes < 0:
        raise AlertError("cooldown_minutes", "The cool-down cannot be negative.")
    url = webhook_url.strip()
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
        raise AlertError("webhook_url", f"{url!r} is not an http(s) URL.")
    rule = AlertRule(
        site_id=site.id,
        kind=kind,
        threshold=threshold if kind != PACING else 0,
        goal_id=goal_id,
        cooldown_minutes=cooldown_minutes,
        webhook_url=url,
        webhook_secret=secrets.token_hex(32) if url else "",
    )
    session.add(rule)
    session.flush()
    return rule


def list_rules(session: Session, site: Site) -> list[AlertRule]:
    return list(
        session.scalars(
            select(AlertRule).where(AlertRule.site_id == site.id).order_by(AlertRule.id)
        )
    )


def delete_rule(session: Session, site: Site, rule_id: int) -> AlertRule | None:
    rule = session.get(AlertRule, rule_id)
    if rule is None or rule.site_id != site.id:
        return None
    session.delete(rule)
    return rule


def recent_events(session: Session, site: Site, limit: int = 10) -> list[AlertEvent]:
    return list(
        session.scalars(
            select(AlertEvent)
            .join(AlertRule, AlertRule.id == AlertEvent.rule_id)
            .where(AlertRule.site_id == site.id)
            .order_by(AlertEvent.id.desc())
            .limit(limit)
        )
    )


def describe_rule(rule: AlertRule, goal_name: str = "") -> str:
    if rule.kind == SPIKE:
        return f"Traffic spike: more than {rule.threshold} current visitors"
    if rule.kind == DROP:
        return f"Traffic drop: today below {rule.threshold}% of the usual so far"
    if rule.kind == GOAL_DROP:
        return f"Goal drop: no {goal_name or 'goal'} conversion for {rule.threshold} hours"
    return "Budget pacing: a budget over or under its even pace"


# Conditions


@dataclass(frozen=True)
class Check:
    firing: bool
    message: str = ""


def _window(site: Site, start: datetime, end: datetime) -> Query:
    """A query over [start, end) exactly (read from raw rows by `run(..., rollups=False)`)."""
    tz = ZoneInfo(site.timezone)
    days = make_period("custom", start.astimezone(tz).date(), end.astimezone(tz).date(), tz)
    period = dataclasses.replace(
        days, start_ms=int(start.timestamp() * 1000), end_ms=int(end.timestamp() * 1000), cut=True
    )
    return Query(site=site_ref(site), period=period, metrics=("visitors",))


def _visitors(db: Database, site: Site, start: datetime, end: datetime) -> int:
    return int(run(db, _window(site, start, end), rollups=False).totals.get("visitors") or 0)


def _spike(db: Database, site: Site, rule: AlertRule, now: datetime) -> Check:
    current = current_visitors(db, site, now_ms=int(now.timestamp() * 1000))
    if current > rule.threshold:
        return Check(
            True, f"{current} current visitors on {site.domain} (alert above {rule.threshold})"
        )
    return Check(False)


def _drop(db: Database, site: Site, rule: AlertRule, now: datetime) -> Check:
    tz = ZoneInfo(site.timezone)
    local = now.astimezone(tz)

    def so_far(day: date) -> int:
        start = datetime.combine(day, time(), tzinfo=tz)
        return _visitors(db, site, start, datetime.combine(day, local.time(), tzinfo=tz))

    usual = sum(so_far(local.date() - timedelta(weeks=w)) for w in range(1, WEEKS + 1)) / WEEKS
    today = so_far(local.date())
    if usual >= MIN_USUAL_VISITORS and today < usual * rule.threshold / 100:
        share = round(today * 100 / usual)
        return Check(
            True,
            f"{today} visitors on {site.domain} today by {local:%H:%M}, {share}% of the usual "
            f"{usual:.0f} on a {local:%A} (alert below {rule.threshold}%)",
        )
    return Check(False)


@lru_cache(maxsize=1024)
def usual_conversions(db: Database, site: SiteRef, goal: str, today: date) -> int:
    """The goal's conversions over the WEEKS * 7 whole local days before `today`. Whole days
    are read from goal hits and rollups; the jobs process asks once a day per rule (the
    answer is kept), so a check every 5 minutes costs the recent window alone."""
    days = make_period("custom", today - timedelta(weeks=WEEKS), today - timedelta(days=1), site.tz)
    query = Query(site=site, period=days, metrics=("conversions",))
    return _conversions(db, query, goal, rollups=True)


def _conversions(db: Database, query: Query, goal: str, *, rollups: bool) -> int:
    counted = dataclasses.replace(
        query, metrics=("conversions",), filters=(Filter(GOAL, "is", (goal,)),)
    )
    return int(run(db, counted, rollups=rollups).totals.get("conversions") or 0)


def _goal_drop(db: Database, site: Site, rule: AlertRule, now: datetime) -> Check:
    goal = _goal_name(db, rule)
    hours = timedelta(hours=rule.threshold)
    if _conversions(db, _window(site, now - hours, now), goal, rollups=False):
        return Check(False)
    today = now.astimezone(ZoneInfo(site.timezone)).date()
    before = usual_conversions(db, site_ref(site), goal, today)
    expected = before * hours / timedelta(weeks=WEEKS)
    if expected >= 1:
        return Check(
            True,
            f"No {goal} conversion on {site.domain} for {rule.threshold} hours; "
            f"usually {expected:.1f} in that time",
        )
    return Check(False)


def _goal_name(db: Database, rule: AlertRule) -> str:
    with db.session() as session:
        goal = session.get(Goal, rule.goal_id) if rule.goal_id is not None else None
        return goal.name if goal else ""


def _pacing(db: Database, site: Site, rule: AlertRule, now: datetime) -> Check:
    off = [p for p in month_pacing(db, site, now=now) if p.status in OFF_PACE]
    if not off:
        return Check(False)
    names = "; ".join(f"{p.label} {STATUS_TEXT[p.status]}" for p in off)
    return Check(True, f"Budgets of {site.domain} off pace: {names}")


CHECKS = {SPIKE: _spike, DROP: _drop, GOAL_DROP: _goal_drop, PACING: _pacing}


# Firing, clearing, notifying


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: a receiver recomputes it to trust the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(rule: AlertRule, payload: dict[str, object]) -> str:
    """POST the payload; "" when the receiver took it (2xx), else what went wrong."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    request = urllib.request.Request(
        rule.webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(rule.webhook_secret, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):
            return ""
    except urllib.error.HTTPError as exc:
        return f"the webhook answered {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the webhook could not be reached: {reason}"


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cooling_down(session: Session, rule: AlertRule, now: datetime) -> bool:
    last = session.scalar(
        select(AlertEvent.fired_at)
        .where(AlertEvent.rule_id == rule.id, AlertEvent.notified.is_(True))
        .order_by(AlertEvent.id.desc())
        .limit(1)
    )
    return last is not None and now - _as_utc(last) < timedelta(minutes=rule.cooldown_minutes)


def _lock(session: Session, rule: AlertRule) -> None:
    """Hold the rule until commit, before reading its events: a second checker (another
    server on the database) waits, then sees this one's alert instead of firing it again.
    A write, not SELECT ... FOR UPDATE: SQLite has none, and takes its write lock here."""
    session.execute(update(AlertRule).where(AlertRule.id == rule.id).values(id=AlertRule.id))


def _open_event(session: Session, rule: AlertRule) -> AlertEvent | None:
    return session.scalar(
        select(AlertEvent)
        .where(AlertEvent.rule_id == rule.id, AlertEvent.cleared_at.is_(None))
        .order_by(AlertEvent.id.desc())
        .limit(1)
    )


def _alert_mail(message: str, link: str) -> Callable[[str], tuple[str, str]]:
    def render(unsubscribe: str) -> tuple[str, str]:
        text = f"{message}\n\nStats page: {link}\n\nStop these mails: {unsubscribe}\n"
        return text, _alert_html(message, link, unsubscribe)

    return render


def _alert_html(message: str, link: str, unsubscribe: str) -> str:
    return (
        '<!DOCTYPE html><html><body style="font-family:Helvetica,Arial,sans-serif;color:#1f2328;">'
        f'<p style="font-size:16px;">{escape(message)}</p>'
        f'<p><a href="{escape(link)}" style="color:#0969da;">Open the stats page</a></p>'
        f'<p style="font-size:12px;color:#59636e;"><a href="{escape(unsubscribe)}" '
        'style="color:#59636e;">Stop these mails</a></p></body></html>'
    )


def _link(settings: Settings, site: Site) -> str:
    return f"{settings.base_url.rstrip('/')}/sites/{site.domain}?period=today"


def _mail_alert(
    session: Session, settings: Settings, site: Site, subject: str, message: str
) -> None:
    """Queue the mail to the site's alert recipients, in the transaction that records the
    alert's change: it is queued exactly when that change is committed."""
    if mail.is_configured(settings):
        mail_recipients(
            session,
            settings,
            recipients_of(session, site.id, ALERTS),
            subject,
            _alert_mail(message, _link(settings, site)),
        )


def _post(db: Database, rule: AlertRule, event_id: int, payload: dict[str, object]) -> None:
    """POST to the rule's webhook after the change is committed; a failure is kept on the
    event (the last one: firing or clearing) for the settings page."""
    error = post_webhook(rule, payload)
    if error:
        with db.session() as session:
            stored = session.get(AlertEvent, event_id)
            if stored is not None:
                stored.webhook_error = error[:500]


def _payload(
    settings: Settings, site: Site, rule: AlertRule, what: str, message: str, **times: datetime
) -> dict[str, object]:
    """The webhook's JSON: `event` is "fired" or "cleared"; times in ISO 8601 UTC."""
    return {
        "event": what,
        "site": site.domain,
        "alert": rule.kind,
        "rule_id": rule.id,
        "message": message,
        **{name: moment.isoformat() for name, moment in times.items()},
        "link": _link(settings, site),
    }


def _fire(
    db: Database, settings: Settings, site: Site, rule: AlertRule, check: Check, now: datetime
) -> AlertEvent | None:
    """Record the alert; notify unless cooling down. None if it was already on."""
    with db.session() as session:
        _lock(session, rule)
        if _open_event(session, rule) is not None:
            return None
        notify = not _cooling_down(session, rule, now)
        event = AlertEvent(
            rule_id=rule.id,
            fired_at=now,
            message=check.message[:500],
            notified=notify,
            webhook_error="",
        )
        session.add(event)
        session.flush()
        if notify:
            subject = f"[Alert] {KINDS[rule.kind]} on {site.domain}"
            _mail_alert(session, settings, site, subject, check.message)
    if notify and rule.webhook_url:
        payload = _payload(settings, site, rule, "fired", check.message, fired_at=now)
        _post(db, rule, event.id, payload)
    return event


def _lasted(duration: timedelta) -> str:
    minutes = int(duration.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h" if minutes < 48 * 60 else f"{minutes // (24 * 60)} days"


def _cleared_message(site: Site, event: AlertEvent, now: datetime) -> str:
    local = now.astimezone(ZoneInfo(site.timezone))
    lasted = _lasted(now - _as_utc(event.fired_at))
    return f"Cleared at {local:%H:%M} ({site.timezone}) after {lasted}: {event.message}"


def _clear(
    db: Database, settings: Settings, site: Site, rule: AlertRule, now: datetime
) -> AlertEvent | None:
    """Record the end of the rule's alert, if one is on; recipients hear of it when they
    heard of its firing (a firing kept quiet by the cool-down clears quietly too). Like
    firing, once with two checkers: the rule is held before the open event is read again."""
    with db.session() as session:
        if _open_event(session, rule) is None:
            return None  # the usual case, read without taking the write lock
    with db.session() as session:
        _lock(session, rule)
        event = _open_event(session, rule)
        if event is None:
            return None
        event.cleared_at = now
        message = _cleared_message(site, event, now)
        if event.notified:
            subject = f"[Cleared] {KINDS[rule.kind]} on {site.domain}"
            _mail_alert(session, settings, site, subject, message)
    if event.notified and rule.webhook_url:
        fired_at = _as_utc(event.fired_at)
        payload = _payload(
            settings, site, rule, "cleared", message, fired_at=fired_at, cleared_at=now
        )
        _post(db, rule, event.id, payload)
    return event


def check_alerts(db: Database, settings: Settings, now: datetime | None = None) -> list[AlertEvent]:
    """Every rule of every site checked once; the alerts that fired now."""
    now = now or datetime.now(UTC)
    with db.session() as session:
        rules = list(session.scalars(select(AlertRule).order_by(AlertRule.id)))
        sites = {
            s.id: s
            for s in session.scalars(select(Site).where(Site.id.in_({r.site_id for r in rules})))
        }
    fired = []
    for rule in rules:
        site = sites[rule.site_id]
        check = CHECKS[rule.kind](db, site, rule, now)
        if check.firing:
            event = _fire(db, settings, site, rule, check, now)
            if event is not None:
                fired.append(event)
        else:
            _clear(db, settings, site, rule, now)
    return fired
