"""Job verbs: submit (validated up front so jobs fail here, not in the worker), read, cancel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, raiseload

from app.config import Settings
from app.engine.errors import DataError
from app.engine.splitting import validation_rows
from app.engine.training import TrainingOptions
from app.jobs import queue
from app.services.errors import Conflict, LimitExceeded, NotFound, TooManyJobs, invalid_at
from app.services.fit import check_init_model, check_labels_fit
from app.services.ownership import get_owned, page
from app.services.quota import check_owner_bytes
from app.storage.database import Database
from app.storage.tables import (
    ACTIVE_STATUSES,
    Dataset,
    Job,
    JobEpoch,
    JobKind,
    JobStatus,
    Model,
    Network,
    Owner,
)

PATH_LOC = ("path", "job_id")
RETRY_AFTER_SECONDS = 10
TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# /v1/jobs is about training: prediction runs and evaluations share the queue, not the API.
TRAINING = Job.kind == JobKind.TRAIN


def training_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The engine's normalised TrainingOptions dict for the job body's options."""
    with invalid_at(("body",)):
        return TrainingOptions.from_dict(spec).to_dict()


def submit_job(
    db: Database,
    settings: Settings,
    *,
    owner_id: int,
    network_id: str,
    dataset_id: str,
    init_model_id: str | None,
    options: dict[str, Any],
) -> Job:
    """Check ids, fit and limits, then enqueue; all in one transaction."""
    normalised = training_options(options)
    epochs = int(normalised["epochs"])
    with db.session() as session:
        check_active_jobs(session, settings, owner_id)
        network = get_owned(
            session, Network, network_id, owner_id=owner_id, loc=("body", "network_id")
        )
        dataset = get_owned(
            session,
            Dataset,
            dataset_id,
            owner_id=owner_id,
            loc=("body", "dataset_id"),
            for_update=True,
        )
        init_classes = None
        if init_model_id is not None:
            # Locked like the dataset: a concurrent delete_model must either see this job
            # (and refuse) or finish first (and this submit answers 404).
            init_model = get_owned(
                session,
                Model,
                init_model_id,
                owner_id=owner_id,
                loc=("body", "init_model_id"),
                for_update=True,
            )
            check_init_model(network.config, init_model.config, dataset)
            init_classes = init_model.config.get("classes")
        check_labels_fit(network.config, dataset, init_classes)
        split = float(normalised.get("validation_split") or 0.0)
        if split > 0:  # what the worker would find, said now
            with invalid_at(("body",), DataError):
                validation_rows(dataset.n_samples, split)
        check_job_size(
            settings, epochs=epochs, n_samples=dataset.n_samples, parameters=network.parameter_count
        )
        # The model the job will store: about 4 bytes per parameter (float32 weights).
        model_bytes = 4 * network.parameter_count
        check_owner_bytes(
            session, settings, owner_id=owner_id, adding=model_bytes, loc=("body", "network_id")
        )
        return queue.enqueue(
            session,
            owner_id=owner_id,
            network_id=network.id,
            dataset_id=dataset.id,
            init_model_id=init_model_id,
            network_config=network.config,
            options=normalised,
            epochs=epochs,
        )


def check_job_size(
    settings: Settings,
    *,
    epochs: int,
    n_samples: int,
    parameters: int,
    loc: tuple[str | int, ...] = ("body", "epochs"),
) -> None:
    """422 over BACKPROP_MAX_JOB_SAMPLE_EPOCHS, 413 over BACKPROP_MAX_JOB_COST."""
    sample_epochs = epochs * n_samples
    if sample_epochs > settings.max_job_sample_epochs:
        raise LimitExceeded(
            "epochs x samples",
            sample_epochs,
            setting="BACKPROP_MAX_JOB_SAMPLE_EPOCHS",
            limit=settings.max_job_sample_epochs,
            loc=loc,
            status_code=422,
        )
    cost = sample_epochs * parameters
    if cost > settings.max_job_cost:
        raise LimitExceeded(
            "the job's cost (epochs x samples x parameters)",
            cost,
            setting="BACKPROP_MAX_JOB_COST",
            limit=settings.max_job_cost,
            loc=loc,
        )


def check_active_jobs(session: Session, settings: Settings, owner_id: int) -> None:
    """429 when the owner has BACKPROP_MAX_ACTIVE_JOBS queued or running entries: training
    jobs, prediction runs and worker-side evaluations alike (each takes a worker); a sweep
    counts as one."""
    # Lock the owner row (PostgreSQL) so two submits cannot both take the last slot;
    # SQLite's write transactions are serialised already.
    session.scalar(select(Owner.id).where(Owner.id == owner_id).with_for_update())
    active = (
        session.scalar(
            select(func.count(func.distinct(func.coalesce(Job.sweep_id, Job.id))))
            .select_from(Job)
            .where(Job.owner_id == owner_id, Job.status.in_(ACTIVE_STATUSES))
        )
        or 0
    )
    if active >= settings.max_active_jobs:
        raise TooManyJobs(active, settings.max_active_jobs, RETRY_AFTER_SECONDS)


