"""stats rollups: scroll depth parts (the pageviews' deepest scroll summed, and counted)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 18:45:00

Rows written before this revision hold 0 for both, which would read as "no pageview
reported a scroll" on every rolled-up day. So the rollup state is deleted: until the next
refresh has rebuilt a site's days (from scratch, the same as after a time zone change),
its reports read raw rows and the columnar store, which have every pageview's scroll.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stats_rollups", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scroll_sum", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("scroll_known", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute(sa.text("DELETE FROM stats_rollup_state"))


def downgrade() -> None:
    with op.batch_alter_table("stats_rollups", schema=None) as batch_op:
        batch_op.drop_column("scroll_known")
        batch_op.drop_column("scroll_sum")
