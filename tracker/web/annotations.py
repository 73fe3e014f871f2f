"""Chart annotations on the web: adding a note (under the stats page's chart, or on the
settings page) and deleting one (settings page).

Only the site's admins and owners may (`site_access(domain, ADMIN)`: a viewer gets 403,
anyone else the same 404 as for an unknown site); share links never do. Each form carries a
CSRF token. A note that fails validation is not saved: the page it came from says why, in a
flash message.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField, StringField

from tracker import audit
from tracker.annotations import (
    MAX_TEXT,
    AnnotationError,
    add_annotation,
    delete_annotation,
    list_annotations,
)
from tracker.db.models import Site
from tracker.members import ADMIN
from tracker.sites import site_today
from tracker.stats import Note
from tracker.web.access import logged_in_user, site_access
from tracker.web.context import get_db

bp = Blueprint("annotations", __name__)
EXPIRED = "The form expired; reload the page and try again."


class NoteForm(FlaskForm):
    """A new note. Only the CSRF token is checked here: the day and the text are
    tracker.annotations' validation, so the page, the CLI and the API refuse the same input."""

    date = StringField("Date")
    text = StringField("Note")
    # Where to go back to: the stats page's query string (its period, filters...), or
    # "settings".
    back = HiddenField()


class ActionForm(FlaskForm):
    """Only the CSRF token: deleting is a POST to the note's own URL."""


def _back(domain: str, back: str) -> Response:
    """The stats page with the state it was on (only its query string is taken from the
    form, so this never leaves the site), or the settings page's Annotations section."""
    if back == "settings":
        return redirect(url_for("site_settings.show", domain=domain) + "#annotations")
    page = url_for("stats.dashboard", domain=domain)
    query = urlencode(parse_qsl(back.lstrip("?")))  # parameters only, re-encoded
    return redirect(f"{page}?{query}" if query else page)


def _note(note: Note) -> str:
    return f"{note.day.isoformat()}: {note.text}"


@bp.post("/sites/<domain>/annotations")
def add(domain: str) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    form = NoteForm()
    if not form.validate_on_submit():
        return EXPIRED, 400
    try:
        with get_db().session() as session:
            note = add_annotation(session, access.site, form.date.data, form.text.data)
            audit.record(session, logged_in_user(), access.site, "annotation.add", _note(note))
        flash(f"Note added on {note.day.strftime('%-d %b %Y')}: {note.text}")
    except AnnotationError as exc:
        flash(f"The note was not added. {exc}")
    return _back(domain, form.back.data or "")


@bp.post("/sites/<domain>/annotations/<int:annotation_id>/delete")
def delete(domain: str, annotation_id: int) -> ResponseReturnValue:
    access = site_access(domain, ADMIN)
    if not ActionForm().validate_on_submit():
        return EXPIRED, 400
    with get_db().session() as session:
        note = delete_annotation(session, access.site, annotation_id)
        if note is not None:
            audit.record(session, logged_in_user(), access.site, "annotation.delete", _note(note))
    if note is None:
        abort(404)
    flash(f"Note of {note.day.strftime('%-d %b %Y')} deleted: {note.text}")
    return _back(domain, "settings")


@bp.app_template_global()
def site_annotations(site: Site) -> list[Note]:
    """The site's notes for the settings page's Annotations section, latest day first."""
    return list_annotations(get_db(), site)[::-1]


@bp.app_template_global()
def annotation_defaults(site: Site) -> dict[str, object]:
    """What the add-a-note forms start with: today in the site's time zone, the text limit."""
    return {"today": site_today(site).isoformat(), "max_text": MAX_TEXT}
