"""The job queue: the ``jobs`` table is the queue, and these verbs are its only writers.

How a running job ends (finish, cancel, fail, release) is :mod:`app.jobs.endings`.

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

import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    bindparam,
    delete,
    func,
    insert,
    not_,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.jobs import fairness, sweep_advance
from app.storage.database import Database
from app.storage.tables import Job, JobEpoch, JobKind, JobStatus, core_table, utcnow

BeforeCommit = Callable[[], None]
AnyRow = Row[*tuple[Any, ...]]


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one running job (valid while ``lease_token`` matches the row)."""

    job_id: str
    lease_token: str
    worker_id: str
    attempt: int  # 1 for the first run; a resumed job counts up
    kind: str = JobKind.TRAIN  # what the job does (the worker's attempt dispatches on it)
    # A cancel already requested when the claim read the row (a job back in the queue
    # with one pending, queue.requeue_expired): the pulse raises its alarm at once.
    cancel_requested: bool = False
    # ``time.monotonic()`` just before the claim computed its lease's expiry: the lease's
    # deadline counts from it (the pulse may hold the job a while later: a claim made in
    # the previous job's ending, app/jobs/next_claim.py). None: from when it is held.
    leased_at: float | None = None

    def fence(self) -> dict[str, Any]:
        """The bound parameters of the fenced statements: the job and its lease token."""
        return {"job_id": self.job_id, "token": self.lease_token}


@dataclass(frozen=True)
class LeaseState:
    """What a heartbeat learned: is the job still ours, and did someone ask to cancel it?"""

    ours: bool
    cancel_requested: bool = False
    keep_model: bool = False


@dataclass(frozen=True)
class Progress:
    """Training state a worker reports. ``history``: the entries of the epochs not yet
    recorded, the last ones up to ``epoch`` (epochs ``epoch - len(history) + 1 .. epoch``),
    appended to ``job_epochs`` by :func:`record_history`."""

    epoch: int
    metrics: dict[str, Any] | None
    history: list[dict[str, Any]]
    samples_trained: int
    train_seconds: float
    findings: list[dict[str, Any]] = field(default_factory=list)  # app.engine.findings


NO_SYNC = {"synchronize_session": False}
JOBS, EPOCHS = core_table(Job), core_table(JobEpoch)


def fenced_update(
    session: Session, claim: Claim, values: dict[str, Any], *returning: Any
) -> AnyRow | None:
    """``update_job`` of the claim's fenced row with plain values (no SQL expressions),
    through a statement built once per set of columns (every trial's progress and ending
    write the same few sets; building and caching a new statement cost as much as
    running it). A None bound to a JSON column is stored as JSON null: writes that clear
    one to SQL NULL (a batch run's ``output_parts``) and expressions such as
    ``attempts - 1`` go through ``update_job(session, fenced(claim), values)``."""
    statement = _fenced_update(tuple(sorted(values)), tuple(returning) or (Job.id,))
    return core(session).execute(statement, _fenced_params(claim, values)).first()


def _fenced_params(claim: Claim, values: dict[str, Any]) -> dict[str, Any]:
    params = claim.fence()
    params.update({f"v_{name}": value for name, value in values.items()})
    return params


@functools.lru_cache(maxsize=64)
def _fenced_update(columns: tuple[str, ...], returning: tuple[Any, ...]) -> Any:
    """The fenced UPDATE of ``columns`` (bound as ``v_<name>``), RETURNING ``returning``
    (none when empty)."""
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
    statement = update(JOBS).where(_FENCED).values(**values)
    return statement.returning(*returning) if returning else statement


def core(session: Session) -> Connection:
    """The session's connection (its transaction begins here if it has not yet), for the
    worker's statements: they name tables, not ORM objects, so the ORM's bulk-statement
    layer has nothing to keep in step, and on a sweep's short trials it cost more than the
    statements themselves (BENCHMARKS.md, sweeps)."""
    return session.connection()


def update_job(
    session: Session, where: ColumnElement[bool], values: dict[str, Any], *returning: Any
) -> AnyRow | None:
    """One ``UPDATE jobs ... RETURNING`` statement; the first returned row, or None."""
    statement = update(JOBS).where(where).values(**values).returning(*(returning or (Job.id,)))
    return core(session).execute(statement).first()


def fenced(claim: Claim) -> ColumnElement[bool]:
    return and_(
        Job.id == claim.job_id,
        Job.lease_token == claim.lease_token,
        Job.status == JobStatus.RUNNING,
    )


