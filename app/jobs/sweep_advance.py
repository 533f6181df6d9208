"""A sweep moves on when one of its trials ends, in that trial's ending transaction.

Called by every queue verb that ends a job (app/jobs/queue.py), with the job's row already
updated. The sweep row is locked first (``FOR UPDATE`` on PostgreSQL; SQLite's writes are
serialised anyway), so when the last trials of a rung end at once in two workers, the
second sees the first's outcome and exactly one of them decides.

- grid / random: the sweep ends once no trial is queued or running.
- halving (successive halving): rung r trains every surviving trial to
  ``t_r = min(min_epochs * factor**r, epochs)`` epochs, and its best ``ceil(n_r / factor)``
  by score are promoted: the same job is queued again with ``epochs = t_{r+1}``, keeping
  its checkpoint, so the worker's resume path continues it from epoch ``t_r``
  (app/jobs/attempt.py), and its rung model until the next rung's replaces it
  (app/jobs/endings.py): a sweep cancelled in between keeps it. The others keep their
  models. The sweep ends after the rung whose target is ``epochs`` (or the last rung any
  trial could continue to).

  A trial is promoted as soon as it is certain to be among the rung's best, not only
  when the rung's last trial ends: ranked among the rung's ended trials at place i (from
  0), with p of the rung already promoted and m still queued or running, it ends the
  rung at worst at place p + i + m, so it is promoted once that is below
  ``ceil(n_r / factor)`` (the promoted and the unfinished all counted as better).
  When m reaches 0 that is exactly the whole rung's decision, so the trials promoted are
  those a barrier at the rung's end would promote; they only start sooner, while the
  rung's last trials train (no worker waits at the rung's end for the slowest). Rung
  r + 1 promotes early only once rung r is decided (before, its n is not known).

A sweep ends ``succeeded`` when any of its trials did (under halving, at any rung), else
``failed``.

SQL only, like the queue: no engine, no HTTP.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import String, and_, bindparam, func, select, update
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


_SWEEPS, _JOBS, _MODELS = core_table(Sweep), core_table(Job), core_table(Model)
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
_TRIALS = (
    select(
        _JOBS.c.id,
        _JOBS.c.status,
        _JOBS.c.epochs,
        _JOBS.c.checkpoint_sha256.is_not(None).label("resumable"),
    )
    .where(_JOBS.c.sweep_id == bindparam("b_sweep"))
    .order_by(_JOBS.c.trial_index)
)
# The epochs of one trial (the same for every trial of a halving sweep: not in its grid),
# read out of its options JSON by the database.
_ONE_TRIALS_EPOCHS = (
    select(_JOBS.c.options["epochs"].as_integer())
    .where(_JOBS.c.sweep_id == bindparam("b_sweep"))
    .limit(1)
)
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
        if status in SWEEP_TERMINAL:  # cancelled: its trials' checkpoints go to gc
            _drop_checkpoints(session, ended)
        else:
            _advance(session, SweepState(sweep_id, status, strategy, metric))


def _advance(session: Session, sweep: SweepState) -> None:
    """Promote what is certain (halving), then end the sweep once no trial is queued or
    running."""
    connection = session.connection()
    # Every trial's id, status, epochs and whether it holds a checkpoint (small columns:
    # this runs at each trial's end); scores only of a rung that may promote.
    rows = [dict(row._mapping) for row in connection.execute(_TRIALS, {"b_sweep": sweep.id})]
    if sweep.strategy.get("name") == "halving":
        _advance_rungs(session, sweep, rows)
    if any(row["status"] in ACTIVE_STATUSES for row in rows):
        return
    if any(row["resumable"] for row in rows):  # checkpoints nothing will continue: to gc
        _drop_checkpoints(session, [row["id"] for row in rows if row["resumable"]])
    # Succeeded when any trial did (under halving, at any rung: its model is the best's).
    succeeded = any(row["status"] == JobStatus.SUCCEEDED for row in rows)
    ended = JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED
    connection.execute(_END_SWEEP, {"b_sweep": sweep.id, "b_status": ended, "b_at": utcnow()})


def _advance_rungs(session: Session, sweep: SweepState, rows: list[dict[str, Any]]) -> None:
    """Successive halving's promotions (see the module docstring), rung by rung up to the
    first that is not decided; ``rows`` are updated to what they now hold."""
    strategy = sweep.strategy
    epochs = _trials_epochs(session, sweep.id)
    targets = rung_targets(int(strategy["min_epochs"]), int(strategy["factor"]), epochs)
    for target, following in itertools.pairwise(targets):
        population = [row for row in rows if row["epochs"] >= target]
        at_rung = [row for row in population if row["epochs"] == target]
        unfinished = sum(row["status"] in ACTIVE_STATUSES for row in at_rung)
        keep = math.ceil(len(population) / int(strategy["factor"]))
        slots = keep - (len(population) - len(at_rung)) - unfinished
        candidates = [
            row for row in at_rung if row["status"] == JobStatus.SUCCEEDED and row["resumable"]
        ]
        if slots > 0 and candidates:
            for row in _promote(session, sweep, candidates, slots, following):
                row.update(status=JobStatus.QUEUED, epochs=following)
        if unfinished:
            return  # the later rungs' populations are not final yet
        # Decided: its ended trials that were not promoted will not continue.
        losers = [row for row in at_rung if row["resumable"] and row["epochs"] == target]
        if losers:
            _drop_checkpoints(session, [row["id"] for row in losers])
            for row in losers:
                row["resumable"] = False
        if not any(row["epochs"] > target for row in population):
            return  # nothing continues: the sweep ends with this rung


# The epochs of each halving sweep's trials, by sweep id, as read once by this process:
# a sweep's job body never changes, and its rungs are computed at every trial's end.
_EPOCHS: dict[str, int] = {}
_EPOCHS_KEPT = 1024


def _trials_epochs(session: Session, sweep_id: str) -> int:
    """The epochs every trial of halving sweep ``sweep_id`` trains in the end."""
    epochs = _EPOCHS.get(sweep_id)
    if epochs is None:
        found = session.connection().execute(_ONE_TRIALS_EPOCHS, {"b_sweep": sweep_id})
        epochs = int(found.scalar_one())
        if len(_EPOCHS) >= _EPOCHS_KEPT:
            _EPOCHS.clear()
        _EPOCHS[sweep_id] = epochs
    return epochs


def _drop_checkpoints(session: Session, job_ids: Sequence[str]) -> None:
    """Forget the checkpoints of the ended trials ``job_ids``: they will not continue (the
    blobs go to gc)."""
    session.connection().execute(_DROP_CHECKPOINTS, {"b_jobs": list(job_ids)})


# Built once, as the statements above (each trial's ending of a halving sweep runs some).
_DROPPABLE = and_(_JOBS.c.status.in_(SWEEP_TERMINAL), _JOBS.c.checkpoint_sha256.is_not(None))
_DROP_CHECKPOINTS = (
    update(_JOBS)
    .where(_JOBS.c.id.in_(bindparam("b_jobs", expanding=True)), _DROPPABLE)
    .values(checkpoint_sha256=None)
)
_DROP_SWEEP_CHECKPOINTS = (
    update(_JOBS)
    .where(_JOBS.c.sweep_id == bindparam("b_sweep"), _DROPPABLE)
    .values(checkpoint_sha256=None)
)
_SCORES = (
    select(_JOBS.c.id, _MODELS.c.metrics)
    .select_from(_JOBS.outerjoin(_MODELS, _MODELS.c.job_id == _JOBS.c.id))
    .where(_JOBS.c.id.in_(bindparam("b_jobs", expanding=True)))
)
_PROMOTE = (
    update(_JOBS)
    .where(_JOBS.c.id.in_(bindparam("b_jobs", expanding=True)))
    .values(
        status=JobStatus.QUEUED,
        epochs=bindparam("b_epochs"),
        finished_at=None,
        attempts=0,
        error=None,
        cancel_requested=False,
        keep_model=False,
    )
)


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


def _promote(
    session: Session,
    sweep: SweepState,
    candidates: list[dict[str, Any]],
    slots: int,
    following: int,
) -> list[dict[str, Any]]:
    """Queue the best ``slots`` of a rung's ended ``candidates`` (each with a checkpoint)
    for the rung ending at ``following`` epochs; the rows promoted. Ties keep the grid's
    order. A candidate without a score (no model, or no such metric) is not promoted."""
    scores: dict[str, Any] = dict(
        session.connection().execute(_SCORES, {"b_jobs": [row["id"] for row in candidates]}).all()
    )
    scored = [
        (row, score)
        for row in candidates
        if (score := score_of(scores.get(row["id"]), sweep.metric)) is not None
    ]
    promoted = ranked(scored, sweep.metric)[:slots]
    if not promoted:
        return []
    # Each keeps its rung's model until its next rung's replaces it (endings).
    session.connection().execute(
        _PROMOTE, {"b_jobs": [row["id"] for row in promoted], "b_epochs": following}
    )
    return promoted


# Cancels of one sweep take turns (PostgreSQL; see cancel_trials). Key seed 1: the claims'
# turn on a sweep (app/jobs/pack_claim.py) is hashtextextended(id, 0). It waits, so take it
# only as a transaction's first statement, before any row lock: then it cannot close a
# deadlock cycle (whoever waits for it holds nothing).
_CANCELS_TAKE_TURNS = select(
    func.pg_advisory_xact_lock(func.hashtextextended(bindparam("b_sweep", type_=String), 1))
)


def cancel_trials(session: Session, sweep_id: str) -> None:
    """Cancel a sweep's queued trials now (numbering their endings) and ask its running
    ones to stop (their workers end them within a batch, with no new model). Finished
    trials keep their models, and promoted ones their last rung's; those paused at a
    rung let go of their checkpoints.

    On PostgreSQL, cancels of one sweep take turns first (a transaction-scoped advisory
    lock on the sweep, its own key: not the claims' turn), before any row: two cancels'
    multi-row updates of the same trials otherwise lock them in different orders and
    deadlock (16 at once on a 3-trial sweep: 548 deadlocks in 300 rounds). Nothing else
    takes that lock, so a cancel waits only for another cancel of the same sweep."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_CANCELS_TAKE_TURNS, {"b_sweep": sweep_id})
    queued = and_(Job.sweep_id == sweep_id, Job.status == JobStatus.QUEUED)
    running = and_(Job.sweep_id == sweep_id, Job.status == JobStatus.RUNNING)
    ended = {
        "status": JobStatus.CANCELLED,
        "finished_at": utcnow(),
        "cancel_requested": True,
        "checkpoint_sha256": None,
    }
    no_sync = {"synchronize_session": False}

    def cancel_queued() -> list[str]:
        ids = list(session.scalars(select(Job.id).where(queued).order_by(Job.trial_index)))
        session.execute(update(Job).where(queued).values(**ended), execution_options=no_sync)
        return ids

    cancelled = cancel_queued()
    session.execute(
        update(Job).where(running).values(cancel_requested=True), execution_options=no_sync
    )
    # The sweep row after the trials' rows: the order a finishing worker takes them in.
    sweep = session.scalars(select(Sweep).where(Sweep.id == sweep_id).with_for_update()).one()
    # With the sweep locked no trial is promoted any more; one promoted by an ending that
    # held the lock until now (PostgreSQL) is queued: cancel it too.
    cancelled += cancel_queued()
    # Trials paused at a rung will not continue: their checkpoints go to gc (the running
    # ones' go as they end, in trials_ended). After the lock: an ending promotes those rows.
    session.connection().execute(_DROP_SWEEP_CHECKPOINTS, {"b_sweep": sweep_id})
    number_endings(session, sweep, cancelled)
