"""A sweep moves on when one of its trials ends, in that trial's ending transaction.

Called by every queue verb that ends a job (app/jobs/queue.py), with the job's row already
updated. The sweep row is locked first (``FOR UPDATE`` on PostgreSQL; SQLite's writes are
serialised anyway), so when the last trials of a rung end at once in two workers, the
second sees the first's outcome and exactly one of them decides.

- grid / random: the sweep ends once no trial is queued or running.
- halving (successive halving): rung r trains every surviving trial to
  ``t_r = min(min_epochs * factor**r, epochs)`` epochs. When the rung's last trial ends,
  the best ``ceil(n_r / factor)`` by score are promoted: their rung model is deleted and
  the same job is queued again with ``epochs = t_{r+1}``, keeping its checkpoint, so the
  worker's resume path continues it from epoch ``t_r`` (app/jobs/attempt.py). The others
  keep their models. The sweep ends after the rung whose target is ``epochs`` (or the
  last rung any trial could continue to).

A sweep ends ``succeeded`` when any of its trials did (under halving, at any rung), else
``failed``.

SQL only, like the queue: no engine, no HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.orm import Session

from app.storage.tables import ACTIVE_STATUSES, Job, JobStatus, Model, Sweep, core_table, utcnow

MAXIMISED = ("accuracy", "r2")  # every other metric (loss, mae) is minimised
SWEEP_TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def maximised(metric: str) -> bool:
    """Whether a larger ``metric`` is better: accuracy and r2 (val_ or not)."""
    return metric.removeprefix("val_") in MAXIMISED


def rung_targets(min_epochs: int, factor: int, epochs: int) -> list[int]:
    """The epoch targets of successive halving's rungs, ending at ``epochs``."""
    targets = [min(min_epochs, epochs)]
    while targets[-1] < epochs:
        targets.append(min(targets[-1] * factor, epochs))
    return targets


