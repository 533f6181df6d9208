"""What a sweep looks like from outside: its trials' state and score, and the best one.

Read from the sweep row and its trial jobs (and their models) in one read transaction.
A trial's ``score`` is the sweep's metric in its model's metrics (the best epoch's with
early stopping, else the last epoch's); a trial without a model has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs.sweep_advance import SWEEP_TERMINAL, maximised, ranked, score_of
from app.storage.tables import Job, JobStatus, Model, Sweep


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


def _status(sweep: Sweep, jobs: Sequence[Any]) -> str:
    """The stored status once ended; before: running once a trial has started."""
    if sweep.status in SWEEP_TERMINAL:
        return sweep.status
    started = any(job.started_at is not None for job in jobs)
    return JobStatus.RUNNING if started else JobStatus.QUEUED


def view(session: Session, sweep: Sweep) -> SweepView:
    """The sweep with every trial in index order and the best by score."""
    columns: list[Any] = [
        Job.id,
        Job.trial_index,
        Job.status,
        Job.epoch,
        Job.epochs,
        Job.started_at,
        Job.sweep_event,
    ]
    rows = session.execute(
        select(*columns, Model.id.label("model_id"), Model.metrics)
        .outerjoin(Model, Model.job_id == Job.id)
        .where(Job.sweep_id == sweep.id)
        .order_by(Job.trial_index)
    ).all()
    trials = [
        TrialView(
            index=int(row.trial_index),
            params=sweep.trials[int(row.trial_index)],
            job_id=row.id,
            status=row.status,
            score=score_of(row.metrics, sweep.metric),
            epochs_run=int(row.epoch or 0),
            epochs=int(row.epochs),
            model_id=row.model_id,
            event=row.sweep_event,
        )
        for row in rows
    ]
    scored = [(trial, trial.score) for trial in trials if trial.score is not None]
    best = ranked(scored, sweep.metric)[0] if scored else None
    return SweepView(sweep=sweep, status=_status(sweep, rows), trials=trials, best=best)
