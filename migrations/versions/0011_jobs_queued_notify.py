"""PostgreSQL: NOTIFY backprop_jobs whenever a job row becomes queued.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

An idle worker waits for work on a LISTEN connection (app/storage/commit_watch.py) instead
of only polling every BACKPROP_POLL_SECONDS: a job queued by any path (a new job, a
sweep's trials, a halving promotion, a release or an expired lease put back) wakes the
idle workers at its commit. A row trigger does it, so no path can forget; notifications
of one transaction with the same channel and payload reach a listener once, at commit,
and none if it rolls back. SQLite has no NOTIFY: its workers watch the database file.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "backprop_jobs"  # app/storage/commit_watch.py listens on it


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION backprop_job_queued() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER jobs_queued_notify
        AFTER INSERT OR UPDATE OF status ON jobs
        FOR EACH ROW WHEN (NEW.status = 'queued')
        EXECUTE FUNCTION backprop_job_queued()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS jobs_queued_notify ON jobs")
    op.execute("DROP FUNCTION IF EXISTS backprop_job_queued()")
