"""The job queue: the ``jobs`` table is the queue, and these verbs are its only writers.

A worker owns a running job through a lease: a random ``lease_token`` plus an expiry it
keeps renewing. Every write a worker makes is fenced by ``WHERE id = ? AND lease_token = ?
AND status = 'running'``, so a worker that lost its lease (paused, partitioned, presumed
dead) changes nothing: each verb returns False / None and the caller stops.

Claiming is one atomic statement: ``UPDATE jobs ... WHERE id = (SELECT id ... LIMIT 1)``,
with ``FOR UPDATE SKIP LOCKED`` in the subquery on PostgreSQL (concurrent claimers take
different rows) and inside a ``BEGIN IMMEDIATE`` transaction on SQLite (claimers queue
for the single write lock). All timestamps are :func:`app.storage.tables.utcnow`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, not_, select, true, update
from sqlalchemy.orm import Session

from app.storage.database import Database
from app.storage.tables import Job, JobStatus, Model, utcnow

BeforeCommit = Callable[[], None]
AnyRow = Row[*tuple[Any, ...]]


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one running job (valid while ``lease_token`` matches the row)."""

    job_id: str
    lease_token: str
    worker_id: str
    attempt: int  # 1 for the first run; a resumed job counts up


@dataclass(frozen=True)
class LeaseState:
    """What a heartbeat learned: is the job still ours, and did someone ask to cancel it?"""

    ours: bool
    cancel_requested: bool = False
    keep_model: bool = False


@dataclass(frozen=True)
class Progress:
    """Training state a worker reports; ``history`` is one dict per finished epoch."""

    epoch: int
    metrics: dict[str, Any] | None
    history: list[dict[str, Any]]
    samples_trained: int
    train_seconds: float
    findings: list[dict[str, Any]] = field(default_factory=list)  # app.engine.findings


@dataclass(frozen=True)
class TrainedModel:
    """A model row to store: engine ``Model.get_config()`` and the blob holding
    ``Model.export_npz()``."""

    config: dict[str, Any]
    weights_sha256: str
    weights_size: int  # bytes of that blob
    metrics: dict[str, Any] | None


_NO_SYNC = {"synchronize_session": False}


def _update(
    session: Session, where: ColumnElement[bool], values: dict[str, Any], *returning: Any
) -> AnyRow | None:
    """One ``UPDATE jobs ... RETURNING`` statement; the first returned row, or None."""
    statement = update(Job).where(where).values(**values).returning(*(returning or (Job.id,)))
    return session.execute(statement, execution_options=_NO_SYNC).first()


def _fenced(claim: Claim) -> ColumnElement[bool]:
    return and_(
        Job.id == claim.job_id,
        Job.lease_token == claim.lease_token,
        Job.status == JobStatus.RUNNING,
    )


def _progress_values(progress: Progress) -> dict[str, Any]:
    return {
        "epoch": progress.epoch,
        "metrics": progress.metrics,
        "history": progress.history,
        "findings": progress.findings,
        "samples_trained": progress.samples_trained,
        "train_seconds": progress.train_seconds,
    }


def _ended(status: JobStatus) -> dict[str, Any]:
    """Column values of a job reaching a terminal ``status`` (the checkpoint is dropped)."""
    return {
        "status": status,
        "finished_at": utcnow(),
        "lease_token": None,
        "lease_expires_at": None,
        "checkpoint_sha256": None,
    }


# --- the API side -------------------------------------------------------------------


def enqueue(
    session: Session,
    *,
    owner_id: int,
    network_id: str,
    dataset_id: str,
    init_model_id: str | None,
    network_config: dict[str, Any],
    options: dict[str, Any],
    epochs: int,
) -> Job:
    """Add a queued job (flushed, so ``job.id`` is set); it runs once the caller commits."""
    job = Job(
        owner_id=owner_id,
        network_id=network_id,
        dataset_id=dataset_id,
        init_model_id=init_model_id,
        network_config=network_config,
        options=options,
        epochs=epochs,
        status=JobStatus.QUEUED,
        history=[],
        findings=[],
    )
    session.add(job)
    session.flush()
    return job


