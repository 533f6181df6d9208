"""Job kinds: the queue also runs batch predictions and large evaluations.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

jobs.kind ("train" for every existing row, "predict", "evaluate"); the model a
prediction run or evaluation job reads (jobs.model_id), its progress (rows_done of
rows_total), a prediction run's output blob (result_sha256) and the output pieces kept
for a resumed attempt (output_parts); evaluations.job_id links an evaluation computed by a
worker to its job.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="train")
        )
        batch.add_column(sa.Column("model_id", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("rows_done", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("rows_total", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("result_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("output_parts", sa.JSON(), nullable=True))
        batch.create_foreign_key(
            "fk_jobs_model_id_models", "models", ["model_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_jobs_model_id", ["model_id"])
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("job_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            "fk_evaluations_job_id_jobs", "jobs", ["job_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_evaluations_job_id", ["job_id"])


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_index("ix_evaluations_job_id")
        batch.drop_constraint("fk_evaluations_job_id_jobs", type_="foreignkey")
        batch.drop_column("job_id")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_model_id")
        batch.drop_constraint("fk_jobs_model_id_models", type_="foreignkey")
        for column in ("output_parts", "result_sha256", "rows_total", "rows_done", "model_id"):
            batch.drop_column(column)
        batch.drop_column("kind")