def score_of(metrics: dict[str, Any] | None, metric: str) -> float | None:
    """The trial's score: ``metric`` of its model's metrics (the best epoch's with early
    stopping, else the last's), or None without one."""
    value = (metrics or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def ranked(scored: list[tuple[Any, float]], metric: str) -> list[Any]:
    """Items ordered best first by their score under ``metric``'s direction."""
    sign = -1.0 if maximised(metric) else 1.0
    return [item for item, _ in sorted(scored, key=lambda pair: sign * pair[1])]


class SweepState(NamedTuple):
    """What an ending reads of its sweep, in the statement that numbers the ending."""

    id: str
    status: str
    strategy: dict[str, Any]
    metric: str


_SWEEPS, _JOBS = core_table(Sweep), core_table(Job)
# The statements of every trial's end, built once (with the ending's others, a sweep of
# short trials spent more building and compiling them than running them).
_SWEEPS_OF_JOBS = select(_JOBS.c.id, _JOBS.c.sweep_id).where(
    _JOBS.c.id.in_(bindparam("b_jobs", expanding=True))
)
_NUMBER_ENDINGS = (
    update(_SWEEPS)
    .where(_SWEEPS.c.id == bindparam("b_sweep"))
    .values(events=_SWEEPS.c.events + bindparam("b_count"))
    .returning(_SWEEPS.c.events, _SWEEPS.c.status, _SWEEPS.c.strategy, _SWEEPS.c.metric)
)
_SET_EVENT = (
    update(_JOBS).where(_JOBS.c.id == bindparam("b_job")).values(sweep_event=bindparam("b_event"))
)
_TRIALS = select(_JOBS.c.status, _JOBS.c.epochs).where(_JOBS.c.sweep_id == bindparam("b_sweep"))
_END_SWEEP = (
    update(_SWEEPS)
    .where(_SWEEPS.c.id == bindparam("b_sweep"))
    .values(status=bindparam("b_status"), finished_at=bindparam("b_at"))
)


def trial_ended(session: Session, job_id: str) -> None:
    """Advance the sweep of job ``job_id`` (nothing for a job outside a sweep)."""
    trials_ended(session, [job_id])


def trials_ended(session: Session, job_ids: Sequence[str]) -> None:
    """:func:`trial_ended` for jobs that ended in one transaction (a pack's trials), in
    order: their endings numbered in that order, and each sweep advanced once, after the
    last (what it decides depends only on the trials' rows, all written by then)."""
    if not job_ids:
        return
    connection = session.connection()
    found = dict(connection.execute(_SWEEPS_OF_JOBS, {"b_jobs": list(job_ids)}).all())
    by_sweep: dict[str, list[str]] = {}
    for job_id in job_ids:
        if (sweep_id := found.get(job_id)) is not None:
            by_sweep.setdefault(sweep_id, []).append(job_id)
    for sweep_id, ended in by_sweep.items():
        # Numbering the endings locks the sweep row (the UPDATE's own row lock on PostgreSQL).
        numbered = connection.execute(
            _NUMBER_ENDINGS, {"b_sweep": sweep_id, "b_count": len(ended)}
        ).first()
        if numbered is None:
            continue
        events, status, strategy, metric = numbered
        _set_events(session, events - len(ended) + 1, ended)
        if status not in SWEEP_TERMINAL:
            _advance(session, SweepState(sweep_id, status, strategy, metric))


def _advance(session: Session, sweep: SweepState) -> None:
    """Queue the next rung, or end the sweep, once its trials' rows say so."""
    connection = session.connection()
    strategy = sweep.strategy
    # Every trial's status and epochs (small columns: this runs at each trial's end); the
    # options and metrics only of a finished rung, to rank it.
    rows = connection.execute(_TRIALS, {"b_sweep": sweep.id}).all()
    if strategy.get("name") == "halving":
        top = max(row.epochs for row in rows)
        if any(row.status in ACTIVE_STATUSES for row in rows if row.epochs == top):
            return
        rung = session.execute(
            select(Job.id, Job.status, Job.options, Job.checkpoint_sha256, Model.metrics)
            .outerjoin(Model, Model.job_id == Job.id)
            .where(Job.sweep_id == sweep.id, Job.epochs == top)
        ).all()
        promoted = _promote(session, sweep, rung, top)
        # Checkpoints of trials that will not continue are dropped (the blobs go to gc).
        session.execute(
            update(Job)
            .where(Job.sweep_id == sweep.id, Job.status.in_(SWEEP_TERMINAL))
            .values(checkpoint_sha256=None),
            execution_options={"synchronize_session": False},
        )
        if promoted:
            return
    elif any(row.status in ACTIVE_STATUSES for row in rows):
        return
    # Succeeded when any trial did (under halving, at any rung: its model is the best's).
    succeeded = any(row.status == JobStatus.SUCCEEDED for row in rows)
    ended = JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED
    connection.execute(_END_SWEEP, {"b_sweep": sweep.id, "b_status": ended, "b_at": utcnow()})


def number_endings(session: Session, sweep: Sweep, job_ids: list[str]) -> None:
    """Give the endings of ``job_ids`` (in order) the sweep's next event numbers, the ids
    of their ``trial`` events on GET /v1/sweeps/{id}/events. Called with the sweep row
    locked, in the ending's transaction: numbers follow commit order, so a reader that
    sees number n has also seen every number below it, and a client resuming after n
    (Last-Event-ID) misses none. One executemany: cancelling a 1,000-trial sweep spent
    ~250 ms in an ORM UPDATE per trial, holding the write lock."""
    if not job_ids:
        return
    first = sweep.events + 1
    sweep.events += len(job_ids)
    _set_events(session, first, job_ids)


def _set_events(session: Session, first: int, job_ids: Sequence[str]) -> None:
    """Give ``job_ids`` the event numbers ``first``, ``first + 1``, ... (one statement)."""
    numbers = [{"b_job": job_id, "b_event": first + i} for i, job_id in enumerate(job_ids)]
    session.connection().execute(_SET_EVENT, numbers)


def _promote(session: Session, sweep: SweepState, rung: Sequence[Any], target: int) -> bool:
    """Queue the best of a finished rung for the next; False when there is no next rung
    (or no trial that can continue), and the sweep ends."""
    strategy = sweep.strategy
    epochs = int(rung[0].options["epochs"])  # the same for every trial (not in the grid)
    targets = rung_targets(int(strategy["min_epochs"]), int(strategy["factor"]), epochs)
    later = [t for t in targets if t > target]
    if not later:
        return False
    keep = math.ceil(len(rung) / int(strategy["factor"]))
    scored = [
        (row.id, score)
        for row in rung
        if row.status == JobStatus.SUCCEEDED
        and row.checkpoint_sha256 is not None  # early-stopped trials have nothing to continue
        and (score := score_of(row.metrics, sweep.metric)) is not None
    ]
    promoted = ranked(scored, sweep.metric)[:keep]
    if not promoted:
        return False
    session.execute(delete(Model).where(Model.job_id.in_(promoted)))
    session.execute(
        update(Job)
        .where(Job.id.in_(promoted))
        .values(
            status=JobStatus.QUEUED,
            epochs=later[0],
            finished_at=None,
            attempts=0,
            error=None,
            cancel_requested=False,
            keep_model=False,
        ),
        execution_options={"synchronize_session": False},
    )
    return True


def cancel_trials(session: Session, sweep_id: str) -> None:
    """Cancel a sweep's queued trials now (numbering their endings) and ask its running
    ones to stop (their workers end them within a batch, without a model). Finished
    trials keep theirs."""
    queued = and_(Job.sweep_id == sweep_id, Job.status == JobStatus.QUEUED)
    running = and_(Job.sweep_id == sweep_id, Job.status == JobStatus.RUNNING)
    cancelled = list(session.scalars(select(Job.id).where(queued).order_by(Job.trial_index)))
    ended = {
        "status": JobStatus.CANCELLED,
        "finished_at": utcnow(),
        "cancel_requested": True,
        "checkpoint_sha256": None,
    }
    no_sync = {"synchronize_session": False}
    session.execute(update(Job).where(queued).values(**ended), execution_options=no_sync)
    session.execute(
        update(Job).where(running).values(cancel_requested=True), execution_options=no_sync
    )
    # The sweep row after the trials' rows: the order a finishing worker takes them in.
    sweep = session.scalars(select(Sweep).where(Sweep.id == sweep_id).with_for_update()).one()
    number_endings(session, sweep, cancelled)
