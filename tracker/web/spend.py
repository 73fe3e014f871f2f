"""Ad spend on the settings page: upload an ad platform's CSV export, see what it holds and
every problem before anything is saved, confirm to store it; list what is stored per
month and campaign, and delete a month of a campaign.

Only the site's admins and owners reach these (`site_access(domain, ADMIN)`: a viewer gets
403, anyone else the same 404 as for an unknown site); share links never do. Each form
carries a CSRF token. The preview carries the file's text to the confirmation in a hidden
field (up to MAX_PAGE_BYTES), and the confirmation checks it again: what is stored is what
was checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage
from wtforms import HiddenField, StringField

from tracker import audit
from tracker.cost_csv import CostFileError, decode
from tracker.costs import (
    CostBatch,
    CostDefaults,
    CostError,
    check_table,
    cost_defaults,
    cost_summary,
    count_replaced,
    delete_costs,
    parse_period,
    read_cost_file,
    store_costs,
)
from tracker.db.models import Site
from tracker.members import ADMIN
from tracker.money import format_minor
from tracker.web.access import SiteAccess, logged_in_user, site_access
from tracker.web.context import get_db
from tracker.web.format import money

bp = Blueprint("ad_spend", __name__)
EXPIRED = "The form expired; reload the page and try again."
# The preview page carries the file's text in a hidden field: a page of this size is
# still quick; larger exports go through `tracker costs import` or the API.
MAX_PAGE_BYTES = 2_000_000
SHOWN_ROWS = 20
TOO_LARGE = (
    f"The file is over {MAX_PAGE_BYTES // 1_000_000} MB, more than this page takes: export a "
    "shorter period at a time, or import it with `tracker costs import` or the API."
)


class UploadForm(FlaskForm):
    """The file and the defaults for what it has no column for. Only the CSRF token is
    checked here: the rest is tracker.costs' validation, as for the CLI and the API."""

    file = FileField("CSV export")
    source = StringField("Source", description="utm_source of rows without one, e.g. google")
    medium = StringField("Medium", description="utm_medium of rows without one, e.g. cpc")
    currency = StringField("Currency", description="of rows without one, e.g. EUR")


class ConfirmForm(FlaskForm):
    """The previewed file's text and defaults, carried to the confirmation."""

    text = HiddenField()
    name = HiddenField()
    source = HiddenField()
    medium = HiddenField()
    currency = HiddenField()


class DeleteForm(FlaskForm):
    """A month of one campaign: the days and the campaign's key."""

    start = HiddenField()
    end = HiddenField()
    campaign = HiddenField()


@dataclass(frozen=True)
class Preview:
    """What the preview page shows of a checked file (or why it could not be read)."""

    name: str
    batch: CostBatch | None = None
    text: str = ""
    replaced: int = 0
    error: str = ""


@bp.app_template_global()
def ad_spend_section(site: Site) -> dict[str, object]:
    """What the settings page's Ad spend section shows: the stored months and the form."""
    with get_db().session() as session:
        summary = cost_summary(session, site)
    return {
        "summary": summary,
        "form": UploadForm(formdata=None, data={"currency": site.currency}),
    }


@bp.app_template_filter("ad_cost")
def cost_text(cost: dict[str, int]) -> str:
    """{"EUR": 123456, "USD": 300} -> "1234.56 EUR · 3.00 USD": never added or converted."""
    return money({code: format_minor(minor, code) for code, minor in cost.items()})


def _read_upload(upload: FileStorage | None) -> str:
    """The uploaded file's text; CostFileError saying why there is none."""
    if upload is None or not upload.filename:
        raise CostFileError("Choose the CSV file to import.")
    data = upload.stream.read(MAX_PAGE_BYTES + 1)
    if len(data) > MAX_PAGE_BYTES:
        raise CostFileError(TOO_LARGE)
    return decode(data)


def _check(site: Site, name: str, text: str, defaults: CostDefaults) -> Preview:
    if len(text.encode("utf-8")) > MAX_PAGE_BYTES:
        raise CostFileError(TOO_LARGE)
    batch = check_table(read_cost_file(text), defaults)
    with get_db().session() as session:
        replaced = count_replaced(session, site, batch.rows)
    return Preview(name=name, batch=batch, text=text, replaced=replaced)


def _render(access: SiteAccess, preview: Preview, form: FlaskForm) -> ResponseReturnValue:
    batch = preview.batch
    ok = batch is not None and batch.ok and not preview.error
    carried = {"text": preview.text, "name": preview.name, **_defaults_data(form)}
    html = render_template(
        "ad_spend_preview.html",
        site=access.site,
        preview=preview,
        batch=batch,
        ok=ok,
        upload=UploadForm(formdata=None, data=_defaults_data(form)),
        confirm=ConfirmForm(formdata=None, data=carried),
        shown_rows=SHOWN_ROWS,
    )
    return html, 200 if ok else 400


def _defaults_data(form: FlaskForm) -> dict[str, str]:
    return {key: form[key].data or "" for key in ("source", "medium", "currency")}


def _defaults(form: FlaskForm) -> CostDefaults:
    data = _defaults_data(form)
    return cost_defaults(data["source"], data["medium"], data["currency"])


@bp.post("/sites/<domain>/settings/ad-spend/preview")
def preview(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = UploadForm()
    if not form.validate_on_submit():
        return EXPIRED, 400
    upload = form.file.data
    name = upload.filename if isinstance(upload, FileStorage) and upload.filename else ""
    try:
        defaults = _defaults(form)
        result = _check(access.site, name, _read_upload(upload), defaults)
    except (CostFileError, CostError) as exc:
        result = Preview(name=name, error=str(exc))
    return _render(access, result, form)


@bp.post("/sites/<domain>/settings/ad-spend/import")
def confirm(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return EXPIRED, 400
    name = form.name.data or ""
    try:
        result = _check(access.site, name, form.text.data or "", _defaults(form))
    except (CostFileError, CostError) as exc:
        return _render(access, Preview(name=name, error=str(exc)), form)
    batch = result.batch
    assert batch is not None
    if not batch.ok:
        return _render(access, result, form)
    with get_db().session() as session:
        stored = store_costs(session, access.site, batch.rows)
        period = batch.period
        assert period is not None  # ok: the batch has rows
        totals = cost_text(batch.totals())
        message = (
            f"Imported {stored.imported:,} cost rows of {name or 'the file'} ({stored.replaced:,} "
            f"of them replaced rows already stored): {period[0]} to {period[1]}, {totals}."
        )
        audit.record(session, logged_in_user(), access.site, "cost.import", message)
    flash(message)
    if stored.site_currency:
        flash(f"The site's currency is now {stored.site_currency}.")
    return redirect(url_for("site_settings.show", domain=domain) + "#ad-spend")


@bp.post("/sites/<domain>/settings/ad-spend/delete")
def delete(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = DeleteForm()
    if not form.validate_on_submit():
        return EXPIRED, 400
    try:
        start, end = parse_period(form.start.data, form.end.data)
        with get_db().session() as session:
            deleted = delete_costs(session, access.site, start, end, form.campaign.data or None)
            which = f" of campaign {form.campaign.data}" if form.campaign.data else ""
            message = f"Deleted {deleted:,} cost rows{which} from {start} to {end}."
            audit.record(session, logged_in_user(), access.site, "cost.delete", message)
    except CostError as exc:
        flash(f"Nothing deleted: {exc}")
    else:
        flash(message)
    return redirect(url_for("site_settings.show", domain=domain) + "#ad-spend")