def model_ids_of(session: Session, job_ids: list[str]) -> dict[str, str]:
    """job id -> id of the model it made, for the jobs that made one."""
    if not job_ids:
        return {}
    rows = session.execute(select(Model.job_id, Model.id).where(Model.job_id.in_(job_ids)))
    return {job_id: model_id for job_id, model_id in rows if job_id is not None}


def get_job(db: Database, *, owner_id: int, job_id: str) -> tuple[Job, str | None]:
    """The job and the id of its model (if any)."""
    with db.read_session() as session:
        job = _training_job(session, owner_id=owner_id, job_id=job_id)
        return job, model_ids_of(session, [job.id]).get(job.id)


def _training_job(session: Session, *, owner_id: int, job_id: str, for_update: bool = False) -> Job:
    """The owner's training job ``job_id`` (404 for any other kind)."""
    job = get_owned(session, Job, job_id, owner_id=owner_id, loc=PATH_LOC, for_update=for_update)
    if job.kind != JobKind.TRAIN:
        raise NotFound("job", PATH_LOC)
    return job


def list_jobs(
    db: Database,
    *,
    owner_id: int,
    status: str | None = None,
    network_id: str | None = None,
    dataset_id: str | None = None,
    sweep_id: str | None = None,
    limit: int,
    offset: int,
) -> tuple[list[tuple[Job, str | None]], int]:
    """A page of the owner's jobs (optionally only those in ``status``, of ``network_id``,
    on ``dataset_id`` or trials of ``sweep_id``) with their model ids. Rows come without
    ``history``, ``findings`` and ``network_config``: reading them raises; lists show the
    latest ``metrics``."""
    filters = {
        Job.status: status,
        Job.network_id: network_id,
        Job.dataset_id: dataset_id,
        Job.sweep_id: sweep_id,
    }
    where = [TRAINING, *(column == value for column, value in filters.items() if value is not None)]
    unloaded = [
        *(defer(column, raiseload=True) for column in (Job.findings, Job.network_config)),
        raiseload(Job.epoch_rows),
    ]
    with db.read_session() as session:
        jobs, total = page(
            session,
            Job,
            owner_id=owner_id,
            limit=limit,
            offset=offset,
            where=where,
            options=unloaded,
        )
        models = model_ids_of(session, [job.id for job in jobs])
    return [(job, models.get(job.id)) for job in jobs], total


def cancel_job(
    db: Database, *, owner_id: int, job_id: str, keep_model: bool
) -> tuple[Job, str | None]:
    """Cancel a queued job now, or ask a running one to stop; 409 once it has finished."""
    with db.session() as session:
        job = _training_job(session, owner_id=owner_id, job_id=job_id, for_update=True)
        if job.status in TERMINAL:
            raise Conflict(
                f"the job has already finished ({job.status})", PATH_LOC, error_type="job_finished"
            )
        queue.request_cancel(session, job, keep_model=keep_model)
    return get_job(db, owner_id=owner_id, job_id=job_id)


@dataclass(frozen=True)
class JobProgress:
    status: str
    history: list[dict[str, Any]]
    error: str | None
    model_id: str | None
    findings: list[dict[str, Any]]

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def job_epoch(db: Database, *, owner_id: int, job_id: str) -> tuple[str, int]:
    """A job's ``(status, epoch)``: two small columns, what an event stream polls before it
    reads the history (only when the epoch moved or the job finished)."""
    with db.read_session() as session:
        row = session.execute(
            select(Job.status, Job.epoch).where(
                Job.id == job_id, Job.owner_id == owner_id, TRAINING
            )
        ).first()
    if row is None:
        raise NotFound("job", PATH_LOC)
    return str(row[0]), int(row[1] or 0)


def job_history(session: Session, job_id: str, *, after: int = 0) -> list[dict[str, Any]]:
    """The job's history entries of the epochs after ``after``, in order."""
    query = select(JobEpoch.record).where(JobEpoch.job_id == job_id, JobEpoch.epoch > after)
    return list(session.scalars(query.order_by(JobEpoch.epoch)))


def job_progress(db: Database, *, owner_id: int, job_id: str, after: int = 0) -> JobProgress:
    """Status, history (the epochs after ``after``: an event stream reads only the new
    ones) and findings of a job (what the event stream polls)."""
    with db.read_session() as session:
        row = session.execute(
            select(Job.status, Job.error, Job.findings).where(
                Job.id == job_id, Job.owner_id == owner_id, TRAINING
            )
        ).first()
        if row is None:
            raise NotFound("job", PATH_LOC)
        status, error, findings = row
        history = job_history(session, job_id, after=after)
        model_id = model_ids_of(session, [job_id]).get(job_id) if status in TERMINAL else None
    return JobProgress(
        status=status,
        history=history,
        error=error,
        model_id=model_id,
        findings=findings or [],
    )
