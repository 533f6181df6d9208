"""Index the jobs by (owner_id, status) and (sweep_id, status); every listed table by
(owner_id, created_at).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

A worker's claim orders the queued jobs by how many running jobs their owner has and holds
a sweep's trials at its ``max_parallel`` (app/jobs/fairness.py): two counts of running
jobs per queued job. On the single-column indexes each count read every job the owner or
the sweep ever had, so a claim's cost grew with the owner's history while it held the
queue's write lock: 0.7 ms with no history, 5 ms after 1,000 finished jobs, 72 ms after
10,000 and 350 ms after 50,000 (SQLite, 48 queued; BENCHMARKS.md). With the status in the
index a count reads the running rows only. The new indexes start with the old ones'
column, so they serve the foreign keys and the owner's and sweep's listings too; the old
ones go.

The lists (GET /v1/jobs, /models, /datasets, /networks, /sweeps, /predictions) are an
owner's rows, newest first. On the owner_id index alone each page sorted all of the
owner's rows: 3.8 ms for a page of 20 of 1,000 jobs, 20 ms of 10,000, 82 ms of 50,000
(and a sweep adds a model per trial). On (owner_id, created_at) a page reads its rows in
order: 2.1 / 3.2 / 3.6 ms. Those indexes replace the tables' owner_id indexes too.

jobs.init_model_id gets an index: deleting a model sets it to NULL in the jobs that
started from it (ON DELETE SET NULL), which read the whole jobs table without one.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


LISTED = ("datasets", "networks", "sweeps", "models")  # their owner_id index is replaced


def upgrade() -> None:
    op.create_index("ix_jobs_owner_status", "jobs", ["owner_id", "status"])
    op.create_index("ix_jobs_sweep_status", "jobs", ["sweep_id", "status"])
    op.create_index("ix_jobs_owner_created", "jobs", ["owner_id", "created_at"])
    op.drop_index("ix_jobs_owner_id", table_name="jobs")
    op.drop_index("ix_jobs_sweep_id", table_name="jobs")
    for table in LISTED:
        op.create_index(f"ix_{table}_owner_created", table, ["owner_id", "created_at"])
        op.drop_index(f"ix_{table}_owner_id", table_name=table)
    op.create_index("ix_jobs_init_model_id", "jobs", ["init_model_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_init_model_id", table_name="jobs")
    for table in LISTED:
        op.create_index(f"ix_{table}_owner_id", table, ["owner_id"])
        op.drop_index(f"ix_{table}_owner_created", table_name=table)
    op.create_index("ix_jobs_sweep_id", "jobs", ["sweep_id"])
    op.create_index("ix_jobs_owner_id", "jobs", ["owner_id"])
    op.drop_index("ix_jobs_owner_created", table_name="jobs")
    op.drop_index("ix_jobs_sweep_status", table_name="jobs")
    op.drop_index("ix_jobs_owner_status", table_name="jobs")
