"""visit_changes: visits of past days the writer changed (the columnar store's provisional
parts leave their visitors to the database)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "visit_changes",
        sa.Column("visit_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.BigInteger(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("changed_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name="fk_visit_changes_site_id_sites",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("visit_id", name="pk_visit_changes"),
    )
    op.create_index("ix_visit_changes_site_changed", "visit_changes", ["site_id", "changed_ms"])


def downgrade() -> None:
    op.drop_index("ix_visit_changes_site_changed", table_name="visit_changes")
    op.drop_table("visit_changes")