def fenced_updates(session: Session, writes: Sequence[tuple[Claim, dict[str, Any]]]) -> None:
    """:func:`fenced_update` of several claims' rows, each with its own plain values, in
    one statement per set of columns (an executemany) and without RETURNING: for rows
    the caller has already locked and found fenced in this transaction
    (:func:`lock_fenced_many`)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for claim, values in writes:
        groups.setdefault(tuple(sorted(values)), []).append(_fenced_params(claim, values))
    connection = core(session)
    for columns, rows in groups.items():
        connection.execute(_fenced_update(columns, ()), rows)


def lock_fenced_many(session: Session, claims: Sequence[Claim]) -> list[AnyRow | None]:
    """:func:`lock_fenced` of several claims in one statement, the rows locked in the
    order of their ids: each claim's row (``cancel_requested``, ``keep_model``,
    ``owner_id``, ``network_id``, ``dataset_id``), or None where its lease is lost."""
    if len(claims) == 1:
        return [lock_fenced(session, claims[0])]
    pairs = [(claim.job_id, claim.lease_token) for claim in claims]
    found = {row.id: row for row in core(session).execute(_LOCK_FENCED_MANY, {"b_pairs": pairs})}
    return [found.get(claim.job_id) for claim in claims]


def lock_fenced(session: Session, claim: Claim) -> AnyRow | None:
    """The fenced job's ``(cancel_requested, keep_model, owner_id, network_id,
    dataset_id)``, locked
    until the transaction ends (``FOR UPDATE`` on PostgreSQL; on SQLite the write
    transaction holds the database lock from its ``BEGIN IMMEDIATE``): a cancel request
    lands either before this read, and is seen, or after the commit, and finds the job
    ended. None when the lease is lost. Every verb that ends a running job reads it."""
    params = claim.fence()
    return core(session).execute(_LOCK_FENCED, params).first()


def progress_values(progress: Progress) -> dict[str, Any]:
    return {
        "epoch": progress.epoch,
        "metrics": progress.metrics,
        "findings": progress.findings,
        "samples_trained": progress.samples_trained,
        "train_seconds": progress.train_seconds,
    }


def record_history(session: Session, job_id: str, progress: Progress) -> None:
    """Append ``progress.history`` to the job's ``job_epochs`` rows, first deleting the
    rows from its first epoch on (written by an attempt that died after its last
    checkpoint and was resumed from it): epochs 1..progress.epoch are then there exactly
    once. Called inside the fenced transaction that writes ``progress``; one statement
    each, whatever the number of epochs done."""
    record_histories(session, [(job_id, progress)])


def record_histories(session: Session, jobs: Sequence[tuple[str, Progress]]) -> None:
    """:func:`record_history` of several jobs (a pack's trials ending together): one
    DELETE and one INSERT for all of them, whatever their number."""
    drops: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for job_id, progress in jobs:
        first = progress.epoch - len(progress.history) + 1
        drops.append({"b_job": job_id, "b_first": first})
        rows += (
            {"job_id": job_id, "epoch": first + index, "record": entry}
            for index, entry in enumerate(progress.history)
        )
    if not drops:
        return
    connection = core(session)
    connection.execute(_DROP_EPOCHS_FROM, drops)
    if rows:
        connection.execute(_ADD_EPOCHS, rows)


def history_until(reader: Session | Connection, job_id: str, epoch: int) -> list[dict[str, Any]]:
    """The job's history entries of epochs 1..``epoch`` (a checkpoint's), in order; rows
    past it (an attempt that died after its checkpoint) are replaced by
    :func:`record_history` as the resumed attempt writes its epochs."""
    query = select(JobEpoch.record).where(JobEpoch.job_id == job_id, JobEpoch.epoch <= epoch)
    return list(reader.scalars(query.order_by(JobEpoch.epoch)))


def ended_values(status: JobStatus) -> dict[str, Any]:
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
    network_id: str | None,
    dataset_id: str,
    init_model_id: str | None,
    network_config: dict[str, Any],
    options: dict[str, Any],
    epochs: int,
    sweep_id: str | None = None,
    trial_index: int | None = None,
    queued_at: datetime | None = None,
    flush: bool = True,
) -> Job:
    """Add a queued job (flushed, so ``job.id`` is set); it runs once the caller commits.
    A sweep's trial has ``sweep_id`` and ``trial_index`` (and ``epochs``, its first
    rung's target under halving, may be below ``options["epochs"]``). A sweep queues its
    trials with ``flush=False`` (one multi-row INSERT at its own flush, not one each) and
    a ``queued_at`` (``created_at``) per trial that fixes their claim order."""
    job = Job(
        sweep_id=sweep_id,
        trial_index=trial_index,
        owner_id=owner_id,
        network_id=network_id,
        dataset_id=dataset_id,
        init_model_id=init_model_id,
        network_config=network_config,
        options=options,
        epochs=epochs,
        status=JobStatus.QUEUED,
        findings=[],
    )
    if queued_at is not None:
        job.created_at = queued_at
    session.add(job)
    if flush:
        session.flush()
    set_committed_value(job, "epoch_rows", [])  # a new job has no history: nothing to load
    return job


def request_cancel(session: Session, job: Job, *, keep_model: bool = False) -> bool:
    """Cancel ``job``: a queued job is cancelled at once and never starts; a running one
    gets ``cancel_requested`` (its worker stops within one batch and ends it ``cancelled``,
    saving the best-so-far model when ``keep_model``). False, and no change, when the job
    already ended. ``job`` is refreshed either way.
    """
    flagged = update_job(
        session,
        and_(Job.id == job.id, Job.status == JobStatus.QUEUED),
        {**ended_values(JobStatus.CANCELLED), "cancel_requested": True, "keep_model": keep_model},
    ) or update_job(
        session,
        and_(Job.id == job.id, Job.status == JobStatus.RUNNING),
        {"cancel_requested": True, "keep_model": keep_model},
    )
    session.refresh(job)
    if job.status == JobStatus.CANCELLED:
        sweep_advance.trial_ended(session, job.id)
    return flagged is not None


# --- the worker side ----------------------------------------------------------------


def has_queued(db: Database) -> bool:
    """Is any job waiting? A read: idle workers poll this without taking SQLite's write
    lock, and claim only when there is something to claim."""
    with db.read_connection() as connection:
        return connection.execute(_ANY_QUEUED).first() is not None


_ANY_QUEUED = select(JOBS.c.id).where(JOBS.c.status == JobStatus.QUEUED).limit(1)


def claim_next(db: Database, *, worker_id: str, lease_seconds: float) -> Claim | None:
    """Take the next queued job, or None when none may start. Counts an attempt.

    Fair across owners: the job of the owner with the fewest running jobs goes first, the
    oldest among equals (so one owner's 200-trial sweep does not starve another owner's
    single job). A sweep's trial waits while its sweep runs ``max_parallel`` trials.
    Workers claim through ``app.jobs.pack_claim`` instead, whose PostgreSQL claims also
    take a capped sweep's turn: here, claims at the same moment may pass the cap."""
    params = claim_parameters(worker_id, lease_seconds)
    with db.session() as session:
        return take_next(session, params)


