"""Feeds are claimed by one replica until a lease ends: feeds.claimed_by names the replica
polling the feed, feeds.claimed_until is when its claim runs out (both NULL while no one polls it).

Revision ID: 4c349d58ed5f
Revises: 3c7e5d0a9b12
Create Date: 2026-11-29 10:16:51.431564
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4c349d58ed5f"
down_revision: str | Sequence[str] | None = "3c7e5d0a9b12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by")
