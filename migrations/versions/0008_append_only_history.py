"""Progress-aware attempts and an append-only training history.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

jobs.attempts_without_progress counts the attempts whose worker died before saving a
checkpoint (only those count toward BACKPROP_MAX_ATTEMPTS); jobs.attempt_start_epoch is
the checkpoint epoch the current attempt started from. Existing jobs start at 0: their
earlier attempts are not known to have stalled.

jobs.history (a JSON list rewritten whole at every progress write) becomes the table
job_epochs (job_id, epoch, record), one row per finished epoch, appended by the worker.
Jobs are moved one at a time. Checkpoints written before this revision still carry the
history inside them; the engine reads them (and ignores it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


JOBS = sa.table("jobs", sa.column("id", sa.String), sa.column("history", sa.JSON))
EPOCHS = sa.table(
    "job_epochs",
    sa.column("job_id", sa.String),
    sa.column("epoch", sa.Integer),
    sa.column("record", sa.JSON),
)


def _move_history() -> None:
    connection = op.get_bind()
    job_ids = connection.execute(sa.select(JOBS.c.id)).scalars().all()
    for job_id in job_ids:
        history = connection.execute(
            sa.select(JOBS.c.history).where(JOBS.c.id == job_id)
        ).scalar_one()
        rows = [
            {"job_id": job_id, "epoch": number, "record": entry}
            for number, entry in enumerate(history or [], start=1)
        ]
        if rows:
            connection.execute(EPOCHS.insert(), rows)


def _restore_history() -> None:
    connection = op.get_bind()
    job_ids = connection.execute(sa.select(JOBS.c.id)).scalars().all()
    for job_id in job_ids:
        records: list[Any] = list(
            connection.execute(
                sa.select(EPOCHS.c.record)
                .where(EPOCHS.c.job_id == job_id)
                .order_by(EPOCHS.c.epoch)
            ).scalars()
        )
        connection.execute(JOBS.update().where(JOBS.c.id == job_id).values(history=records))


def upgrade() -> None:
    op.create_table(
        "job_epochs",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "epoch"),
    )
    _move_history()
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("history")
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
        batch.add_column(sa.Column("history", sa.JSON(), nullable=False, server_default="[]"))
    _restore_history()
    op.drop_table("job_epochs")
