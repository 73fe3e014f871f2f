"""goal tag days: goal conversions per day and UTM tags, for the campaign report

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "goal_tag_days",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("goal_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("utm_source", sa.String(length=255), nullable=False),
        sa.Column("utm_medium", sa.String(length=255), nullable=False),
        sa.Column("utm_campaign", sa.String(length=255), nullable=False),
        sa.Column("utm_term", sa.String(length=255), nullable=False),
        sa.Column("utm_content", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("conversions", sa.BigInteger(), nullable=False),
        sa.Column("revenue_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"],
            ["goals.id"],
            name=op.f("fk_goal_tag_days_goal_id_goals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_goal_tag_days_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goal_tag_days")),
    )
    with op.batch_alter_table("goal_tag_days", schema=None) as batch_op:
        batch_op.create_index("ix_goal_tag_days_goal_day", ["goal_id", "day"], unique=False)
        batch_op.create_index("ix_goal_tag_days_site_day", ["site_id", "day"], unique=False)
    # Built goals have no tag days yet: the rollup job backfills their hits (and these).
    op.execute(sa.text("UPDATE goals SET hits_built = :built").bindparams(built=False))


def downgrade() -> None:
    with op.batch_alter_table("goal_tag_days", schema=None) as batch_op:
        batch_op.drop_index("ix_goal_tag_days_site_day")
        batch_op.drop_index("ix_goal_tag_days_goal_day")

    op.drop_table("goal_tag_days")