def request_cancel(session: Session, job: Job, *, keep_model: bool = False) -> bool:
    """Cancel ``job``: a queued job is cancelled at once and never starts; a running one
    gets ``cancel_requested`` (its worker stops within one batch and ends it ``cancelled``,
    saving the best-so-far model when ``keep_model``). False, and no change, when the job
    already ended. ``job`` is refreshed either way.
    """
    flagged = _update(
        session,
        and_(Job.id == job.id, Job.status == JobStatus.QUEUED),
        {**_ended(JobStatus.CANCELLED), "cancel_requested": True, "keep_model": keep_model},
    ) or _update(
        session,
        and_(Job.id == job.id, Job.status == JobStatus.RUNNING),
        {"cancel_requested": True, "keep_model": keep_model},
    )
    session.refresh(job)
    return flagged is not None


# --- the worker side ----------------------------------------------------------------


def has_queued(db: Database) -> bool:
    """Is any job waiting? A read: idle workers poll this without taking SQLite's write
    lock, and claim only when there is something to claim."""
    with db.read_session() as session:
        return (
            session.scalar(select(Job.id).where(Job.status == JobStatus.QUEUED).limit(1))
            is not None
        )


def claim_next(db: Database, *, worker_id: str, lease_seconds: float) -> Claim | None:
    """Take the oldest queued job, or None when the queue is empty. Counts an attempt."""
    token = secrets.token_hex(16)
    now = utcnow()
    oldest = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED)
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite has the write lock
        .scalar_subquery()
    )
    values = {
        "status": JobStatus.RUNNING,
        "attempts": Job.attempts + 1,
        "lease_token": token,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "worker_id": worker_id,
        "started_at": func.coalesce(Job.started_at, now),
    }
    with db.session() as session:
        where = and_(Job.id == oldest, Job.status == JobStatus.QUEUED)
        row = _update(session, where, values, Job.id, Job.attempts)
    if row is None:
        return None
    job_id, attempts = row
    return Claim(job_id=job_id, lease_token=token, worker_id=worker_id, attempt=attempts)


def _lease_state(row: AnyRow | None) -> LeaseState:
    """A fenced ``(cancel_requested, keep_model)`` row, or None when the lease is lost."""
    if row is None:
        return LeaseState(ours=False)
    cancel_requested, keep_model = row
    return LeaseState(ours=True, cancel_requested=cancel_requested, keep_model=keep_model)


def heartbeat(db: Database, claim: Claim, *, lease_seconds: float) -> LeaseState:
    """Renew the lease; report whether it is still ours and whether a cancel is pending."""
    expires = utcnow() + timedelta(seconds=lease_seconds)
    with db.session() as session:
        row = _update(
            session,
            _fenced(claim),
            {"lease_expires_at": expires},
            Job.cancel_requested,
            Job.keep_model,
        )
    return _lease_state(row)


def read_lease(db: Database, claim: Claim) -> LeaseState:
    """What :func:`heartbeat` reports, without renewing: a read, so a worker can poll for
    a cancel every fraction of a second without taking SQLite's write lock."""
    with db.read_session() as session:
        row = session.execute(
            select(Job.cancel_requested, Job.keep_model).where(_fenced(claim))
        ).first()
    return _lease_state(row)


def save_progress(
    db: Database,
    claim: Claim,
    progress: Progress,
    *,
    checkpoint_sha256: str | None = None,
    before_commit: BeforeCommit | None = None,
) -> bool:
    """Record progress (and the blob of a resumable checkpoint taken at ``progress.epoch``).
    False, with nothing written, when the lease is lost."""
    values = _progress_values(progress)
    if checkpoint_sha256 is not None:
        values.update(checkpoint_sha256=checkpoint_sha256, checkpoint_epoch=progress.epoch)
    with db.session() as session:
        row = _update(session, _fenced(claim), values)
        if row is not None and before_commit is not None:
            before_commit()
    return row is not None


def _store_model(session: Session, claim: Claim, model: TrainedModel, job_row: AnyRow) -> str:
    owner_id, network_id = job_row
    row = Model(
        owner_id=owner_id,
        job_id=claim.job_id,
        network_id=network_id,
        config=model.config,
        weights_sha256=model.weights_sha256,
        weights_size=model.weights_size,
        metrics=model.metrics,
    )
    session.add(row)
    session.flush()
    return row.id


