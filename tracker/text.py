"""Checks shared by the short texts people type (goal and budget names, notes, UTM tags)."""

from __future__ import annotations

import unicodedata

# Control characters and the Unicode line and paragraph separators: a one-line label
# with a tab or line break breaks tables, CSVs and the chart.
CONTROL_CATEGORIES = ("Cc", "Zl", "Zp")


def has_control(text: str) -> bool:
    """Whether `text` holds a control character (tab, line break, NUL...)."""
    return any(unicodedata.category(c) in CONTROL_CATEGORIES for c in text)