def claim_parameters(worker_id: str, lease_seconds: float) -> dict[str, Any]:
    """The bound parameters of a claim (``fairness.claimed_values``): a new lease token,
    its expiry, the worker, now."""
    now = utcnow()
    return {
        "token": secrets.token_hex(16),
        "expires": now + timedelta(seconds=lease_seconds),
        "worker": worker_id,
        "now": now,
    }


def take_next(session: Session, params: dict[str, Any]) -> Claim | None:
    """In ``session``'s transaction: the next queued job (the rules above) taken with the
    lease of ``params`` (``claim_parameters``), or None."""
    row = core(session).execute(fairness.claim_statement(), params).first()
    if row is None:
        return None
    job_id, attempts, kind, cancel_requested = row
    return Claim(job_id, params["token"], params["worker"], attempts, kind, bool(cancel_requested))


def _lease_state(row: AnyRow | None) -> LeaseState:
    """A fenced ``(cancel_requested, keep_model)`` row, or None when the lease is lost."""
    if row is None:
        return LeaseState(ours=False)
    cancel_requested, keep_model = row
    return LeaseState(ours=True, cancel_requested=cancel_requested, keep_model=keep_model)


# The pulse's statements (a renewal every lease/3 s, a cancel poll every 0.5 s while a job
# trains), built once: building them cost more than running them, in the training
# process (BENCHMARKS.md §9).
_FENCED = and_(
    Job.id == bindparam("job_id"),
    Job.lease_token == bindparam("token"),
    Job.status == JobStatus.RUNNING,
)
_RENEW = (
    update(Job)
    .where(_FENCED)
    .values(lease_expires_at=bindparam("expires"))
    .returning(Job.cancel_requested, Job.keep_model)
)
_READ_LEASE = select(Job.cancel_requested, Job.keep_model).where(_FENCED)
# lock_fenced's and record_history's statements, built once for the same reason.
_LOCKED = (Job.cancel_requested, Job.keep_model, Job.owner_id, Job.network_id, Job.dataset_id)
_LOCK_FENCED = select(*_LOCKED).where(_FENCED).with_for_update()
_LOCK_FENCED_MANY = (  # the rows still held by these (id, lease_token) pairs, in id order
    select(Job.id, *_LOCKED)
    .where(
        tuple_(Job.id, Job.lease_token).in_(bindparam("b_pairs", expanding=True)),
        Job.status == JobStatus.RUNNING,
    )
    .order_by(Job.id)
    .with_for_update()
)
_DROP_EPOCHS_FROM = delete(EPOCHS).where(
    EPOCHS.c.job_id == bindparam("b_job"), EPOCHS.c.epoch >= bindparam("b_first")
)
_ADD_EPOCHS = insert(EPOCHS)


