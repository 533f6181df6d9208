"""The soak's sweeps: through the real ``/v1/sweeps`` API, a new small sweep every four
minutes, each 20 s before a worker SIGKILL (grid, successive halving, and a grid cancelled
midway, in turn); then the checks of their end states for the verdict.

Every trial is an ordinary job in the one queue, so the soak's other checks (every job
terminal, at most one model per job, the table invariants) cover the trials too; the
killer prefers a worker holding a trial while a sweep runs (see ``_soak_actors.killer``),
so a SIGKILL during a trial is part of every run long enough to hold one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from _soak_actors import Context

TERMINAL = ("succeeded", "failed", "cancelled")
KINDS = ("grid", "halving", "cancelled")  # the third: a grid cancelled midway
CANCEL_LATEST_S = 120.0  # cancel by then even when no trial has ended yet


@dataclass
class SweepRecord:
    """One sweep the soak created, and what became of it (from ``GET /v1/sweeps/{id}``)."""

    kind: str
    t: float
    created: int  # the create answer's status
    id: str | None = None
    refused: str = ""
    cancel_answer: int | None = None
    cancel_t: float | None = None
    status: str = ""
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None

    @property
    def cancelled(self) -> bool:
        """Whether the cancel was accepted (409: the sweep had already ended)."""
        return self.cancel_answer == 202

    def trial_jobs(self) -> set[str]:
        return {t["job_id"] for t in self.trials}


class Sweeps:
    """The sweeps of one soak: shared by the sweeper, the killer, the drain and the report."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[SweepRecord] = []

    def add(self, record: SweepRecord) -> None:
        with self.lock:
            self.records.append(record)

    def all(self) -> list[SweepRecord]:
        with self.lock:
            return list(self.records)

    def trial_jobs(self) -> set[str]:
        """Job ids of every trial seen so far (the sweeps' latest reads)."""
        with self.lock:
            return {job for r in self.records for job in r.trial_jobs()}

    def active(self) -> list[SweepRecord]:
        with self.lock:
            return [r for r in self.records if r.id and r.status not in TERMINAL]