def finish(
    db: Database,
    claim: Claim,
    progress: Progress,
    model: TrainedModel,
    *,
    before_commit: BeforeCommit | None = None,
) -> str | None:
    """In ONE transaction: the job succeeds with its final metrics and its model is stored.
    Returns the model id, or None (and nothing written) when the lease is lost."""
    values = {**_progress_values(progress), **_ended(JobStatus.SUCCEEDED)}
    with db.session() as session:
        row = _update(session, _fenced(claim), values, Job.owner_id, Job.network_id)
        if row is None:
            return None
        model_id = _store_model(session, claim, model, row)
        if before_commit is not None:
            before_commit()
    return model_id


def finish_cancelled(
    db: Database, claim: Claim, progress: Progress, model: TrainedModel | None
) -> bool:
    """End a cancelled running job, storing ``model`` (best so far) when given."""
    values = {**_progress_values(progress), **_ended(JobStatus.CANCELLED)}
    with db.session() as session:
        row = _update(session, _fenced(claim), values, Job.owner_id, Job.network_id)
        if row is not None and model is not None:
            _store_model(session, claim, model, row)
    return row is not None


def fail(
    db: Database,
    claim: Claim,
    error: str,
    progress: Progress | None = None,
    model: TrainedModel | None = None,
) -> bool:
    """End the job ``failed`` with ``error`` (shown to the user), storing ``model`` (the
    best so far of a job stopped by its time limit) when given."""
    values = _progress_values(progress) if progress is not None else {}
    values.update(_ended(JobStatus.FAILED), error=error)
    with db.session() as session:
        row = _update(session, _fenced(claim), values, Job.owner_id, Job.network_id)
        if row is not None and model is not None:
            _store_model(session, claim, model, row)
    return row is not None


def release(db: Database, claim: Claim) -> bool:
    """Give a running job back (graceful shutdown): queued again, this attempt not counted,
    its last checkpoint kept. A job whose cancel was requested ends ``cancelled`` instead."""
    back_to_queue = {
        "status": JobStatus.QUEUED,
        "attempts": Job.attempts - 1,
        "lease_token": None,
        "lease_expires_at": None,
    }
    with db.session() as session:
        row = _update(
            session,
            and_(_fenced(claim), Job.cancel_requested.is_(True)),
            _ended(JobStatus.CANCELLED),
        ) or _update(session, _fenced(claim), back_to_queue)
    return row is not None


def requeue_expired(db: Database, *, max_attempts: int) -> int:
    """Deal with running jobs whose lease expired (their worker died or hung): a job with a
    pending cancel ends ``cancelled`` (never revived), unless the cancel asked to keep the
    model and a checkpoint holds trained weights; one that used ``max_attempts`` ends
    ``failed`` with the reason; any other (the keep_model cancel included) goes back to the
    queue and resumes from its last checkpoint. Returns how many jobs were handled.

    The dead worker took the best-so-far weights with it, so ending a keep_model cancel here
    would drop the model the cancel was accepted for: the next worker resumes the
    checkpoint, sees the pending cancel at once and ends the job ``cancelled`` with it."""
    expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < utcnow())
    reason = (
        f"gave up after {max_attempts} attempts: each time, the worker running this job "
        "stopped before finishing (its lease expired)"
    )
    model_to_keep = and_(
        Job.keep_model.is_(True),
        Job.checkpoint_sha256.is_not(None),
        Job.attempts < max_attempts,  # a job that kills its workers is not tried again
    )
    rules: list[tuple[ColumnElement[bool], dict[str, Any]]] = [
        (and_(Job.cancel_requested.is_(True), not_(model_to_keep)), _ended(JobStatus.CANCELLED)),
        (Job.attempts >= max_attempts, {**_ended(JobStatus.FAILED), "error": reason}),
        (true(), {"status": JobStatus.QUEUED, "lease_token": None, "lease_expires_at": None}),
    ]
    handled = 0
    with db.session() as session:
        for condition, values in rules:
            statement = update(Job).where(expired, condition).values(**values).returning(Job.id)
            handled += len(session.execute(statement, execution_options=_NO_SYNC).all())
    return handled
