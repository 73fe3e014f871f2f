"""Site settings: time zone, allowed hostnames, visibility, Do Not Track, share links,
requests not counted, deletion.

Only the site's owner or an administrator reaches these pages (share links never do).
Each form posts to its own URL and carries a CSRF token (Flask-WTF checks every POST).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import available_timezones

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

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
from tracker.web.access import SiteAccess, managed_site
from tracker.web.context import get_db
from tracker.web.sites import script_base_url

bp = Blueprint("site_settings", __name__)


@cache
def timezone_choices() -> list[str]:
    return sorted(available_timezones() | {"UTC"})


class SettingsForm(FlaskForm):
    timezone = SelectField("Time zone", description="Days and hours on the stats page follow it.")
    allowed_hostnames = TextAreaField(
        "Other allowed hostnames",
        description="One per line. Events from the domain and its subdomains are always "
        "accepted; list other hosts that serve your pages (e.g. a checkout domain).",
    )
    public = BooleanField("Public: anyone with the address can see the stats (read-only)")
    shared_export = BooleanField("Share links may download raw events as CSV")
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


def _settings_form(access: SiteAccess) -> SettingsForm:
    site = access.site
    form = SettingsForm(
        data={
            "timezone": site.timezone,
            "allowed_hostnames": "\n".join(site.allowed_hostnames or []),
            "public": site.public,
            "shared_export": site.shared_export,
            "honour_dnt": site.honour_dnt,
        }
    )
    form.timezone.choices = timezone_choices()  # type: ignore[assignment]
    return form


def _render(
    access: SiteAccess,
    settings_form: SettingsForm | None = None,
    share_form: ShareForm | None = None,
    delete_form: DeleteForm | None = None,
) -> ResponseReturnValue:
    forms = (settings_form, share_form, delete_form)
    with get_db().session() as session:
        links = share_links(session, access.site)
    dropped = dropped_counts(get_db(), access.site.id, datetime.now(UTC).date())
    html = render_template(
        "settings.html",
        access=access,
        site=access.site,
        links=links,
        dropped=dropped,
        dropped_reasons=DROP_REASONS,
        base_url=script_base_url(),
        settings_form=settings_form or _settings_form(access),
        share_form=share_form or ShareForm(formdata=None),
        delete_form=delete_form or DeleteForm(formdata=None),
        revoke_form=RevokeForm(formdata=None),
    )
    return html, 400 if any(f is not None and f.errors for f in forms) else 200


@bp.get("/sites/<domain>/settings")
def show(domain: str) -> ResponseReturnValue:
    return _render(managed_site(domain))


@bp.post("/sites/<domain>/settings")
def save(domain: str) -> ResponseReturnValue:
    access = managed_site(domain)
    form = _settings_form(access)
    if form.validate_on_submit():
        try:
            with get_db().session() as session:
                site = find_site(session, access.site.domain)
                assert site is not None  # managed_site found it in this request
                update_site(
                    session,
                    site,
                    timezone=form.timezone.data or "",
                    allowed_hostnames=form.allowed_hostnames.data or "",
                    public=bool(form.public.data),
                    shared_export=bool(form.shared_export.data),
                    honour_dnt=bool(form.honour_dnt.data),
                )
        except SiteError as exc:
            form.allowed_hostnames.errors = [str(exc)]
        else:
            flash("Settings saved.")
            return redirect(url_for("site_settings.show", domain=domain))
    return _render(access, settings_form=form)


@bp.post("/sites/<domain>/settings/shares")
def add_share(domain: str) -> ResponseReturnValue:
    access = managed_site(domain)
    form = ShareForm()
    if not form.validate_on_submit():
        return _render(access, share_form=form)
    with get_db().session() as session:
        create_share_link(session, access.site, form.name.data or "")
    flash("Share link created. Anyone holding it sees this site's stats, read-only.")
    return redirect(url_for("site_settings.show", domain=domain) + "#sharing")


@bp.post("/sites/<domain>/settings/shares/<int:link_id>/revoke")
def revoke_share(domain: str, link_id: int) -> ResponseReturnValue:
    access = managed_site(domain)
    if not RevokeForm().validate_on_submit():
        return "The form expired; reload the page and try again.", 400
    with get_db().session() as session:
        revoked = revoke_share_link(session, access.site, link_id)
    flash("Share link revoked: it no longer opens anything." if revoked else "No such link.")
    return redirect(url_for("site_settings.show", domain=domain) + "#sharing")


@bp.post("/sites/<domain>/settings/delete")
def delete(domain: str) -> ResponseReturnValue:
    access = managed_site(domain)
    form = DeleteForm()
    if form.validate_on_submit():
        if form.confirm.data.strip().lower() == access.site.domain:
            with get_db().session() as session:
                site = find_site(session, access.site.domain)
                if site is not None:
                    delete_site(session, site)
            flash(f"Deleted {access.site.domain} and all its data.")
            return redirect(url_for("sites.index"))
        form.confirm.errors = [f"Type {access.site.domain} exactly to delete the site."]
    return _render(access, delete_form=form)
