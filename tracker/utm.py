"""How campaign tags compare: one rule for cost rows, budgets, the link builder and reports.

Ad platforms, spreadsheets and hand-typed links spell one campaign several ways
("Spring Sale ", "spring sale"); matching cost to visits, budgets to cost, and warning
about near-duplicate tags all compare `utm_key`s, never the raw text.
"""

from __future__ import annotations

# The five tags, in the order links and reports list them.
UTM_FIELDS = ("source", "medium", "campaign", "term", "content")


def utm_key(value: str) -> str:
    """`" Spring Sale "` -> `"spring sale"`: trimmed and case-folded."""
    return value.strip().casefold()
