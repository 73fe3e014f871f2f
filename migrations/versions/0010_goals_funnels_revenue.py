"""goals, funnels, and revenue on events

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "goals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("pattern", sa.String(length=500), nullable=False),
        sa.Column("event_name", sa.String(length=200), nullable=False),
        sa.Column("prop_key", sa.String(length=200), nullable=False),
        sa.Column("prop_value", sa.String(length=500), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_goals_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goals")),
        sa.UniqueConstraint("site_id", "name", name=op.f("uq_goals_site_id_name")),
    )
    op.create_index(op.f("ix_goals_site_id"), "goals", ["site_id"])
    op.create_table(
        "funnels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_funnels_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funnels")),
        sa.UniqueConstraint("site_id", "name", name=op.f("uq_funnels_site_id_name")),
    )
    op.create_index(op.f("ix_funnels_site_id"), "funnels", ["site_id"])
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("revenue_minor", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("revenue_currency", sa.String(length=3), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("revenue_currency")
        batch.drop_column("revenue_minor")
    op.drop_index(op.f("ix_funnels_site_id"), table_name="funnels")
    op.drop_table("funnels")
    op.drop_index(op.f("ix_goals_site_id"), table_name="goals")
    op.drop_table("goals")
