"""Site settings: time zone, allowed hostnames, visibility, Do Not Track, goals and
funnels, share links, requests not counted, deletion.

Only the site's admins and owners reach these pages (share links never do); deleting the
site is its owners' alone.
Each form posts to its own URL and carries a CSRF token (Flask-WTF checks every POST).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from tracker import audit
from tracker.columnar.invalidate import forget
from tracker.db.models import Funnel, Site
from tracker.goals import (
    KIND_LABELS,
    MAX_STEPS,
    GoalError,
    add_funnel,
    add_goal,
    delete_funnel,
    delete_goal,
    funnel_problems,
    funnel_step_names,
    get_funnel,
    get_goal,
    goal_label,
    list_funnels,
    list_goals,
    move_goal,
    rename_goal,
    suggest_goals,
    update_funnel,
)
from tracker.members import ADMIN, OWNER
from tracker.sites import (
    SiteError,
    create_share_link,
    delete_site,
    find_site,
    revoke_share_link,
    share_links,
    update_site,
)
from tracker.stats.dropped import REASONS as DROP_REASONS
from tracker.stats.dropped import dropped_counts
from tracker.web.access import SiteAccess, logged_in_user, site_access
from tracker.web.context import get_db
from tracker.web.sites import script_base_url
from tracker.web.timezones import TimezoneField

bp = Blueprint("site_settings", __name__)
EXPIRED = "The form expired; reload the page and try again."


class SettingsForm(FlaskForm):
    timezone = TimezoneField(description="Days and hours on the stats page follow it.")
    allowed_hostnames = TextAreaField(
        "Other allowed hostnames",
        description="One per line. Events from the domain and its subdomains are always "
        "accepted; list other hosts that serve your pages (e.g. a checkout domain).",
    )
    public = BooleanField("Public: anyone with the address can see the stats (read-only)")
    shared_export = BooleanField("Share links may download raw events as CSV")
    currency = StringField(
        "Currency",
        description="ISO 4217 code ad spend, cost per conversion and ROAS are reported in "
        "(e.g. EUR). Empty: the first ad spend import's. Other currencies are shown apart.",
    )
    honour_dnt = BooleanField(
        "Honour Do Not Track and Global Privacy Control",
        description="Visitors whose browser asks not to be tracked are not counted at all "
        "(only how many such requests came, below).",
    )


class ShareForm(FlaskForm):
    name = StringField("Label", validators=[Length(max=100)], description="e.g. Agency, Board")


class RevokeForm(FlaskForm):
    """Only the CSRF token: revoking is a POST to the link's own URL."""


class DeleteForm(FlaskForm):
    confirm = StringField("Type the domain to confirm", validators=[DataRequired()])


class GoalForm(FlaskForm):
    """A new goal. Only the CSRF token and the kind are checked here: everything else is
    tracker.goals' validation, so the page, the CLI and the API refuse the same input."""

    name = StringField("Name", description="e.g. Signup, Purchase, Brochure download")
    kind = SelectField(
        "Counts", choices=[SelectChoice(k, label) for k, label in KIND_LABELS.items()]
    )
    pattern = StringField(
        "Page path or link target",
        description="Page goals: a path such as /thank-you or /order/*/done. Click goals: "
        "a link target such as *.pdf or https://calendly.com/*. * stands for any characters.",
    )
    event_name = StringField("Event name", description="Event goals: e.g. Signup")
    prop_key = StringField("Property (optional)", description="e.g. plan")
    prop_value = StringField("Property value", description="e.g. pro")
    currency = StringField(
        "Currency (optional)", description="ISO 4217 code revenue is reported in, e.g. EUR"
    )


class RenameForm(FlaskForm):
    name = StringField("New name")


class ActionForm(FlaskForm):
    """Only the CSRF token: moving or deleting is a POST to the item's own URL."""


class FunnelForm(FlaskForm):
    """A funnel's name and its steps, chosen from the site's goals (empty selects skipped)."""

    name = StringField("Name", description="e.g. Checkout")


STEP_FIELDS = [f"step_{number}" for number in range(1, MAX_STEPS + 1)]
for _number, _field in enumerate(STEP_FIELDS, 1):
    setattr(FunnelForm, _field, SelectField(f"Step {_number}", choices=[], validate_choice=False))

