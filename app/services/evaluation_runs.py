"""Evaluations by size: a dataset of at most BACKPROP_SYNC_EVALUATION_ROWS rows is scored
in the request (:mod:`app.services.evaluations`); a larger one is queued for a worker
(a job of kind ``evaluate``, see :mod:`app.jobs.batch_attempt`), its evaluation row
created at once with empty metrics that the worker fills in when the job succeeds.

Either way the evaluation is read the same way; its state (:class:`EvaluationState`)
is its job's (queued, running, failed, cancelled) until it has metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs import batch_queue, queue
from app.services import evaluations
from app.services.errors import Conflict, NotFound
from app.services.evaluations import DATASET_LOC, check_labels
from app.services.jobs import check_active_jobs
from app.services.model_cache import ModelCache
from app.services.models import PATH_LOC
from app.services.ownership import get_owned
from app.services.predict import load_model
from app.services.prediction_runs import check_width
from app.storage import tables
from app.storage.blob_arrays import load_array
from app.storage.blobs import BlobStore
from app.storage.database import Database
from app.storage.tables import ACTIVE_STATUSES, Dataset, Evaluation, Job, JobKind, JobStatus

EVALUATION_LOC = ("path", "evaluation_id")


@dataclass(frozen=True)
class EvaluationState:
    """Where an evaluation stands: ``succeeded`` once it has metrics."""

    status: str
    error: str | None = None
    rows_done: int | None = None  # a worker's evaluation: rows scored so far
    rows_total: int | None = None


DONE = EvaluationState(JobStatus.SUCCEEDED)


def evaluate(
    db: Database,
    blobs: BlobStore,
    cache: ModelCache,
    settings: Settings,
    *,
    owner_id: int,
    model_id: str,
    dataset_id: str,
) -> tuple[Evaluation, EvaluationState]:
    """Score the model on the dataset now, or queue the work when the dataset has more
    than BACKPROP_SYNC_EVALUATION_ROWS rows (both owned: 404; widths and labels are
    checked either way: 422)."""
    entry = load_model(db, blobs, cache, settings, owner_id=owner_id, model_id=model_id)
    with db.read_session() as session:
        dataset = get_owned(session, Dataset, dataset_id, owner_id=owner_id, loc=DATASET_LOC)
    if dataset.n_samples <= settings.sync_evaluation_rows:
        row = evaluations.evaluate_model(
            db, blobs, cache, settings, owner_id=owner_id, model_id=model_id, dataset_id=dataset_id
        )
        return row, DONE
    with db.read_session() as session:
        model_row = get_owned(session, tables.Model, model_id, owner_id=owner_id, loc=PATH_LOC)
    check_width(model_row, dataset)
    check_labels(entry.model, load_array(blobs, dataset.y_sha256))
    with db.session() as session:
        check_active_jobs(session, settings, owner_id)
        # Locked, as for a prediction run: a delete sees the job or wins (404 here). The
        # dataset first, as delete_dataset takes them (its delete sets its models'
        # dataset_id): the other order could deadlock with it on PostgreSQL.
        get_owned(session, Dataset, dataset_id, owner_id=owner_id, loc=DATASET_LOC, for_update=True)
        get_owned(session, tables.Model, model_id, owner_id=owner_id, loc=PATH_LOC, for_update=True)
        job = batch_queue.enqueue_batch(
            session,
            kind=JobKind.EVALUATE,
            owner_id=owner_id,
            model_id=model_id,
            dataset_id=dataset_id,
            rows_total=dataset.n_samples,
            options={},
        )
        row = Evaluation(
            owner_id=owner_id, model_id=model_id, dataset_id=dataset_id, metrics={}, job_id=job.id
        )
        session.add(row)
        session.flush()
    return row, EvaluationState(JobStatus.QUEUED, rows_done=0, rows_total=dataset.n_samples)


def states(session: Session, rows: Sequence[Evaluation]) -> dict[str, EvaluationState]:
    """Evaluation id -> its state (one query for the rows computed by workers)."""
    result = {row.id: DONE for row in rows}
    pending = {row.job_id: row.id for row in rows if row.job_id is not None and not row.metrics}
    if pending:
        jobs = session.execute(
            select(Job.id, Job.status, Job.error, Job.rows_done, Job.rows_total).where(
                Job.id.in_(pending)
            )
        )
        for job_id, status, error, done, total in jobs:
            result[pending[job_id]] = EvaluationState(status, error, done, total)
    return result


def get_evaluation(
    db: Database, *, owner_id: int, evaluation_id: str
) -> tuple[Evaluation, EvaluationState]:
    """One of the owner's evaluations and its state (404 otherwise)."""
    with db.read_session() as session:
        row = _owned(session, owner_id=owner_id, evaluation_id=evaluation_id)
        return row, states(session, [row])[row.id]


def cancel_evaluation(
    db: Database, *, owner_id: int, evaluation_id: str
) -> tuple[Evaluation, EvaluationState]:
    """Cancel an evaluation a worker has not finished: a queued one now, a running one
    at the end of a chunk once its worker renews its lease; 409 ``job_finished`` once it
    has ended (or was computed in its request)."""
    with db.session() as session:
        row = _owned(session, owner_id=owner_id, evaluation_id=evaluation_id)
        job = (
            session.scalar(select(Job).where(Job.id == row.job_id).with_for_update())
            if row.job_id is not None and not row.metrics
            else None
        )
        if job is None or job.status not in ACTIVE_STATUSES:
            status = job.status if job is not None else JobStatus.SUCCEEDED
            raise Conflict(
                f"the evaluation has already finished ({status})",
                EVALUATION_LOC,
                error_type="job_finished",
            )
        queue.request_cancel(session, job)
    return get_evaluation(db, owner_id=owner_id, evaluation_id=evaluation_id)


def delete_evaluation(db: Database, *, owner_id: int, evaluation_id: str) -> None:
    """Delete an evaluation that has ended (its scores leave the model's list and card);
    409 ``job_active`` while a worker may still compute it."""
    with db.session() as session:
        row = _owned(session, owner_id=owner_id, evaluation_id=evaluation_id, for_update=True)
        state = states(session, [row])[row.id]
        if state.status in ACTIVE_STATUSES:
            raise Conflict(
                f"the evaluation is {state.status}: cancel it first, then delete it",
                EVALUATION_LOC,
                error_type="job_active",
            )
        job_id = row.job_id
        session.delete(row)
        if job_id is not None:  # its ended job, which nothing else names
            session.flush()
            session.execute(delete(Job).where(Job.id == job_id))


def _owned(
    session: Session, *, owner_id: int, evaluation_id: str, for_update: bool = False
) -> Evaluation:
    query = select(Evaluation).where(
        Evaluation.id == evaluation_id, Evaluation.owner_id == owner_id
    )
    row = session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise NotFound("evaluation", EVALUATION_LOC)
    return row


def list_evaluations(
    db: Database, *, owner_id: int, model_id: str, limit: int, offset: int
) -> tuple[list[tuple[Evaluation, EvaluationState]], int]:
    """A page of the model's evaluations (newest first) with their states."""
    rows, total = evaluations.list_evaluations(
        db, owner_id=owner_id, model_id=model_id, limit=limit, offset=offset
    )
    with db.read_session() as session:
        found = states(session, rows)
    return [(row, found[row.id]) for row in rows], total
