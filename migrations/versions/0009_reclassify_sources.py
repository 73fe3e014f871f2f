"""visits: source and channel recomputed with the attribution rules of issue 12

Tagged sources now take a known source's name (fb -> Facebook) or are case-folded, click
ids are paid only with their issuer, and the source lists grew (webmail, search engines,
ad-serving hosts). Stored visits are reclassified once here, as `tracker reclassify` does,
and every site's rollups are marked for a full rebuild by the next refresh (until then the
stats read raw rows).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tracker.reclassify import UPDATE_ATTRIBUTION, changes_in

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
visits = sa.table(
    "visits",
    sa.column("id", sa.BigInteger),
    sa.column("source", sa.String),
    sa.column("channel", sa.String),
    sa.column("referrer", sa.String),
    sa.column("utm_source", sa.String),
    sa.column("utm_medium", sa.String),
    sa.column("utm_campaign", sa.String),
    sa.column("click_id", sa.String),
)


def upgrade() -> None:
    conn = op.get_bind()
    after = None
    while True:
        query = sa.select(visits).order_by(visits.c.id).limit(BATCH)
        if after is not None:
            query = query.where(visits.c.id > after)
        rows = conn.execute(query).all()
        if not rows:
            break
        changes = changes_in(rows)
        if changes:
            conn.execute(UPDATE_ATTRIBUTION, changes)
        after = rows[-1].id
    conn.execute(sa.text("DELETE FROM stats_rollup_state"))


def downgrade() -> None:
    # The previous rules are gone with the previous code; the new values stay.
    pass