# Where tracker.goals' GoalError.field shows on the add-goal form.
GOAL_FORM_FIELDS = {"property": "prop_key", "steps": "step_1"}


def _settings_form(access: SiteAccess, **kwargs: Any) -> SettingsForm:
    """The General form with the site's values; `formdata=None` to show them even when
    another form's POST renders the page (its fields would otherwise read as unchecked)."""
    site = access.site
    form = SettingsForm(
        **kwargs,
        data={
            "timezone": site.timezone,
            "allowed_hostnames": "\n".join(site.allowed_hostnames or []),
            "public": site.public,
            "shared_export": site.shared_export,
            "honour_dnt": site.honour_dnt,
            "currency": site.currency,
        },
    )
    return form


def _step_choices(form: FunnelForm, goals: list[tuple[int, str]]) -> FunnelForm:
    for field in STEP_FIELDS:
        form[field].choices = [
            SelectChoice("", "—"),
            *(SelectChoice(str(i), name) for i, name in goals),
        ]
    return form


def _funnel_form(goals: list[tuple[int, str]], **kwargs: Any) -> FunnelForm:
    return _step_choices(FunnelForm(**kwargs), goals)


def _steps(form: FunnelForm) -> list[int]:
    """The chosen goal ids in order; a value that is not an id becomes -1 (not a goal)."""
    values = [str(form[field].data or "") for field in STEP_FIELDS]
    return [int(v) if v.isdigit() else -1 for v in values if v]


def _goal_error(form: FlaskForm, error: GoalError) -> None:
    field = GOAL_FORM_FIELDS.get(error.field, error.field)
    target = form[field] if field in form else form["name"]
    target.errors = [*target.errors, str(error)]


def _render(
    access: SiteAccess,
    settings_form: SettingsForm | None = None,
    share_form: ShareForm | None = None,
    delete_form: DeleteForm | None = None,
    goal_form: GoalForm | None = None,
    funnel_form: FunnelForm | None = None,
    edited_funnel: tuple[int, FunnelForm] | None = None,
    goal_errors: dict[int, str] | None = None,
) -> ResponseReturnValue:
    forms = (settings_form, share_form, delete_form, goal_form, funnel_form)
    failed = any(f is not None and f.errors for f in forms) or bool(goal_errors)
    failed = failed or (edited_funnel is not None and bool(edited_funnel[1].errors))
    with get_db().session() as session:
        links = share_links(session, access.site)
        goals = list_goals(session, access.site)
        goal_rows = [(g, goal_label(g)) for g in goals]
        choices = [(g.id, g.name) for g in goals]
        funnels = []
        for funnel in list_funnels(session, access.site):
            if edited_funnel is not None and edited_funnel[0] == funnel.id:
                form = edited_funnel[1]
            else:
                data = {"name": funnel.name}
                data.update(zip(STEP_FIELDS, (str(i) for i in funnel.steps or []), strict=False))
                form = _funnel_form(choices, formdata=None, prefix=f"f{funnel.id}", data=data)
            funnels.append(
                {
                    "funnel": funnel,
                    "steps": funnel_step_names(session, funnel),
                    "problems": funnel_problems(session, funnel),
                    "form": form,
                }
            )
    suggestions = suggest_goals(get_db(), access.site, goals)
    dropped = dropped_counts(get_db(), access.site.id, datetime.now(UTC).date())
    html = render_template(
        "settings.html",
        access=access,
        site=access.site,
        links=links,
        goals=goal_rows,
        funnels=funnels,
        suggestions=suggestions,
        goal_errors=goal_errors or {},
        edited_funnel_id=edited_funnel[0] if edited_funnel else None,
        dropped=dropped,
        dropped_reasons=DROP_REASONS,
        base_url=script_base_url(),
        settings_form=settings_form or _settings_form(access, formdata=None),
        share_form=share_form or ShareForm(formdata=None),
        delete_form=delete_form or DeleteForm(formdata=None),
        revoke_form=RevokeForm(formdata=None),
        action_form=ActionForm(formdata=None),
        goal_form=goal_form or GoalForm(formdata=None),
        funnel_form=funnel_form or _funnel_form(choices, formdata=None),
        step_fields=STEP_FIELDS,
    )
    return html, 400 if failed else 200


@bp.get("/sites/<domain>/settings")
def show(domain: str) -> ResponseReturnValue:
    return _render(site_access(domain, ADMIN))