def body(kind: str, n: int, dataset_id: str, n_features: int) -> dict[str, Any]:
    """A small sweep on the generated dataset: a 4-trial grid, halving over 6 configs
    (rungs of 10, 30 and 90 epochs), or (to cancel) 6 trials one at a time."""
    network = {
        "input_size": n_features,
        "layers": [{"units": 16, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "seed": n,
    }
    job = {"validation_split": 0.2, "optimizer": {"name": "adam", "learning_rate": 0.01}}
    if kind == "halving":
        return {
            "name": f"soak-halving-{n}",
            "dataset_id": dataset_id,
            "network": network,
            "job": {**job, "epochs": 90},
            "grid": {
                "job.optimizer.learning_rate": [0.001, 0.01, 0.05],
                "job.batch_size": [16, 64],
            },
            "strategy": {"name": "halving", "factor": 3, "min_epochs": 10},
            "metric": "val_accuracy",
            "max_parallel": 2,
        }
    if kind == "cancelled":  # one trial at a time: long enough to be cancelled midway
        return {
            "name": f"soak-cancelled-{n}",
            "dataset_id": dataset_id,
            "network": network,
            "job": {**job, "epochs": 60},
            "grid": {"job.optimizer.learning_rate": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]},
            "strategy": {"name": "grid"},
            "metric": "val_accuracy",
            "max_parallel": 1,
        }
    return {
        "name": f"soak-grid-{n}",
        "dataset_id": dataset_id,
        "network": network,
        "job": {**job, "epochs": 60},
        "grid": {"job.optimizer.learning_rate": [0.003, 0.03], "job.batch_size": [16, 64]},
        "strategy": {"name": "grid"},
        "metric": "val_accuracy",
    }


def refresh(ctx: Context, http: httpx.Client, record: SweepRecord) -> None:
    """Read the sweep's status, trials and best into ``record``."""
    if record.id is None:
        return
    response = ctx.rec.call(http, "get sweep", "GET", f"/v1/sweeps/{record.id}")
    if response is None or response.status_code != 200:
        return
    data = response.json()
    with ctx.tallies.sweeps.lock:
        record.status = data["status"]
        record.trials = data["trials"]
        record.best = data.get("best")


def schedule(options: Any) -> list[float]:
    """When the sweeps start (s): from ``sweep_at``, every ``sweep_every`` (closer in a
    short run, so that it has all three kinds), none in the last minute."""
    last = options.duration - 60
    every = min(options.sweep_every, max(10.0, (last - options.sweep_at) / len(KINDS)))
    times, t = [], options.sweep_at
    while t < last or not times:
        times.append(t)
        t += every
    return times


def sweeper(ctx: Context) -> None:
    """Create the sweeps on :func:`schedule`; cancel every third once a trial has ended
    and another is still active (or after :data:`CANCEL_LATEST_S`); keep the active
    ones read (the killer aims at their trials) until the load stops."""
    starts = schedule(ctx.options)
    cancelling: SweepRecord | None = None
    with ctx.http() as http:
        while True:
            if starts and ctx.rec.now() >= starts[0]:
                starts.pop(0)
                cancelling = create(ctx, http, len(ctx.tallies.sweeps.all())) or cancelling
            if cancelling is not None:
                refresh(ctx, http, cancelling)
                if midway(cancelling) or ctx.rec.now() - cancelling.t >= CANCEL_LATEST_S:
                    cancel(ctx, http, cancelling)
                    cancelling = None
            for record in ctx.tallies.sweeps.active():
                refresh(ctx, http, record)
            if ctx.stop.wait(2.0):
                return


def create(ctx: Context, http: httpx.Client, n: int) -> SweepRecord | None:
    """Create sweep number ``n``; the record when it is one to cancel midway."""
    kind = KINDS[n % len(KINDS)]
    target = ctx.rec.targets[0]  # a generated dataset: never deleted
    payload = body(kind, n, target.dataset_id, target.n_features)
    response = ctx.rec.call(http, "create sweep", "POST", "/v1/sweeps", json=payload)
    record = SweepRecord(kind, ctx.rec.now(), response.status_code if response else 0)
    if response is not None and response.status_code == 202:
        record.id = response.json()["id"]
        record.status = response.json()["status"]
    elif response is not None:
        record.refused = response.text[:300]
    ctx.tallies.sweeps.add(record)
    return record if record.id and kind == "cancelled" else None


def midway(record: SweepRecord) -> bool:
    statuses = [t["status"] for t in record.trials]
    return any(s in TERMINAL for s in statuses) and any(s not in TERMINAL for s in statuses)


def cancel(ctx: Context, http: httpx.Client, record: SweepRecord) -> None:
    response = ctx.rec.call(http, "cancel sweep", "POST", f"/v1/sweeps/{record.id}/cancel")
    record.cancel_t = ctx.rec.now()
    record.cancel_answer = response.status_code if response is not None else 0


# --------------------------------------------------------------------------- verdict


def checks(
    sweeps: Sweeps, statuses: dict[str, str], models: dict[str, int], killed_jobs: set[str]
) -> list[tuple[str, bool, str]]:
    """The sweep lines of the verdict, from the sweeps' final reads, every job's final
    status (``statuses``) and model count (``models``), and the jobs whose worker was
    SIGKILLed while it held them."""
    records = sweeps.all()
    created = [r for r in records if r.id]
    ended = [r for r in created if r.status in TERMINAL]
    wrong: list[str] = []
    for r in created:
        wrong += [f"{r.id} ({r.kind}): {p}" for p in outcome_problems(r, statuses, models)]
    trials = sweeps.trial_jobs()
    hit = sorted(trials & killed_jobs)
    ended_ok = ("succeeded", "cancelled")
    hit_bad = [f"{j} {statuses.get(j)}" for j in hit if statuses.get(j) not in ended_ok]
    kinds = ", ".join(f"{r.kind} {r.status or r.created}" for r in records) or "none"
    return [
        (
            "every sweep created and ended",
            bool(records) and len(created) == len(records) and len(ended) == len(created),
            f"{len(records)} sweeps ({kinds}); {len(ended)} ended; "
            f"{len(trials)} trials among the jobs above",
        ),
        (
            "every sweep ended as asked (trials, models, best)",
            not wrong,
            "all as asked" if not wrong else "; ".join(wrong[:5]),
        ),
        (
            "a trial whose worker was SIGKILLed ended as its sweep asked",
            bool(hit) and not hit_bad,
            f"{len(hit)} trial(s) held by a killed worker"
            + (f"; wrong: {', '.join(hit_bad)}" if hit_bad else ""),
        ),
    ]


def outcome_problems(r: SweepRecord, statuses: dict[str, str], models: dict[str, int]) -> list[str]:
    """What is wrong with one ended sweep: a sweep left alone succeeds with every trial
    succeeded, each with its model, and a best; a cancelled one ends cancelled, its
    succeeded trials keep their models and the others have none."""
    problems = []
    for t in r.trials:
        job, status = t["job_id"], statuses.get(t["job_id"], "missing")
        if status != t["status"]:
            problems.append(f"trial {t['index']} reads {t['status']}, its job is {status}")
        if (models.get(job, 0) > 0) != (status == "succeeded"):
            problems.append(f"trial {t['index']} {status} with {models.get(job, 0)} model(s)")
    if not r.cancelled:
        if r.status != "succeeded":
            problems.append(f"ended {r.status}")
        if any(t["status"] != "succeeded" for t in r.trials):
            problems.append("a trial did not succeed")
        if not r.best or not r.best.get("model_id"):
            problems.append("no best model")
    elif r.cancel_answer == 202 and r.status != "cancelled":
        problems.append(f"cancel answered 202 but the sweep ended {r.status}")
    return problems


def summary(sweeps: Sweeps) -> str:
    """One line per sweep for the report."""
    lines = []
    for r in sweeps.all():
        trials: dict[str, int] = {}
        for t in r.trials:
            trials[t["status"]] = trials.get(t["status"], 0) + 1
        cancel = (
            f", cancel at {r.cancel_t / 60:.1f} min: {r.cancel_answer}"
            if r.cancel_t is not None
            else ""
        )
        best = r.best.get("score") if r.best else None
        lines.append(
            f"    {r.t / 60:.1f} min {r.kind}: create {r.created}{cancel} -> {r.status or '-'}; "
            f"trials {trials or '-'}; best score {best}{' ' + r.refused if r.refused else ''}"
        )
    return "Sweeps:\n" + "\n".join(lines) if lines else "Sweeps: none"
