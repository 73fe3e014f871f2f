"""The list of sites the user may see (a server administrator: all), with their role on
each and their last 30 days (visitors and a sparkline): add a site (its creator becomes
its owner), copy a script tag, leave a site."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired

from tracker import audit
from tracker.db import Database
from tracker.db.models import Site
from tracker.members import memberships
from tracker.sites import SiteError, add_site, list_sites
from tracker.stats import parse_query, run
from tracker.web.chart import sparkline
from tracker.web.context import get_db, get_settings
from tracker.web.format import compact
from tracker.web.timezones import TimezoneField

bp = Blueprint("sites", __name__)


class AddSiteForm(FlaskForm):
    domain = StringField("Domain", validators=[DataRequired()])
    timezone = TimezoneField(default="UTC")


@dataclass(frozen=True)
class Trend:
    visitors: str
    line: str  # SVG path data, one point a day


def trend(db: Database, site: Site) -> Trend:
    """The site's last 30 days, as the stats page opens on them."""
    query = parse_query(site, {"period": "30d", "dimension": "time:day"})
    values = [row["visitors"] for row in run(db, query).rows]
    # Visitor ids rotate daily, so the days' visitors add up to the period's.
    return Trend(compact(sum(values)), sparkline(values))


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
                audit.record(session, current_user.record, site, "site.create", domain)
        except SiteError as exc:
            form.domain.errors = [str(exc)]
        else:
            flash(f"Added {domain}. Paste its script tag into your pages.")
            return redirect(url_for("sites.index"))
    return page(form, 400 if form.errors else 200)


def page(form: AddSiteForm | None = None, status: int = 200) -> ResponseReturnValue:
    """The list of sites (with the add-a-site form as typed), e.g. after a refused leave."""
    user = current_user.record
    with get_db().session() as session:
        sites = list_sites(session, user)
        roles = memberships(session, user)
    db = get_db()
    html = render_template(
        "sites.html",
        form=form or AddSiteForm(formdata=None),
        sites=sites,
        trends={site.id: trend(db, site) for site in sites},
        roles=roles,
        base_url=script_base_url(),
    )
    return html, status