@bp.post("/sites/<domain>/settings")
def save(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = _settings_form(access)
    if form.validate_on_submit():
        try:
            with get_db().session() as session:
                site = find_site(session, access.site.domain)
                assert site is not None  # site_access found it in this request
                update_site(
                    session,
                    site,
                    timezone=form.timezone.data or "",
                    allowed_hostnames=form.allowed_hostnames.data or "",
                    public=bool(form.public.data),
                    shared_export=bool(form.shared_export.data),
                    honour_dnt=bool(form.honour_dnt.data),
                    currency=form.currency.data or "",
                )
                audit.record(session, logged_in_user(), site, "site.settings", _settings_text(site))
        except SiteError as exc:
            form[exc.field or "allowed_hostnames"].errors = [str(exc)]
        else:
            flash("Settings saved.")
            return redirect(url_for("site_settings.show", domain=domain))
    return _render(access, settings_form=form)


@bp.post("/sites/<domain>/settings/shares")
def add_share(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = ShareForm()
    if not form.validate_on_submit():
        return _render(access, share_form=form)
    with get_db().session() as session:
        link = create_share_link(session, access.site, form.name.data or "")
        audit.record(
            session, logged_in_user(), access.site, "share.create", f"Share link {link.name!r}"
        )
    flash("Share link created. Anyone holding it sees this site's stats, read-only.")
    return redirect(url_for("site_settings.show", domain=domain) + "#sharing")


@bp.post("/sites/<domain>/settings/shares/<int:link_id>/revoke")
def revoke_share(domain: str, link_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not RevokeForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        revoked = revoke_share_link(session, access.site, link_id)
        if revoked:
            audit.record(
                session, logged_in_user(), access.site, "share.revoke", f"Share link {link_id}"
            )
    flash("Share link revoked: it no longer opens anything." if revoked else "No such link.")
    return redirect(url_for("site_settings.show", domain=domain) + "#sharing")


@bp.post("/sites/<domain>/settings/delete")
def delete(domain: str) -> ResponseReturnValue:
    access = site_access(domain, OWNER)
    form = DeleteForm()
    if form.validate_on_submit():
        if form.confirm.data.strip().lower() == access.site.domain:
            with get_db().session() as session:
                site = find_site(session, access.site.domain)
                if site is not None:
                    audit.record(
                        session, logged_in_user(), site, "site.delete", "The site and its data"
                    )
                    delete_site(session, site)
            forget(get_db().columnar_root, access.site.id)  # once the deletion is committed
            flash(f"Deleted {access.site.domain} and all its data.")
            return redirect(url_for("sites.index"))
        form.confirm.errors = [f"Type {access.site.domain} exactly to delete the site."]
    return _render(access, delete_form=form)


def _settings_text(site: Site) -> str:
    hosts = ", ".join(site.allowed_hostnames or []) or "none"
    return (
        f"Time zone {site.timezone}; other hosts {hosts}; public {_yes(site.public)}; shared "
        f"export {_yes(site.shared_export)}; honour Do Not Track {_yes(site.honour_dnt)}; "
        f"currency {site.currency or 'none'}"
    )


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _back(domain: str, anchor: str) -> Response:
    return redirect(url_for("site_settings.show", domain=domain) + anchor)


@bp.post("/sites/<domain>/settings/goals")
def add_goal_view(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = GoalForm()
    if not form.validate_on_submit():
        return _render(access, goal_form=form)
    try:
        with get_db().session() as session:
            goal = add_goal(
                session,
                access.site,
                name=form.name.data or "",
                kind=form.kind.data or "",
                pattern=form.pattern.data or "",
                event_name=form.event_name.data or "",
                prop_key=form.prop_key.data or "",
                prop_value=form.prop_value.data or "",
                currency=form.currency.data or "",
            )
            message = f"Goal {goal.name!r} added: {goal_label(goal)}. It counts past data too."
            audit.record(
                session,
                logged_in_user(),
                access.site,
                "goal.add",
                f"{goal.name!r}: {goal_label(goal)}",
            )
    except GoalError as exc:
        _goal_error(form, exc)
        return _render(access, goal_form=form)
    flash(message)
    return _back(domain, "#goals")


@bp.post("/sites/<domain>/settings/goals/<int:goal_id>/rename")
def rename_goal_view(domain: str, goal_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = RenameForm()
    if not form.validate_on_submit():
        return EXPIRED, 400
    try:
        with get_db().session() as session:
            goal = get_goal(session, access.site, goal_id)
            if goal is None:
                abort(404)
            old = goal.name
            rename_goal(session, access.site, goal, form.name.data or "")
            message = f"Goal {old!r} renamed to {goal.name!r}."
            audit.record(session, logged_in_user(), access.site, "goal.rename", message)
    except GoalError as exc:
        return _render(access, goal_errors={goal_id: str(exc)})
    flash(message)
    return _back(domain, "#goals")


@bp.post("/sites/<domain>/settings/goals/<int:goal_id>/move/<any(up, down):direction>")
def move_goal_view(domain: str, goal_id: int, direction: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        goal = get_goal(session, access.site, goal_id)
        if goal is None:
            abort(404)
        move_goal(session, access.site, goal, -1 if direction == "up" else 1)
        audit.record(
            session, logged_in_user(), access.site, "goal.move", f"{goal.name!r} {direction}"
        )
    return _back(domain, "#goals")


@bp.post("/sites/<domain>/settings/goals/<int:goal_id>/delete")
def delete_goal_view(domain: str, goal_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        goal = get_goal(session, access.site, goal_id)
        if goal is None:
            abort(404)
        name = goal.name
        broken = delete_goal(session, access.site, goal)
        audit.record(session, logged_in_user(), access.site, "goal.delete", repr(name))
    flash(f"Goal {name!r} deleted; stored events are kept.")
    for funnel in broken:
        flash(f"Funnel {funnel!r} used it and is now broken: fix its steps below.")
    return _back(domain, "#funnels" if broken else "#goals")


@bp.post("/sites/<domain>/settings/funnels")
def add_funnel_view(domain: str) -> ResponseReturnValue:
    def save(session: Session, site: Site, name: str, steps: list[int]) -> Funnel:
        return add_funnel(session, site, name=name, steps=steps)

    return _save_funnel(site_access(domain, ADMIN), "", "added", save)


@bp.post("/sites/<domain>/settings/funnels/<int:funnel_id>")
def edit_funnel_view(domain: str, funnel_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    with get_db().session() as session:
        if get_funnel(session, access.site, funnel_id) is None:
            abort(404)

    def save(session: Session, site: Site, name: str, steps: list[int]) -> Funnel:
        funnel = get_funnel(session, site, funnel_id)
        assert funnel is not None  # checked above, in this request
        update_funnel(session, site, funnel, name=name, steps=steps)
        return funnel

    return _save_funnel(access, f"f{funnel_id}", "saved", save, funnel_id)


def _save_funnel(
    access: SiteAccess,
    prefix: str,
    done: str,
    save: Callable[[Session, Site, str, list[int]], Funnel],
    funnel_id: int | None = None,
) -> ResponseReturnValue:
    """Validate a funnel form (new, or the edit form of `funnel_id`) and save it; on a
    problem the settings page again, with the error under its field and nothing saved."""
    with get_db().session() as session:
        choices = [(g.id, g.name) for g in list_goals(session, access.site)]
    form = _funnel_form(choices, prefix=prefix)

    def again() -> ResponseReturnValue:
        if funnel_id is None:
            return _render(access, funnel_form=form)
        return _render(access, edited_funnel=(funnel_id, form))

    if not form.validate_on_submit():
        return again()
    try:
        with get_db().session() as session:
            funnel = save(session, access.site, form.name.data or "", _steps(form))
            message = f"Funnel {funnel.name!r} {done}."
            audit.record(session, logged_in_user(), access.site, "funnel.save", message)
    except GoalError as exc:
        _goal_error(form, exc)
        return again()
    flash(message)
    return _back(access.site.domain, "#funnels")


@bp.post("/sites/<domain>/settings/funnels/<int:funnel_id>/delete")
def delete_funnel_view(domain: str, funnel_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        funnel = get_funnel(session, access.site, funnel_id)
        if funnel is None:
            abort(404)
        name = funnel.name
        delete_funnel(session, funnel)
        audit.record(session, logged_in_user(), access.site, "funnel.delete", repr(name))
    flash(f"Funnel {name!r} deleted.")
    return _back(domain, "#funnels")
