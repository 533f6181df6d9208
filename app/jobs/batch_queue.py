"""Queue verbs of the row-streaming kinds (prediction runs, large evaluations).

They share the ``jobs`` table, the claim, the lease, the cancel flag and the expiry sweep
with training (:mod:`app.jobs.queue`); these verbs add what differs: the entry is created
with a model and a row count, progress is ``rows_done`` (plus the output pieces a resumed
attempt continues from), and success stores a prediction run's output blob, or an
evaluation's metrics in its ``evaluations`` row, in the same fenced transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.jobs.queue import BeforeCommit, Claim, ended_values, fenced, update_job
from app.services.quota import SETTING as QUOTA_SETTING
from app.services.quota import lock_owner, stored_bytes
from app.storage.blobs import BlobRef
from app.storage.database import Database
from app.storage.tables import Evaluation, Job, JobKind, JobStatus, new_id


def enqueue_batch(
    session: Session,
    *,
    kind: JobKind,
    owner_id: int,
    model_id: str,
    dataset_id: str,
    rows_total: int,
    options: dict[str, Any],
) -> Job:
    """Add a queued prediction run (id ``pred_...``) or evaluation job (flushed)."""
    prefix = "pred" if kind == JobKind.PREDICT else "job"
    job = Job(
        id=new_id(prefix),
        kind=kind,
        owner_id=owner_id,
        model_id=model_id,
        dataset_id=dataset_id,
        rows_total=rows_total,
        network_config={},
        options=options,
        epochs=0,
        status=JobStatus.QUEUED,
        findings=[],
    )
    session.add(job)
    session.flush()
    set_committed_value(job, "epoch_rows", [])  # no epochs: nothing to load
    return job


def save_rows(
    db: Database,
    claim: Claim,
    *,
    rows_done: int,
    seconds: float,
    output_parts: list[dict[str, Any]] | None = None,
    before_commit: BeforeCommit | None = None,
) -> bool:
    """Record progress (and, when given, the output pieces written so far). False, with
    nothing written, when the lease is lost."""
    values: dict[str, Any] = {"rows_done": rows_done, "train_seconds": seconds}
    if output_parts is not None:
        values["output_parts"] = output_parts
    with db.session() as session:
        row = update_job(session, fenced(claim), values)
        if row is not None and before_commit is not None:
            before_commit()
    return row is not None


def finish_prediction(
    db: Database,
    claim: Claim,
    *,
    rows_done: int,
    seconds: float,
    result: BlobRef,
    max_owner_bytes: int,
    before_commit: BeforeCommit | None = None,
) -> bool:
    """The run succeeds with its output blob (its pieces are dropped), whose size now
    counts toward the owner's quota in place of the estimate reserved at submit; unless
    that size takes the owner past BACKPROP_MAX_OWNER_BYTES (a float64 model's outputs are
    twice the estimate, or the quota was lowered): then it ends ``failed`` naming the
    setting, without outputs. False when the lease is lost."""
    with db.session() as session:
        owner = session.execute(select(Job.owner_id, Job.result_bytes).where(fenced(claim))).first()
        if owner is None:
            return False
        lock_owner(session, owner.owner_id)
        others = stored_bytes(session, owner.owner_id) - (owner.result_bytes or 0)
        values: dict[str, Any] = {
            "rows_done": rows_done,
            "train_seconds": seconds,
            "output_parts": None,
        }
        if others + result.size > max_owner_bytes:
            values.update(
                ended_values(JobStatus.FAILED),
                result_bytes=None,
                error=f"its outputs take {result.size} bytes: with the owner's other stored "
                f"bytes ({others}) that is over {QUOTA_SETTING}={max_owner_bytes}; delete "
                "datasets, models or prediction runs to make room",
            )
        else:
            values.update(
                ended_values(JobStatus.SUCCEEDED),
                result_sha256=result.sha256,
                result_bytes=result.size,
            )
        row = update_job(session, fenced(claim), values)
        if row is not None and before_commit is not None:
            before_commit()
    return row is not None


def finish_evaluation(
    db: Database, claim: Claim, *, rows_done: int, seconds: float, metrics: dict[str, Any]
) -> bool:
    """In ONE transaction: the job succeeds and its evaluation row gets ``metrics``."""
    values = {**ended_values(JobStatus.SUCCEEDED), "rows_done": rows_done, "train_seconds": seconds}
    with db.session() as session:
        row = update_job(session, fenced(claim), values)
        if row is None:
            return False
        session.execute(
            update(Evaluation).where(Evaluation.job_id == claim.job_id).values(metrics=metrics)
        )
    return True


def end_batch(
    db: Database,
    claim: Claim,
    status: JobStatus,
    *,
    rows_done: int,
    seconds: float,
    error: str | None = None,
) -> bool:
    """End the run ``status`` (cancelled, or failed with ``error``), dropping its output
    pieces."""
    values = {
        **ended_values(status),
        "rows_done": rows_done,
        "train_seconds": seconds,
        "output_parts": None,
        "error": error,
    }
    with db.session() as session:
        row = update_job(session, fenced(claim), values)
    return row is not None
