"""stats rollups per filter value

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 21:58:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stats_rollups", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("filter_dim", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("filter_value", sa.String(length=2000), server_default="", nullable=False)
        )
        batch_op.drop_index("ix_stats_rollups_site_dimension_day")
        batch_op.create_index(
            "ix_stats_rollups_key",
            ["site_id", "filter_dim", "filter_value", "dimension", "day"],
            unique=False,
        )
    # Rollups built before lack the rows per filter value: the next refresh rebuilds all.
    op.execute(sa.text("DELETE FROM stats_rollups"))
    op.execute(sa.text("DELETE FROM stats_rollup_state"))


def downgrade() -> None:
    with op.batch_alter_table("stats_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_rollups_key")
        batch_op.create_index(
            "ix_stats_rollups_site_dimension_day", ["site_id", "dimension", "day"], unique=False
        )
        batch_op.drop_column("filter_value")
        batch_op.drop_column("filter_dim")
    op.execute(sa.text("DELETE FROM stats_rollups"))
    op.execute(sa.text("DELETE FROM stats_rollup_state"))
