"""The list of sites: add a site and copy its script tag."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired

from tracker.sites import SiteError, add_site, list_sites
from tracker.web.context import get_db, get_settings

bp = Blueprint("sites", __name__)

COMMON_TIMEZONES = [
    "UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Rome",
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
    "America/Sao_Paulo", "Asia/Tokyo", "Asia/Shanghai", "Asia/Kolkata", "Asia/Singapore",
    "Australia/Sydney", "Africa/Johannesburg",
]  # fmt: skip


class AddSiteForm(FlaskForm):
    domain = StringField("Domain", validators=[DataRequired()])
    timezone = SelectField("Time zone", choices=COMMON_TIMEZONES, default="UTC")


def script_base_url() -> str:
    return (get_settings().base_url or request.host_url).rstrip("/")


@bp.route("/sites", methods=["GET", "POST"])
@login_required
def index():
    form = AddSiteForm()
    if form.validate_on_submit():
        try:
            with get_db().session() as session:
                site = add_site(
                    session,
                    form.domain.data,
                    timezone=form.timezone.data,
                    owner=current_user.record,
                )
                domain = site.domain
        except SiteError as exc:
            form.domain.errors = [str(exc)]
        else:
            flash(f"Added {domain}. Paste its script tag into your pages.")
            return redirect(url_for("sites.index"))
    with get_db().session() as session:
        sites = list_sites(session, current_user.record)
    status = 400 if form.errors else 200
    return render_template("sites.html", form=form, sites=sites, base_url=script_base_url()), status
