"""goal hits and goal days: each goal's matching events and daily counts, kept beside
the rollups

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "goal_hits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("goal_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.BigInteger(), nullable=False),
        sa.Column("visitor_id", sa.BigInteger(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("revenue_minor", sa.BigInteger(), nullable=True),
        sa.Column("revenue_currency", sa.String(length=3), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(
            ["goal_id"], ["goals.id"], name=op.f("fk_goal_hits_goal_id_goals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_goal_hits_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goal_hits")),
    )
    op.create_index("ix_goal_hits_goal_started", "goal_hits", ["goal_id", "started_ms"])
    op.create_index("ix_goal_hits_goal_visit", "goal_hits", ["goal_id", "visit_id", "timestamp_ms"])
    op.create_index("ix_goal_hits_site_day", "goal_hits", ["site_id", "day"])
    op.create_table(
        "goal_days",
        sa.Column("goal_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("visitors", sa.BigInteger(), nullable=False),
        sa.Column("conversions", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"], ["goals.id"], name=op.f("fk_goal_days_goal_id_goals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_goal_days_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("goal_id", "day", name=op.f("pk_goal_days")),
    )
    op.create_index("ix_goal_days_site_day", "goal_days", ["site_id", "day"])
    with op.batch_alter_table("goals") as batch:
        batch.add_column(
            sa.Column("hits_built", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("goals") as batch:
        batch.drop_column("hits_built")
    op.drop_index("ix_goal_days_site_day", table_name="goal_days")
    op.drop_table("goal_days")
    op.drop_index("ix_goal_hits_site_day", table_name="goal_hits")
    op.drop_index("ix_goal_hits_goal_visit", table_name="goal_hits")
    op.drop_index("ix_goal_hits_goal_started", table_name="goal_hits")
    op.drop_table("goal_hits")
