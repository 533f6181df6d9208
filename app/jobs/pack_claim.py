"""Claiming a pack: the next queued job, and with it, when it is a sweep's trial that can
train together with others (``app.engine.pack``), up to ``size - 1`` more queued trials
of the same sweep that would pack with it — in one transaction, each with its own lease.

Which trials pack is decided from the jobs' stored configurations (``pack_signature``):
the same network but for its initial weights, the same options but for the learning
rate, its schedule, the epochs and early stopping, the same dataset and the same
checkpointed epoch (a halving rung's continuations resume together). The engine checks
the trainers it builds once more (``pack.packs``) and trains any that turn out not to
fit on their own, one after another. The sweep's ``max_parallel`` caps the companions
too: they count as running trials from this transaction on (on PostgreSQL, workers
taking companions from one sweep do so in turn, each counting the others' claims; one
that finds another taking them claims its one trial alone).

A claimer leaves one queued trial of the sweep for each other live worker that runs
nothing (``_leave_for_idle``): near a sweep's end the last trials are split between the
free workers rather than trained as one pack while the others wait.

Companions are the first trial's owner's: owners still take turns claim by claim, but
with one idle worker another owner's job waits behind a whole pack (at most
``pack_trials`` trials trained together), not behind one trial.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.orm import Session

from app.engine.pack import PACK_MAX_PARAMETERS, SUPPORTED_OPTIMIZERS
from app.jobs import fairness
from app.jobs.pulse import WORKER_BEAT_SECONDS
from app.jobs.queue import JOBS, Claim, claim_parameters, core, take_next
from app.storage.database import Database
from app.storage.tables import Job, JobKind, JobStatus, Sweep, WorkerHeartbeat, core_table

CANDIDATES = 64  # queued trials of the sweep looked at for companions, oldest first
LIVE_WORKER_SECONDS = 3 * WORKER_BEAT_SECONDS  # a worker row beaten since then is live

_TRIAL = select(
    Job.sweep_id,
    Job.network_config,
    Job.options,
    Job.checkpoint_epoch,
    Job.dataset_id,
    Job.init_model_id,
).where(Job.id == bindparam("job_id"))
_QUEUED_TRIALS = (
    select(
        Job.id,
        Job.network_config,
        Job.options,
        Job.checkpoint_epoch,
        Job.dataset_id,
        Job.init_model_id,
    )
    .where(
        Job.sweep_id == bindparam("sweep_id"),
        Job.status == JobStatus.QUEUED,
        Job.kind == JobKind.TRAIN,
    )
    .order_by(fairness.ran_elsewhere(), Job.created_at, Job.id)
    .limit(CANDIDATES)
)
# PostgreSQL: claimers of one sweep's companions take turns (a transaction-scoped advisory
# lock on the sweep), so each counts the others' committed claims against max_parallel;
# only claimers take it (some inside a trial's ending transaction: app/jobs/next_claim.py),
# and only by trying, so it cannot deadlock with an ending or a sweep's cancel, and a
# claimer that finds it taken claims its one job without companions, never waiting
# (another claimer could be stalled inside its transaction).
_SWEEP_TURN = select(
    func.pg_try_advisory_xact_lock(func.hashtextextended(bindparam("sweep_id"), 0))
)
_WORKERS = core_table(WorkerHeartbeat)
_ROOM = select(
    Sweep.max_parallel,
    select(func.count())
    .select_from(JOBS)
    .where(JOBS.c.sweep_id == Sweep.id, JOBS.c.status == JobStatus.RUNNING)
    .scalar_subquery(),
    # The sweep's queued trials and the workers with nothing running (this claim's first
    # trial already counts as running): see _leave_for_idle.
    select(func.count())
    .select_from(JOBS)
    .where(JOBS.c.sweep_id == Sweep.id, JOBS.c.status == JobStatus.QUEUED)
    .scalar_subquery(),
    select(func.count())
    .select_from(_WORKERS)
    .where(
        _WORKERS.c.heartbeat_at >= bindparam("fresh_since"),
        ~exists().where(JOBS.c.worker_id == _WORKERS.c.id, JOBS.c.status == JobStatus.RUNNING),
    )
    .scalar_subquery(),
).where(Sweep.id == bindparam("sweep_id"))
# Taken only while still queued, and (PostgreSQL) not locked by another worker's claim,
# which is skipped rather than waited for.
_TAKE = (
    update(Job)
    .where(
        Job.id
        == select(Job.id)
        .where(Job.id == bindparam("job_id"), Job.status == JobStatus.QUEUED)
        .with_for_update(skip_locked=True)
        .scalar_subquery(),
        Job.status == JobStatus.QUEUED,
    )
    .values(**fairness.claimed_values())
    .returning(Job.attempts, Job.cancel_requested)
)


def pack_signature(
    network_config: dict[str, Any],
    options: dict[str, Any],
    checkpoint_epoch: int | None,
    dataset_id: str | None,
    init_model_id: str | None,
) -> str | None:
    """What trials that may train together share (see the module docstring); None for a
    job that trains alone (per-layer statistics, clipping, an initial model, a network
    too large to gain, softmax under mse)."""
    if init_model_id is not None or options.get("diagnostics", True):
        return None
    if options.get("clip_norm") is not None:
        return None
    if (options.get("optimizer") or {}).get("name", "adam") not in SUPPORTED_OPTIMIZERS:
        return None
    layers = network_config.get("layers") or []
    sizes = [int(network_config.get("input_size", 0)), *(int(ly["units"]) for ly in layers)]
    parameters = sum(n * (n_prev + 1) for n_prev, n in pairwise(sizes))
    if not layers or parameters > PACK_MAX_PARAMETERS:
        return None
    if layers[-1].get("activation") == "softmax" and network_config.get("loss") == "mse":
        return None
    shared = {k: v for k, v in options.items() if k not in _MAY_DIFFER}
    optimizer = {k: v for k, v in (options.get("optimizer") or {}).items() if k != "learning_rate"}
    network = {k: v for k, v in network_config.items() if k not in ("seed", "init")}
    return json.dumps(
        [network, shared, optimizer, checkpoint_epoch, dataset_id], sort_keys=True, default=str
    )


_MAY_DIFFER = ("optimizer", "epochs", "lr_schedule", "early_stopping")


def claim_pack(db: Database, *, worker_id: str, lease_seconds: float, size: int) -> list[Claim]:
    """The next queued job (``queue.claim_next``'s rules), and up to ``size - 1`` queued
    trials of its sweep that would train with it; [] when nothing may start."""
    with db.session() as session:
        return claim_pack_in(session, worker_id=worker_id, lease_seconds=lease_seconds, size=size)


def claim_pack_in(
    session: Session, *, worker_id: str, lease_seconds: float, size: int
) -> list[Claim]:
    """:func:`claim_pack` inside ``session``'s write transaction (another write's: the
    claims hold once it commits)."""
    leased_at = time.monotonic()  # before the lease's expiry is computed: never late
    params = claim_parameters(worker_id, lease_seconds)
    first = take_next(session, params)
    if first is None:
        return []
    claims = [first]
    if first.kind == JobKind.TRAIN and size > 1:
        claims += _companions(session, first.job_id, params, size - 1)
    return [replace(claim, leased_at=leased_at) for claim in claims]


def _leave_for_idle(queued: int, idle: int) -> int:
    """How many of a sweep's ``queued`` trials a claimer may take as companions while
    ``idle`` other live workers run nothing: all but one for each idle worker. With many
    trials queued that changes nothing; at a sweep's end (a halving sweep's last rung:
    a few trials, often of one network) it splits the last pack between the free
    workers instead of training it on one while the others wait (the benchmark's
    halving sweep ended ~130 ms after one worker had gone idle)."""
    return max(0, queued - idle)


def _companions(session: Session, job_id: str, params: dict[str, Any], room: int) -> list[Claim]:
    connection = core(session)
    trial = connection.execute(_TRIAL, {"job_id": job_id}).first()
    if trial is None or trial.sweep_id is None:
        return []
    signature = pack_signature(*trial[1:])
    if signature is None:
        return []
    postgres = connection.dialect.name == "postgresql"
    if postgres and not connection.execute(_SWEEP_TURN, {"sweep_id": trial.sweep_id}).scalar():
        return []
    fresh_since = params["now"] - timedelta(seconds=LIVE_WORKER_SECONDS)
    cap, running, queued, idle = connection.execute(
        _ROOM, {"sweep_id": trial.sweep_id, "fresh_since": fresh_since}
    ).one()
    if cap is not None:
        room = min(room, cap - running)
    room = min(room, _leave_for_idle(queued, idle))
    claims: list[Claim] = []
    if room <= 0:
        return claims
    # All read before the first is taken: SQLite's scan must not run under its updates.
    for row in connection.execute(
        _QUEUED_TRIALS, {"sweep_id": trial.sweep_id, "worker": params["worker"]}
    ).all():
        if pack_signature(*row[1:]) != signature:
            continue
        taken = connection.execute(_TAKE, {**params, "job_id": row.id}).first()
        if taken is not None:
            claims.append(
                Claim(
                    row.id,
                    params["token"],
                    params["worker"],
                    taken.attempts,
                    cancel_requested=bool(taken.cancel_requested),
                )
            )
            if len(claims) == room:
                break
    return claims
