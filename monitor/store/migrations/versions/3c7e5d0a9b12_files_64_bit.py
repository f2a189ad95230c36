"""files.size and files.mtime_ns are 64-bit: a file's modification time in nanoseconds since
1970 does not fit in PostgreSQL's 32-bit INTEGER, so folder sources failed there. (SQLite's
INTEGER is 64-bit already; batch mode rebuilds the table all the same.)

Revision ID: 3c7e5d0a9b12
Revises: f1b2a399c501
Create Date: 2026-11-29 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c7e5d0a9b12"
down_revision: str | Sequence[str] | None = "f1b2a399c501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        for column in ("size", "mtime_ns"):
            batch.alter_column(
                column, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
            )


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        for column in ("size", "mtime_ns"):
            batch.alter_column(
                column, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
            )
