"""Which queued job a worker claims next (the ORDER BY and WHERE of the queue's claim).

- Owners take turns: the queued job of the owner with the fewest running jobs goes
  first, the oldest among equals, so one owner's 200-trial sweep does not starve another
  owner's single job.
- Then the oldest first, a sweep's trials as old as their sweep; within a sweep, its
  trials that continue from a checkpoint (halving's promotions, or a trial whose worker
  died) go after its trials starting from scratch, the earliest checkpoint first.
  app/jobs/sweep_advance.py promotes a trial as soon as it is certain, while its rung
  still runs: the rung's own trials go first (the rung's decisions wait for them), and
  the promotions gather to train together in packs.
- A sweep's trial waits while its sweep already runs ``max_parallel`` trials.

A worker (app/jobs/pack_claim.py) reads the job this order gives; when it is a sweep's
trial, the worker takes the longest work among that sweep's queued trials of the same
stage instead (a pack of them, or one), among those it ran last when it has any: the
order above decides between sweeps, owners and stages, and among equals.

Both are correlated subqueries over ``jobs``, which read the indexes (owner_id, status)
and (sweep_id, status): the running rows only, whatever the history. They are
built once per process: building them (``aliased(Job)``, the subqueries) cost more CPU
than running the claim itself, on every claim (~10 ms; BENCHMARKS.md §9).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, bindparam, case, func, or_, select, update
from sqlalchemy.orm import aliased

from app.storage.tables import Job, JobStatus, Sweep


def _running(where: ColumnElement[bool], other: type[Job]) -> Select[int]:
    return select(func.count()).select_from(other).where(other.status == JobStatus.RUNNING, where)


@functools.cache
def claim_order() -> tuple[Any, ...]:
    """Fewest running jobs of the job's owner first, then the oldest (a sweep's trials as
    old as their sweep), then within a sweep from the earliest epoch (its continued trials
    after its fresh ones), then those the claiming worker (parameter ``worker``) ran last,
    then by age. The claimer's own continued trials first: it may still hold their
    paused trainers (app/jobs/paused_trainers.py), and a rung's promotions from one of its
    packs pack together again."""
    other = aliased(Job)
    owner_running = _running(other.owner_id == Job.owner_id, other).scalar_subquery()
    sweep_created = select(Sweep.created_at).where(Sweep.id == Job.sweep_id).scalar_subquery()
    from_epoch = case((Job.sweep_id.is_not(None), func.coalesce(Job.checkpoint_epoch, 0)), else_=0)
    return (
        owner_running,
        func.coalesce(sweep_created, Job.created_at),
        from_epoch,
        ran_elsewhere(),
        Job.created_at,
        Job.id,
    )


@functools.cache
def next_statement(*, skipping: bool = False) -> Select[str, str, str | None, int | None]:
    """The job the claim would take next, read without taking it: its ``id``, ``kind``,
    ``sweep_id`` and ``checkpoint_epoch`` (parameter ``worker``). A worker
    claiming packs reads it first: when it is a sweep's trial, the worker may take a
    longer trial of the same sweep and stage in its place (app/jobs/pack_claim.py).
    ``skipping``: not from the sweeps of parameter ``skipped`` (a list of ids). On
    PostgreSQL the row is locked until the claim's transaction ends, taken or not, and
    one another claimer is taking is skipped (else a claimer would read that row again
    until the other commits)."""
    statement = (
        select(Job.id, Job.kind, Job.sweep_id, Job.checkpoint_epoch)
        .where(Job.status == JobStatus.QUEUED, may_start())
        .order_by(*claim_order())
        .limit(1)
        # PostgreSQL only (SQLite has the write lock); NO KEY: rows that refer to the job
        # may still be inserted meanwhile.
        .with_for_update(skip_locked=True, key_share=True)
    )
    if skipping:
        skipped = Job.sweep_id.not_in(bindparam("skipped", expanding=True))
        statement = statement.where(or_(Job.sweep_id.is_(None), skipped))
    return statement


def ran_elsewhere() -> ColumnElement[int]:
    """0 for a job the claiming worker (parameter ``worker``) ran last, else 1."""
    return case((Job.worker_id == bindparam("worker"), 0), else_=1)


@functools.cache
def may_start() -> ColumnElement[bool]:
    """True for a job outside a sweep, or in one below its ``max_parallel``."""
    other = aliased(Job)
    sweep_running = _running(other.sweep_id == Job.sweep_id, other).scalar_subquery()
    cap = select(Sweep.max_parallel).where(Sweep.id == Job.sweep_id).scalar_subquery()
    return or_(Job.sweep_id.is_(None), cap.is_(None), sweep_running < cap)


@functools.cache
def claim_statement() -> Update:
    """The claim (app/jobs/queue.py's claim_next): ``UPDATE ... RETURNING`` of the next
    job by the rules above, its lease, attempt, kind and pending cancel; parameters
    ``token``, ``expires``, ``worker``, ``now``. Built once per process: building it cost
    as much CPU as running it (BENCHMARKS.md §9)."""
    oldest = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED, may_start())
        .order_by(*claim_order())
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite has the write lock
        .scalar_subquery()
    )
    return (
        update(Job)
        .where(Job.id == oldest, Job.status == JobStatus.QUEUED)
        .values(**claimed_values())
        .returning(Job.id, Job.attempts, Job.kind, Job.cancel_requested)
    )


def claimed_values() -> dict[str, Any]:
    """What a claim writes to the job it takes: running, one more attempt, the lease
    (parameters ``token``, ``expires``, ``worker``, ``now``)."""
    return {
        "status": JobStatus.RUNNING,
        "attempts": Job.attempts + 1,
        "attempt_start_epoch": func.coalesce(Job.checkpoint_epoch, 0),
        "lease_token": bindparam("token"),
        "lease_expires_at": bindparam("expires"),
        "worker_id": bindparam("worker"),
        "started_at": func.coalesce(Job.started_at, bindparam("now", type_=Job.started_at.type)),
    }
