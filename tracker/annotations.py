"""Chart annotations: dated notes on a site's chart ("Black Friday launch", "budget doubled").

A note has a day of the site's time zone and a short text; the stats layer reads them for
the chart, its CSV and the API (tracker/stats/annotations.py). Every problem raises
AnnotationError with a sentence naming the field (`date` or `text`); nothing is saved before
validation passes, so the page, the CLI and the API refuse the same input.
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.db import Database
from tracker.db.models import Annotation, Site
from tracker.stats.annotations import Note, site_notes
from tracker.text import has_control

MAX_TEXT = 200
# Only YYYY-MM-DD: date.fromisoformat also takes 20261127 and week dates (2026-W48-5).
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # with fullmatch


class AnnotationError(ValueError):
    """A user-facing problem with a note; `field` names the input at fault (date, text)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_day(value: str | date | None) -> date:
    """A note's day from `YYYY-MM-DD` (or a date as is)."""
    if isinstance(value, date):
        return value
    raw = (value or "").strip()
    if not raw:
        raise AnnotationError("date", "The date is required (YYYY-MM-DD).")
    try:
        if not DATE_RE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise AnnotationError(
            "date", f"The date must be written YYYY-MM-DD, e.g. 2026-11-27 (got {raw[:40]!r})."
        ) from None


def clean_text(value: str | None) -> str:
    """The note's text, trimmed: 1 to 200 characters, no control characters."""
    text = (value or "").strip()
    if not text:
        raise AnnotationError("text", "The note's text is required.")
    if len(text) > MAX_TEXT:
        raise AnnotationError(
            "text", f"The note's text must be at most {MAX_TEXT} characters (got {len(text)})."
        )
    if has_control(text):
        raise AnnotationError(
            "text", "The note's text must not contain control characters (tabs, line breaks)."
        )
    return text


def add_annotation(session: Session, site: Site, day: str | date | None, text: str | None) -> Note:
    """Validate and store a note; AnnotationError (nothing stored) on bad input."""
    note = Annotation(site_id=site.id, day=parse_day(day), text=clean_text(text))
    session.add(note)
    session.flush()
    return Note(note.id, note.day, note.text)


def list_annotations(
    db: Database, site: Site, first: date | None = None, last: date | None = None
) -> list[Note]:
    """The site's notes from `first` to `last` (inclusive; None: unbounded), by day."""
    return site_notes(db, site, first, last)


def delete_annotation(session: Session, site: Site, annotation_id: int) -> Note | None:
    """Delete the site's note `annotation_id`; None when the site has no such note."""
    found = session.scalar(
        select(Annotation).where(Annotation.site_id == site.id, Annotation.id == annotation_id)
    )
    if found is None:
        return None
    session.delete(found)
    return Note(found.id, found.day, found.text)
