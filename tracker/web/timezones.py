"""The time zone field of the add-a-site and site settings forms: one searchable list.

Every zone the server knows, typed into an input with a datalist (the browser filters it
as one types "Par" or "Tokyo"), checked on the server against the same list; for a new
site, static/sites.js fills in the browser's own zone (templates/_timezone.html).
"""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

from wtforms import Field, StringField
from wtforms.form import BaseForm
from wtforms.validators import ValidationError


@cache
def timezone_choices() -> tuple[str, ...]:
    return tuple(sorted(available_timezones() | {"UTC"}))


@cache
def _known() -> frozenset[str]:
    return frozenset(timezone_choices())


def _is_known(_form: BaseForm, field: Field) -> None:
    if field.data not in _known():
        raise ValidationError(
            f"{field.data or 'An empty name'!r} is not a time zone: pick one from the list, "
            "e.g. Europe/Paris or America/New_York."
        )


class TimezoneField(StringField):
    """A zone name from `timezone_choices()`; `zones` lists them for the datalist."""

    def __init__(self, label: str = "Time zone", **kwargs: Any) -> None:
        super().__init__(label, validators=[_is_known], filters=[_strip], **kwargs)

    @property
    def zones(self) -> tuple[str, ...]:
        return timezone_choices()


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value
