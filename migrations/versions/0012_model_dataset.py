"""models.dataset_id: the dataset a model was trained on, on the model itself.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

A model's dataset was read through the job that made it (``models.job_id``). A halving
trial's rung model that something was built on (an evaluation, a prediction run) is kept
as a model of its own when the trial's next rung replaces it: detached from the job, it
lost its dataset, and GET /v1/models?dataset_id= no longer listed it. The column keeps
it, filled here from each model's job; imported models have none. A deleted dataset sets
it to NULL, as it does the jobs'.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_models_dataset_id_datasets"


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("dataset_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            FOREIGN_KEY, "datasets", ["dataset_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_models_dataset_id", ["dataset_id"])
    models, jobs = (
        sa.table("models", sa.column("job_id"), sa.column("dataset_id")),
        sa.table("jobs", sa.column("id"), sa.column("dataset_id")),
    )
    trained_on = sa.select(jobs.c.dataset_id).where(jobs.c.id == models.c.job_id).scalar_subquery()
    op.execute(models.update().where(models.c.job_id.is_not(None)).values(dataset_id=trained_on))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_index("ix_models_dataset_id")
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch.drop_column("dataset_id")
