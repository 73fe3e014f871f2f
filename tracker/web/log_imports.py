"""Importing access logs on the settings page: upload a log file (up to max_log_upload_mb:
the copy into the data directory stops there), which the jobs process imports in the
background (tracker.accesslog.uploads), and follow its progress; the summary shows when
it is done.

Only the site's admins and owners reach these (`site_access(domain, ADMIN)`); the upload
form carries a CSRF token. The page polls `status.json` while an import waits or runs
(static/log_imports.js): no inline script, as the Content-Security-Policy wants.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice

from tracker import audit
from tracker.accesslog.uploads import (
    UploadError,
    UploadOptions,
    UploadTooLarge,
    recent_uploads,
    save_upload,
)
from tracker.db.models import Site
from tracker.members import ADMIN
from tracker.web.access import SiteAccess, logged_in_user, site_access
from tracker.web.context import get_db, get_settings

bp = Blueprint("log_imports", __name__)
EXPIRED = "The form expired; reload the page and try again."
FORMATS = {
    "auto": "Recognise it",
    "combined": "Combined (Apache, nginx)",
    "common": "Common",
    "caddy": "Caddy JSON",
    "nginx": "nginx, with its log_format below",
}


class LogUploadForm(FlaskForm):
    file = FileField("Access log", description="Plain or .gz, as the server wrote it.")
    log_format = SelectField(
        "Format", choices=[SelectChoice(k, label) for k, label in FORMATS.items()], default="auto"
    )
    nginx_format = StringField(
        "nginx log_format",
        description="Only for the nginx format: the text in quotes after log_format, e.g. "
        '$remote_addr - $remote_user [$time_local] "$request" $status ...',
    )
    timezone = StringField(
        "Time zone",
        description="Of times logged without an offset (Caddy's wall clock), e.g. Europe/Paris.",
    )


def _form(site: Site, **kwargs: object) -> LogUploadForm:
    """The form (from the request unless `formdata=None`), the site's time zone first."""
    return LogUploadForm(data={"timezone": site.timezone or "UTC"}, **kwargs)


@bp.app_template_global()
def log_import_section(site: Site) -> dict[str, object]:
    """What the settings page's Import section shows: recent uploads and the form."""
    settings = get_settings()
    return {
        "form": _form(site, formdata=None),
        "uploads": recent_uploads(get_db(), settings.data_dir, site.id),
        "limit_mb": settings.max_log_upload_mb,
    }


def _refused(access: SiteAccess, message: str, status: int) -> ResponseReturnValue:
    return render_template("log_import_refused.html", site=access.site, message=message), status


@bp.post("/sites/<domain>/settings/logs")
def upload(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = _form(access.site)
    file = form.file.data
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            return EXPIRED, 400
        problems = "; ".join(
            f"{form[name].label.text}: {errors[0]}" for name, errors in form.errors.items()
        )
        return _refused(access, problems, 400)
    if not isinstance(file, FileStorage) or not file.filename:
        return _refused(access, "Choose the access log file to import.", 400)
    options = UploadOptions(
        log_format=form.log_format.data or "auto",
        nginx_format=(form.nginx_format.data or "").strip(),
        timezone=(form.timezone.data or "UTC").strip(),
    )
    try:
        saved = save_upload(
            get_db(), get_settings(), access.site, file.filename, file.stream, options
        )
    except UploadError as exc:
        return _refused(access, str(exc), 413 if isinstance(exc, UploadTooLarge) else 400)
    with get_db().session() as session:
        message = f"Uploaded {saved.name} ({saved.size:,} bytes) for import."
        audit.record(session, logged_in_user(), access.site, "logs.upload", message)
    return redirect(url_for("site_settings.show", domain=domain) + "#import")


@bp.get("/sites/<domain>/settings/logs/status.json")
def status(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    uploads = recent_uploads(get_db(), get_settings().data_dir, access.site.id)
    return jsonify(
        uploads=[
            {"id": u.id, "status": u.status, "percent": u.percent, "summary": u.summary}
            for u in uploads
        ]
    )
