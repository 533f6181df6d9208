"""Queue verbs of the row-streaming kinds (prediction runs, large evaluations).

They share the ``jobs`` table, the claim, the lease, the cancel flag and the expiry sweep
with training (:mod:`app.jobs.queue`); these verbs add what differs: the entry is created
with a model and a row count, progress is ``rows_done`` (plus the output pieces a resumed
attempt continues from), and success stores a prediction run's output blob, or an
evaluation's metrics in its ``evaluations`` row, in the same fenced transaction.

A cancel request recorded before that commit wins, as it does for training
(:mod:`app.jobs.endings`): both verbs read it with the row locked
(:func:`app.jobs.queue.lock_fenced`) and end the run ``cancelled`` instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.jobs.queue import (
    BeforeCommit,
    Claim,
    ended_values,
    fenced,
    fenced_update,
    lock_fenced,
    update_job,
)
from app.storage.blobs import BlobRef
from app.storage.database import Database
from app.storage.tables import Evaluation, Job, JobKind, JobStatus, new_id
from app.storage.usage import QUOTA_SETTING, lock_owner, stored_bytes


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
        row = fenced_update(session, claim, values)
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
) -> JobStatus | None:
    """The run succeeds with its output blob (its pieces are dropped), whose size now
    counts toward the owner's quota in place of the estimate reserved at submit; unless
    that size takes the owner past BACKPROP_MAX_OWNER_BYTES (a float64 model's outputs are
    twice the estimate, or the quota was lowered): then it ends ``failed`` naming the
    setting, without outputs. A cancel requested before this commit wins: ``cancelled``.
    The status it ended in; None, with nothing written, when the lease is lost."""
    with db.session() as session:
        status = _cancel_or(session, claim, rows_done=rows_done, seconds=seconds)
        if status is not JobStatus.SUCCEEDED:
            return status
        owner = session.execute(select(Job.owner_id, Job.result_bytes).where(fenced(claim))).one()
        lock_owner(session, owner.owner_id)
        others = stored_bytes(session, owner.owner_id) - (owner.result_bytes or 0)
        values: dict[str, Any] = {
            "rows_done": rows_done,
            "train_seconds": seconds,
            "output_parts": None,
        }
        if others + result.size > max_owner_bytes:
            status = JobStatus.FAILED
            values.update(
                ended_values(status),
                result_bytes=None,
                error=f"its outputs take {result.size} bytes: with the owner's other stored "
                f"bytes ({others}) that is over {QUOTA_SETTING}={max_owner_bytes}; delete "
                "datasets, models or prediction runs to make room",
            )
        else:
            values.update(
                ended_values(status),
                result_sha256=result.sha256,
                result_bytes=result.size,
            )
        update_job(session, fenced(claim), values)
        if before_commit is not None:
            before_commit()
    return status


def finish_evaluation(
    db: Database,
    claim: Claim,
    *,
    rows_done: int,
    seconds: float,
    metrics: dict[str, Any],
    before_commit: BeforeCommit | None = None,
) -> JobStatus | None:
    """In ONE transaction: the job succeeds (its output pieces dropped) and its
    evaluation row gets ``metrics`` — or it ends ``cancelled`` when a cancel was requested
    before this commit. The status it ended in; None when the lease is lost."""
    values = {
        **ended_values(JobStatus.SUCCEEDED),
        "rows_done": rows_done,
        "train_seconds": seconds,
        "output_parts": None,
    }
    with db.session() as session:
        status = _cancel_or(session, claim, rows_done=rows_done, seconds=seconds)
        if status is not JobStatus.SUCCEEDED:
            return status
        update_job(session, fenced(claim), values)
        session.execute(
            update(Evaluation).where(Evaluation.job_id == claim.job_id).values(metrics=metrics)
        )
        if before_commit is not None:
            before_commit()
    return status


def _cancel_or(
    session: Session, claim: Claim, *, rows_done: int, seconds: float
) -> JobStatus | None:
    """With the row locked: None when the lease is lost; ``cancelled`` (written) when a
    cancel is pending; ``succeeded`` (for the caller to write) otherwise."""
    row = lock_fenced(session, claim)
    if row is None:
        return None
    if not row.cancel_requested:
        return JobStatus.SUCCEEDED
    update_job(session, fenced(claim), _ended(JobStatus.CANCELLED, rows_done, seconds))
    return JobStatus.CANCELLED


def _ended(status: JobStatus, rows_done: int, seconds: float) -> dict[str, Any]:
    return {
        **ended_values(status),
        "rows_done": rows_done,
        "train_seconds": seconds,
        "output_parts": None,
    }


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
    with db.session() as session:
        values = {**_ended(status, rows_done, seconds), "error": error}
        row = update_job(session, fenced(claim), values)
    return row is not None
