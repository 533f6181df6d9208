"""How a running job ends: the final verbs of its worker, each ONE fenced transaction.

``finish`` (succeeded + model), ``end_cancelled`` / ``finish_cancelled`` (cancelled, the
best-so-far model kept when asked), ``fail`` (failed + reason) and ``release`` (back to the
queue on a graceful stop). Like every worker write (:mod:`app.jobs.queue`) they change
nothing once the lease is lost.

A cancel request recorded before the final commit wins: ``finish``, ``fail`` and
``release`` read ``cancel_requested`` and ``keep_model`` with the row locked in their own
transaction (:func:`app.jobs.queue.lock_fenced`), so a request that lands after the last
epoch, after the worker's last lease check or just before a time-limit failure still ends
the job ``cancelled``, with its best-so-far model when ``keep_model``; otherwise with no
new model (a promoted halving trial keeps its last finished rung's).
A request that lands after the commit finds the job ended and is refused (409).

A job has at most one model: a continued halving trial, which keeps its last rung's
model while it trains the next rung, has it replaced in the commit that stores the new
one (``_retire_models``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session

from app.jobs import sweep_advance
from app.jobs.queue import (
    JOBS,
    AnyRow,
    BeforeCommit,
    Claim,
    Progress,
    core,
    ended_values,
    fenced,
    fenced_update,
    fenced_updates,
    lock_fenced,
    lock_fenced_many,
    progress_values,
    record_histories,
    record_history,
    update_job,
)
from app.storage.database import Database
from app.storage.tables import (
    ACTIVE_STATUSES,
    Evaluation,
    Job,
    JobStatus,
    Model,
    core_table,
    new_id,
    utcnow,
)


@dataclass(frozen=True)
class TrainedModel:
    """A model row to store: engine ``Model.get_config()`` and the blob holding
    ``Model.export_npz()``."""

    config: dict[str, Any]
    weights_sha256: str
    weights_size: int  # bytes of that blob
    metrics: dict[str, Any] | None


ModelMaker = Callable[[], TrainedModel | None]  # builds (and stores) the best-so-far model
InTransaction = Callable[[Session], None]  # more writes in an ending's transaction


@dataclass(frozen=True)
class Outcome:
    """What a final commit did: the status the job ended in (None: the lease was lost and
    nothing was written) and the model stored with it, if any."""

    status: JobStatus | None
    model_id: str | None = None


_ADD_MODEL = insert(core_table(Model))


def _model_row(claim: Claim, model: TrainedModel, job_row: Sequence[Any]) -> dict[str, Any]:
    """The ``models`` row of ``model``, trained by ``claim``'s job (``job_row``: the job's
    owner, network and dataset), under a new id."""
    owner_id, network_id, dataset_id = job_row
    return {
        "id": new_id("mdl"),
        "owner_id": owner_id,
        "job_id": claim.job_id,
        "network_id": network_id,
        "dataset_id": dataset_id,
        "config": model.config,
        "weights_sha256": model.weights_sha256,
        "weights_size": model.weights_size,
        "metrics": model.metrics,
        "created_at": utcnow(),
    }


def _lineage(row: Any) -> tuple[Any, Any, Any]:
    """A locked job row's (owner_id, network_id, dataset_id): its model's lineage."""
    return row.owner_id, row.network_id, row.dataset_id


def _store_model(
    session: Session, claim: Claim, model: TrainedModel, job_row: Sequence[Any]
) -> str:
    row = _model_row(claim, model, job_row)
    _retire_models(session, [claim.job_id])
    core(session).execute(_ADD_MODEL, row)
    return str(row["id"])


def _retire_models(session: Session, job_ids: Sequence[str]) -> None:
    """Make room for the new model of each of ``job_ids`` (a job has at most one): the
    model it already has, which only a continued halving trial does (it keeps its rung's
    model until its next rung's replaces it, so a cancel in between loses nothing), is
    deleted, or, when something was built on it (a queued or running job reads it: a
    prediction run, an evaluation, a training started from it; or it has evaluations),
    detached from the job and kept as a model of its own. One read when none of them
    has a model.

    The models are locked first (``FOR UPDATE`` on PostgreSQL), as the verbs that start
    a job reading a model lock it before they insert that job: a prediction run
    submitted meanwhile is then either committed before the in-use test reads the jobs,
    or refused (404) after this transaction. SQLite's write lock serialises them anyway."""
    connection = core(session)
    ids = list(connection.execute(_MODELS_OF_JOBS, {"b_jobs": list(job_ids)}).scalars())
    if not ids:
        return
    connection.execute(_DETACH_IN_USE, {"b_models": ids})
    connection.execute(_DELETE_ATTACHED, {"b_models": ids})


# _retire_models' statements, built once (it runs in the ending of every continued halving
# trial: building them cost ~1.5 ms of its ~2 ms, BENCHMARKS.md §9).
_MODELS, _EVALUATIONS = core_table(Model), core_table(Evaluation)
_MODELS_OF_JOBS = (
    select(_MODELS.c.id)
    .where(_MODELS.c.job_id.in_(bindparam("b_jobs", expanding=True)))
    .with_for_update()
)
_ACTIVE = JOBS.c.status.in_(ACTIVE_STATUSES)
_MINE = _MODELS.c.id.in_(bindparam("b_models", expanding=True))
# One EXISTS per index searched (one EXISTS over an OR scans the jobs by status).
_IN_USE = or_(
    exists().where(JOBS.c.init_model_id == _MODELS.c.id, _ACTIVE),
    exists().where(JOBS.c.model_id == _MODELS.c.id, _ACTIVE),
    exists().where(_EVALUATIONS.c.model_id == _MODELS.c.id),
)
_DETACH_IN_USE = update(_MODELS).where(_MINE, _IN_USE).values(job_id=None)
_DELETE_ATTACHED = delete(_MODELS).where(_MINE, _MODELS.c.job_id.is_not(None))


def _write(
    session: Session, claim: Claim, values: dict[str, Any], progress: Progress | None
) -> AnyRow | None:
    """The fenced update of the job's columns and, when it matched, its new history rows."""
    row = fenced_update(session, claim, values, Job.owner_id, Job.network_id, Job.dataset_id)
    if row is not None and progress is not None:
        record_history(session, claim.job_id, progress)
    return row


@dataclass(frozen=True)
class Finishing:
    """What :func:`finish` commits for one job: its claim, final progress and model, the
    best-so-far model's maker (for a cancel that wins), a hook run just before the commit,
    the checkpoint to keep for a later continuation (a paused sweep trial), and whether
    the run continued from a checkpoint (``continued``: only then can the job hold a
    model already, a promoted halving trial's last rung's, which the new one replaces)."""

    claim: Claim
    progress: Progress
    model: TrainedModel
    best: ModelMaker | None = None
    before_commit: BeforeCommit | None = None
    checkpoint_sha256: str | None = None
    continued: bool = False


def finish(
    db: Database,
    claim: Claim,
    progress: Progress,
    model: TrainedModel,
    *,
    best: ModelMaker | None = None,
    before_commit: BeforeCommit | None = None,
    checkpoint_sha256: str | None = None,
    continued: bool = False,
) -> Outcome:
    """In ONE transaction: the job succeeds with its final metrics and ``model`` is stored
    (and, for a sweep's trial, the sweep advances) — unless a cancel was requested before
    this commit, which wins: the job ends ``cancelled`` (see :func:`end_cancelled`;
    ``best`` makes the model kept with ``keep_model``). A ``checkpoint_sha256`` is kept for
    a later continuation (a paused sweep trial). Status None, and nothing written, when
    the lease is lost."""
    return finish_item(
        db, Finishing(claim, progress, model, best, before_commit, checkpoint_sha256, continued)
    )


def finish_item(db: Database, item: Finishing, *, then: InTransaction | None = None) -> Outcome:
    """:func:`finish` of a :class:`Finishing` (``then`` as :func:`finish_together`'s)."""
    outcome = finish_together(db, [item], then=then)[0]
    if outcome is not None:
        return outcome
    return end_cancelled(db, item.claim, item.progress, item.best)


def finish_together(
    db: Database, finishing: Sequence[Finishing], *, then: InTransaction | None = None
) -> list[Outcome | None]:
    """:func:`finish` for several jobs (the trials of a pack that ended at the same
    epoch) in ONE transaction, their outcomes in order: succeeded with its model, or
    status None (nothing written) when its lease is lost, or None when its cancel was
    requested: nothing is written for that job, which the caller ends on its own
    (:func:`finish` does, with :func:`end_cancelled`).

    One write lock and one commit for all instead of one each: on SQLite the write lock
    is the whole database's, so each transaction fewer is also one wait fewer for the
    other workers. Not for PostgreSQL, whose row locks let workers write side by side:
    holding several trials' rows at once there could deadlock with a sweep's cancel,
    which takes them in another order (``app.jobs.pack_run`` ends them one by one).

    ``then(session)`` runs in the same transaction once the jobs' rows are written and
    their sweeps advanced, before the ``before_commit`` hooks (which wait for the blobs
    the rows refer to): the worker's next claim (``app.jobs.next_claim``), made while
    the blobs are written and committed, or rolled back, with the endings."""
    with db.session() as session:
        outcomes = _finish_all(session, finishing)
        written = [
            item
            for item, outcome in zip(finishing, outcomes, strict=True)
            if outcome is not None and outcome.status is not None
        ]
        # Each sweep advances once, after all of its trials' rows are written.
        sweep_advance.trials_ended(session, [item.claim.job_id for item in written])
        if then is not None:
            then(session)
        for item in written:
            if item.before_commit is not None:
                item.before_commit()
    return outcomes


def _finish_all(session: Session, finishing: Sequence[Finishing]) -> list[Outcome | None]:
    """The jobs' finishes inside ``session``'s transaction (their sweeps advanced by the
    caller), a fixed number of statements whatever their number (each statement costs
    more than its rows: ~0.3 ms per trial and statement on a sweep's short trials, with
    the write lock held): one read locking the rows, then one write per table (the jobs'
    one per set of columns: paused trials also set their checkpoint). Each outcome as
    :func:`finish_together` returns it."""
    locked = lock_fenced_many(session, [item.claim for item in finishing])
    outcomes: list[Outcome | None] = []
    writes: list[tuple[Claim, dict[str, Any]]] = []
    histories: list[tuple[str, Progress]] = []
    models: list[dict[str, Any]] = []
    continued: list[str] = []  # the jobs that may hold a model already
    for item, row in zip(finishing, locked, strict=True):
        if row is None:
            outcomes.append(Outcome(None))
            continue
        if row.cancel_requested:
            outcomes.append(None)
            continue
        values = {**progress_values(item.progress), **ended_values(JobStatus.SUCCEEDED)}
        if item.checkpoint_sha256 is not None:
            values.update(
                checkpoint_sha256=item.checkpoint_sha256, checkpoint_epoch=item.progress.epoch
            )
        writes.append((item.claim, values))
        histories.append((item.claim.job_id, item.progress))
        models.append(_model_row(item.claim, item.model, _lineage(row)))
        if item.continued:
            continued.append(item.claim.job_id)
        outcomes.append(Outcome(JobStatus.SUCCEEDED, models[-1]["id"]))
    if writes:
        fenced_updates(session, writes)
        record_histories(session, histories)
        if continued:
            _retire_models(session, continued)
        core(session).execute(_ADD_MODEL, models)
    return outcomes


def end_cancelled(
    db: Database, claim: Claim, progress: Progress | None, best: ModelMaker | None
) -> Outcome:
    """End a running job whose cancel was requested (its progress recorded when given),
    keeping the model ``best()`` makes when the job's ``keep_model`` is set at commit.

    ``best`` runs between two transactions, never inside one (it writes a blob): the
    first finds ``keep_model`` and ends the job without a model when it is unset; the
    second stores the model, ``keep_model`` read again under the lock."""
    values = {
        **(progress_values(progress) if progress else {}),
        **ended_values(JobStatus.CANCELLED),
    }
    with db.session() as session:
        row = lock_fenced(session, claim)
        if row is None:
            return Outcome(None)
        if not (row.keep_model and best is not None):
            _write(session, claim, values, progress)
            sweep_advance.trial_ended(session, claim.job_id)
            return Outcome(JobStatus.CANCELLED)
    model = best()
    with db.session() as session:
        row = lock_fenced(session, claim)
        if row is None:
            return Outcome(None)
        _write(session, claim, values, progress)
        sweep_advance.trial_ended(session, claim.job_id)
        if model is None or not row.keep_model:
            return Outcome(JobStatus.CANCELLED)
        model_id = _store_model(session, claim, model, _lineage(row))
        return Outcome(JobStatus.CANCELLED, model_id)


def finish_cancelled(
    db: Database, claim: Claim, progress: Progress, model: TrainedModel | None
) -> bool:
    """End a cancelled running job, storing ``model`` (best so far) when given and the
    job's ``keep_model`` is set. False when the lease is lost."""
    best = (lambda: model) if model is not None else None
    return end_cancelled(db, claim, progress, best).status is not None


def fail(
    db: Database,
    claim: Claim,
    error: str,
    progress: Progress | None = None,
    model: TrainedModel | None = None,
    *,
    best: ModelMaker | None = None,
) -> bool:
    """End the job ``failed`` with ``error`` (shown to the user), storing ``model`` (the
    best so far of a job stopped by its time limit) when given — unless a cancel was
    requested before this commit, which wins as it does for :func:`finish`: the job ends
    ``cancelled`` (:func:`end_cancelled`), keeping ``model`` or else the one ``best``
    makes only when ``keep_model``. False when the lease is lost."""
    values = progress_values(progress) if progress is not None else {}
    values.update(ended_values(JobStatus.FAILED), error=error)
    with db.session() as session:
        row = lock_fenced(session, claim)
        if row is None:
            return False
        if not row.cancel_requested:
            _write(session, claim, values, progress)
            if model is not None:
                _store_model(session, claim, model, _lineage(row))
            sweep_advance.trial_ended(session, claim.job_id)
            return True
    kept = (lambda: model) if model is not None else best
    return end_cancelled(db, claim, progress, kept).status is not None


def release(
    db: Database,
    claim: Claim,
    *,
    progress: Progress | None = None,
    best: ModelMaker | None = None,
) -> bool:
    """Give a running job back (graceful shutdown): queued again, this attempt not counted,
    its last checkpoint kept. A job whose cancel was requested ends ``cancelled`` instead
    (:func:`end_cancelled`, with ``progress`` and the ``best`` model when ``keep_model``):
    the request is read under the lock of the same transaction, so one that lands just
    before the release is never lost. False when the lease is lost."""
    back_to_queue = {
        "status": JobStatus.QUEUED,
        "attempts": Job.attempts - 1,
        "lease_token": None,
        "lease_expires_at": None,
    }
    with db.session() as session:
        row = lock_fenced(session, claim)
        if row is None:
            return False
        if not row.cancel_requested:
            update_job(session, fenced(claim), back_to_queue)
            return True
    return end_cancelled(db, claim, progress, best).status is not None
