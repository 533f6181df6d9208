"""Progress-aware attempts and an append-only training history.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-02

jobs.attempts_without_progress counts the attempts whose worker died before saving a
checkpoint (only those count toward BACKPROP_MAX_ATTEMPTS); jobs.attempt_start_epoch is
the checkpoint epoch the current attempt started from. Existing jobs start at 0: their
earlier attempts are not known to have stalled.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("attempts_without_progress", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("attempt_start_epoch", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("attempt_start_epoch")
        batch.drop_column("attempts_without_progress")
