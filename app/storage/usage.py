"""What an owner stores, in bytes, summed in SQL from the rows' sizes (no blob is read):
the quota's measure (``BACKPROP_MAX_OWNER_BYTES``), shared by the services that check it
before storing and the queue verbs that settle a prediction run's real output size."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.storage.tables import Dataset, Job, JobKind, JobStatus, Model, Owner

QUOTA_SETTING = "BACKPROP_MAX_OWNER_BYTES"

# A prediction run's outputs count while it is queued or running (the estimate, reserved)
# and once it succeeded (the blob's size), until the run is deleted.
COUNTED_RUNS = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED)


def stored_bytes(session: Session, owner_id: int) -> int:
    """Bytes of the owner's datasets (their x and y blobs), models (their weights) and
    prediction runs' outputs (``jobs.result_bytes``)."""
    total = 0
    for column, table in ((Dataset.size_bytes, Dataset), (Model.weights_size, Model)):
        size = select(func.coalesce(func.sum(column), 0))
        total += int(session.scalar(size.where(table.owner_id == owner_id)) or 0)
    outputs = select(func.coalesce(func.sum(Job.result_bytes), 0)).where(
        Job.owner_id == owner_id, Job.kind == JobKind.PREDICT, Job.status.in_(COUNTED_RUNS)
    )
    return total + int(session.scalar(outputs) or 0)


def lock_owner(session: Session, owner_id: int) -> None:
    """Lock the owner row (PostgreSQL; SQLite's write transactions are serialised) so two
    writers cannot both take the rest of the quota."""
    session.scalar(select(Owner.id).where(Owner.id == owner_id).with_for_update())
