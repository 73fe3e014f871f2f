"""retire the rollups kept per filter value

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 06:40:00

The columnar store answers filtered reports exactly for closed days, so the rows kept per
filter value (issue 16) are dropped with their columns; the rows over all visits stay and
are indexed for reading a dimension's days and replacing a day's values range by range.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM stats_rollups WHERE filter_dim <> ''"))
    with op.batch_alter_table("stats_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_rollups_key")
        batch_op.drop_column("filter_value")
        batch_op.drop_column("filter_dim")
        batch_op.create_index(
            "ix_stats_rollups_key", ["site_id", "dimension", "day", "value"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("stats_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_rollups_key")
        batch_op.add_column(
            sa.Column("filter_dim", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("filter_value", sa.String(length=2000), server_default="", nullable=False)
        )
        batch_op.create_index(
            "ix_stats_rollups_key",
            ["site_id", "filter_dim", "filter_value", "dimension", "day"],
            unique=False,
        )
    # The rows per filter value are gone: the next refresh builds them all again.
    op.execute(sa.text("DELETE FROM stats_rollups"))
    op.execute(sa.text("DELETE FROM stats_rollup_state"))
