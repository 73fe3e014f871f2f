"""The UTM link builder page: /sites/<domain>/links (thin views over tracker.links).

Building is a GET (it changes nothing, so anyone who may see the site's stats may build and
copy links, and a built link's page can be bookmarked); saving and deleting are POSTs with
a CSRF token, for the site's admins and owners only.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField

from tracker import audit
from tracker.links import (
    LABELS,
    REQUIRED,
    Link,
    LinkError,
    LinkWarning,
    build_link,
    delete_link,
    link_warnings,
    list_links,
    save_link,
    saved_url,
)
from tracker.members import ADMIN, VIEWER
from tracker.utm import UTM_FIELDS
from tracker.web.access import SiteAccess, logged_in_user, site_access
from tracker.web.context import get_db

bp = Blueprint("links", __name__)
EXPIRED = "The form expired; reload the page and try again."
PLACEHOLDERS = {
    "base_url": "https://example.com/pricing",
    "source": "newsletter, facebook, google",
    "medium": "email, cpc, social",
    "campaign": "spring_sale",
    "term": "running shoes",
    "content": "header_link",
}


class LinkForm(FlaskForm):
    """The builder's fields. Checked by tracker.links (one set of rules for every caller)."""

    base_url = StringField("Page address (base URL)")
    source = StringField(LABELS["source"])
    medium = StringField(LABELS["medium"])
    campaign = StringField(LABELS["campaign"])
    term = StringField(LABELS["term"] + " (optional)")
    content = StringField(LABELS["content"] + " (optional)")
    keep_case = BooleanField("Keep letter case (by default values are lower-cased)")

    class Meta:
        csrf = False  # building is a GET that changes nothing


class SaveForm(LinkForm):
    """The same fields, posted with a CSRF token to save the built link."""

    class Meta:
        csrf = True


class ActionForm(FlaskForm):
    """Only the CSRF token: deleting is a POST to the link's own URL."""


def _values(form: LinkForm) -> dict[str, str | None]:
    return {field: form[field].data for field in UTM_FIELDS}


def _build(form: LinkForm) -> Link | None:
    """The form's link, or None with the problems under their fields."""
    try:
        return build_link(form.base_url.data, _values(form), keep_case=bool(form.keep_case.data))
    except LinkError as exc:
        for field, message in exc.errors.items():
            form[field].errors = [message]
        return None


def builder_args(link: Link, **replace: str) -> dict[str, Any]:
    """URL parameters that build `link` again, with some tags replaced: how a warning offers
    an existing spelling. Case is kept only when a value has capitals (else lower-casing
    changes nothing, and the box stays as the person left it by default)."""
    tags = {**link.tags, **replace}
    args: dict[str, Any] = {"base_url": link.base_url, **{f: v for f, v in tags.items() if v}}
    if any(v != v.lower() for v in tags.values()):
        args["keep_case"] = "y"
    return args


def _use_url(access: SiteAccess, link: Link, warning: LinkWarning) -> str | None:
    if warning.use is None:
        return None
    args = builder_args(link, **{warning.field: warning.use})
    return url_for("links.index", domain=access.site.domain, **args) + "#built"


def _render(access: SiteAccess, form: LinkForm, link: Link | None) -> ResponseReturnValue:
    warnings: list[dict[str, Any]] = []
    if link is not None:
        warnings = [
            {"warning": w, "use_url": _use_url(access, link, w)}
            for w in link_warnings(get_db(), access.site, link)
        ]
    with get_db().session() as session:
        saved = [(item, saved_url(item)) for item in list_links(session, access.site)]
    html = render_template(
        "links.html",
        access=access,
        site=access.site,
        form=form,
        link=link,
        warnings=warnings,
        save_args=builder_args(link) if link else {},
        saved=saved,
        fields=("base_url", *UTM_FIELDS),
        required=("base_url", *REQUIRED),
        placeholders=PLACEHOLDERS,
        action_form=ActionForm(formdata=None),
    )
    return html, 400 if form.errors else 200


@bp.get("/sites/<domain>/links")
def index(domain: str) -> ResponseReturnValue:
    access = site_access(domain, VIEWER)
    form = LinkForm(request.args)
    submitted = any(name in request.args for name in ("base_url", *UTM_FIELDS))
    return _render(access, form, _build(form) if submitted else None)


@bp.post("/sites/<domain>/links")
def save(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = SaveForm()
    if not form.validate_on_submit():
        return EXPIRED, 400
    link = _build(form)
    if link is None:
        return _render(access, form, None)
    with get_db().session() as session:
        save_link(session, access.site, link)
        audit.record(session, logged_in_user(), access.site, "link.save", link.url)
    flash("Link saved.")
    args = builder_args(link)
    return redirect(url_for("links.index", domain=access.site.domain, **args) + "#saved")


@bp.post("/sites/<domain>/links/<int:link_id>/delete")
def delete(domain: str, link_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        if not delete_link(session, access.site, link_id):
            abort(404)
        audit.record(session, logged_in_user(), access.site, "link.delete", f"Link {link_id}")
    flash("Link deleted. Visits that came through it are kept.")
    return redirect(url_for("links.index", domain=access.site.domain) + "#saved")
