"""What a sweep looks like from outside: its trials' state and score, and the best one.

Read from the sweep row and its trial jobs (and their models) in one read transaction.
A trial's ``score`` is the sweep's metric in its model's metrics (the best epoch's with
early stopping, else the last epoch's); a trial without a model has none.

Dashboards and clients poll this: the trials are one Core ``SELECT`` of the few columns
shown (no ORM rows; ~half the cost of an ORM column select), and a page of sweeps reads
all its sweeps' trials in one statement (no query per sweep). BENCHMARKS.md §9.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from app.jobs.sweep_advance import SWEEP_TERMINAL, maximised, ranked, score_of
from app.storage.tables import Job, JobStatus, Model, Sweep

_JOBS, _MODELS = Job.__table__, Model.__table__


@dataclass(frozen=True)
class TrialView:
    index: int
    params: dict[str, Any]
    job_id: str
    status: str
    score: float | None
    epochs_run: int
    epochs: int  # the target of the trial's current rung (halving) or its epochs
    model_id: str | None
    event: int | None  # the number of its latest ending among the sweep's events


@dataclass(frozen=True)
class SweepView:
    sweep: Sweep
    status: str
    trials: list[TrialView]
    best: TrialView | None

    @property
    def finished(self) -> bool:
        return self.status in SWEEP_TERMINAL

    @property
    def maximise(self) -> bool:
        return maximised(self.sweep.metric)


def _status(sweep: Sweep, started: bool) -> str:
    """The stored status once ended; before: running once a trial has started."""
    if sweep.status in SWEEP_TERMINAL:
        return sweep.status
    return JobStatus.RUNNING if started else JobStatus.QUEUED


def _trials_query() -> Select[Any]:
    """The shown columns of trials and their models (Core, on the tables)."""
    jobs, models = _JOBS.c, _MODELS.c
    return (
        select(
            jobs.sweep_id,
            jobs.id,
            jobs.trial_index,
            jobs.status,
            jobs.epoch,
            jobs.epochs,
            jobs.started_at.is_not(None).label("started"),
            jobs.sweep_event,
            models.id.label("model_id"),
            models.metrics,
        )
        .select_from(_JOBS.outerjoin(_MODELS, models.job_id == jobs.id))
        .order_by(jobs.sweep_id, jobs.trial_index)
    )


# Built once (no statement to build and hash per request): one sweep's, and a page's.
_TRIALS_OF_SWEEP = _trials_query().where(_JOBS.c.sweep_id == bindparam("sweep_id"))
_TRIALS_OF_SWEEPS = _trials_query().where(
    _JOBS.c.sweep_id.in_(bindparam("sweep_ids", expanding=True))
)


def _view(sweep: Sweep, rows: Sequence[Any]) -> SweepView:
    params, metric = sweep.trials, sweep.metric
    trials = [
        TrialView(
            index=row.trial_index,
            params=params[row.trial_index],
            job_id=row.id,
            status=row.status,
            score=score_of(row.metrics, metric),
            epochs_run=row.epoch or 0,
            epochs=row.epochs,
            model_id=row.model_id,
            event=row.sweep_event,
        )
        for row in rows
    ]
    scored = [(trial, trial.score) for trial in trials if trial.score is not None]
    best = ranked(scored, metric)[0] if scored else None
    started = any(row.started for row in rows)
    return SweepView(sweep=sweep, status=_status(sweep, started), trials=trials, best=best)


def view(session: Session, sweep: Sweep) -> SweepView:
    """The sweep with every trial in index order and the best by score."""
    return views(session, [sweep])[0]


def views(session: Session, sweeps: Sequence[Sweep]) -> list[SweepView]:
    """:func:`view` of each of ``sweeps``, their trials read in one statement."""
    if not sweeps:
        return []
    ids = [sweep.id for sweep in sweeps]
    if len(ids) == 1:
        rows = session.connection().execute(_TRIALS_OF_SWEEP, {"sweep_id": ids[0]})
    else:
        rows = session.connection().execute(_TRIALS_OF_SWEEPS, {"sweep_ids": ids})
    by_sweep: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_sweep[row.sweep_id].append(row)
    return [_view(sweep, by_sweep[sweep.id]) for sweep in sweeps]
