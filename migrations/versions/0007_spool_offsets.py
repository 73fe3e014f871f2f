"""spool offsets: how much of each ingest spool segment is stored

Every accepted event now goes through the spool, and its writer stores a segment's lines
bit by bit; a segment is no longer replayed whole. Segments that spool_replays recorded as
replayed are recorded as stored to the end.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALL = 2**62  # past the end of any segment


def upgrade() -> None:
    op.create_table(
        "spool_offsets",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_spool_offsets")),
    )
    op.execute(
        "INSERT INTO spool_offsets (segment, stored_bytes, updated_ms) "
        f"SELECT segment, {ALL}, replayed_ms FROM spool_replays"
    )
    op.drop_table("spool_replays")


def downgrade() -> None:
    op.create_table(
        "spool_replays",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("replayed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_spool_replays")),
    )
    op.execute(
        "INSERT INTO spool_replays (segment, replayed_ms) "
        f"SELECT segment, updated_ms FROM spool_offsets WHERE stored_bytes = {ALL}"
    )
    op.drop_table("spool_offsets")
