"""Index the jobs by (owner_id, status) and (sweep_id, status).

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
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_owner_status", "jobs", ["owner_id", "status"])
    op.create_index("ix_jobs_sweep_status", "jobs", ["sweep_id", "status"])
    op.drop_index("ix_jobs_owner_id", table_name="jobs")
    op.drop_index("ix_jobs_sweep_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_sweep_id", "jobs", ["sweep_id"])
    op.create_index("ix_jobs_owner_id", "jobs", ["owner_id"])
    op.drop_index("ix_jobs_sweep_status", table_name="jobs")
    op.drop_index("ix_jobs_owner_status", table_name="jobs")