def heartbeat(db: Database, claim: Claim, *, lease_seconds: float) -> LeaseState:
    """Renew the lease; report whether it is still ours and whether a cancel is pending."""
    params = {**claim.fence(), "expires": utcnow() + timedelta(seconds=lease_seconds)}
    with db.session() as session:
        row = core(session).execute(_RENEW, params).first()
    return _lease_state(row)


def read_lease(db: Database, claim: Claim) -> LeaseState:
    """What :func:`heartbeat` reports, without renewing: a read, so a worker can poll for
    a cancel every fraction of a second without taking SQLite's write lock."""
    params = claim.fence()
    with db.read_session() as session:
        row = core(session).execute(_READ_LEASE, params).first()
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
    values = progress_values(progress)
    if checkpoint_sha256 is not None:
        values.update(checkpoint_sha256=checkpoint_sha256, checkpoint_epoch=progress.epoch)
    with db.session() as session:
        row = fenced_update(session, claim, values)
        if row is not None:
            record_history(session, claim.job_id, progress)
            if before_commit is not None:
                before_commit()
    return row is not None


def requeue_expired(db: Database, *, max_attempts: int) -> int:
    """Deal with running jobs whose lease expired (their worker died or hung): a job with a
    pending cancel ends ``cancelled`` (never revived), unless the cancel asked to keep the
    model and a checkpoint holds trained weights; any other (the keep_model cancel
    included) goes back to the queue and resumes from its last checkpoint. An attempt that
    saved no checkpoint (made no progress) counts in ``attempts_without_progress``; the job
    whose count reaches ``max_attempts`` ends ``failed`` with the reason (a poison job). An
    attempt that advanced the checkpoint is preemption, not failure: it never counts.
    Returns how many jobs were handled.

    The dead worker took the best-so-far weights with it, so ending a keep_model cancel here
    would drop the model the cancel was accepted for: the next worker resumes the
    checkpoint, sees the pending cancel at once and ends the job ``cancelled`` with it."""
    expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < utcnow())
    progressed = func.coalesce(Job.checkpoint_epoch, 0) > Job.attempt_start_epoch
    stalled = Job.attempts_without_progress + 1
    reason = (
        f"gave up after {max_attempts} attempts without progress: each time, the worker "
        "running this job stopped before saving a checkpoint (its lease expired)"
    )
    requeued = {"status": JobStatus.QUEUED, "lease_token": None, "lease_expires_at": None}
    model_to_keep = and_(
        Job.keep_model.is_(True),
        Job.checkpoint_sha256.is_not(None),
        # a job whose next stalled attempt would fail it ends cancelled here instead
        or_(progressed, stalled < max_attempts),
    )
    nothing_kept = (
        "cancelled without a model: the worker running this job stopped before saving a "
        "checkpoint, so no trained weights survived to keep"
    )
    rules: list[tuple[ColumnElement[bool], dict[str, Any]]] = [
        (
            and_(
                Job.cancel_requested.is_(True),
                Job.keep_model.is_(True),
                Job.checkpoint_sha256.is_(None),
            ),
            {**ended_values(JobStatus.CANCELLED), "error": nothing_kept},
        ),
        (
            and_(Job.cancel_requested.is_(True), not_(model_to_keep)),
            ended_values(JobStatus.CANCELLED),
        ),
        (progressed, requeued),
        (
            stalled >= max_attempts,
            {
                **ended_values(JobStatus.FAILED),
                "error": reason,
                "attempts_without_progress": stalled,
            },
        ),
        (true(), {**requeued, "attempts_without_progress": stalled}),
    ]
    # A read first: every worker runs this every few seconds, and nearly always no lease
    # has expired; the write transaction (SQLite's write lock) only when one has.
    with db.read_session() as session:
        if session.scalar(select(Job.id).where(expired).limit(1)) is None:
            return 0
    handled = 0
    with db.session() as session:
        # Lock the expired rows first: a cancel request lands before this (and every rule
        # below sees it) or waits for the commit (and finds the job queued or ended), never
        # between two rules (PostgreSQL's READ COMMITTED reads anew at each statement).
        session.execute(select(Job.id).where(expired).with_for_update())
        for condition, values in rules:
            statement = update(Job).where(expired, condition).values(**values).returning(Job.id)
            ids = session.scalars(statement, execution_options=NO_SYNC).all()
            if values["status"] != JobStatus.QUEUED:
                for job_id in ids:
                    sweep_advance.trial_ended(session, job_id)
            handled += len(ids)
    return handled
