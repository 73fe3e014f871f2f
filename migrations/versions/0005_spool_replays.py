"""spool replays: segments of the durable ingest spool already stored

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spool_replays",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("replayed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_spool_replays")),
    )


def downgrade() -> None:
    op.drop_table("spool_replays")
