"""Claiming a pack: the next queued job, or, when that is a sweep's trial, the longest
work among its sweep's queued trials of the same stage: a pack of up to ``size`` trials
that train together (``app.engine.pack``), or one trial alone — in one transaction, each
with its own lease.

The stage is the trial's checkpointed epoch (the claim order runs a sweep's fresh trials,
then its continued ones from the earliest epoch: app/jobs/fairness.py), so a halving rung's
own trials still go before its promotions. Within the stage the claimer takes the work with
the highest estimated cost (app/jobs/trial_cost.py), longest first: the work left to run
alone at the end, while the other workers have nothing, is then the short work. Trials
are queued longest first already (app/services/sweep_order.py), but only one by one: a
pack of three trials that train together can be longer than a trial queued before them,
and a halving rung's promotions arrive in any order (in the benchmark's halving sweep
a worker took a 40-epoch single trial before the pack of three its rung had also
promoted, and the other worker idled the sweep's last 149 ms). Among equals, the claim
order decides: the trials the claimer ran last first (it may still hold their paused
trainers: app/jobs/paused_trainers.py), then the oldest. At most CANDIDATES trials of the
stage are weighed (a 200-trial grid's first claims choose among its 64 oldest).

Which trials pack is decided from the jobs' stored configurations (``pack_signature``):
the same network but for its initial weights, the same options but for the learning
rate, its schedule, the epochs and early stopping, the same dataset and the same
checkpointed epoch (a halving rung's continuations resume together). The engine checks
the trainers it builds once more (``pack.packs``) and trains any that turn out not to
fit on their own, one after another. The sweep's ``max_parallel`` caps the companions
too: they count as running trials from this transaction on. On PostgreSQL, workers
claiming from one sweep take turns (each then counts the others' committed claims); one
that finds another taking the sweep's trials claims its one trial alone, or, when the
sweep has a ``max_parallel``, none of them: it looks for its next job in other sweeps
(the other's uncommitted claims could take the first past the cap).

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
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Row,
    Update,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from app.engine.pack import PACK_MAX_PARAMETERS, SUPPORTED_OPTIMIZERS
from app.jobs import fairness, trial_cost
from app.jobs.pulse import WORKER_BEAT_SECONDS
from app.jobs.queue import JOBS, Claim, claim_parameters, core
from app.storage.database import Database
from app.storage.tables import (
    Dataset,
    Job,
    JobKind,
    JobStatus,
    Sweep,
    WorkerHeartbeat,
    core_table,
)

CANDIDATES = 64  # queued trials of a sweep's stage weighed by a claim (its own, then the oldest)
HEAD_LOOKS = 8  # reads of the next job per claim (PostgreSQL: a capped sweep skipped, or full)
LIVE_WORKER_SECONDS = 3 * WORKER_BEAT_SECONDS  # a worker row beaten since then is live

# A sweep's queued trials of one stage (from the same checkpointed epoch), in claim order:
# those the claimer ran last first, then the oldest; with what their cost is estimated from
# beside their configurations (_CONFIGS, read only for trials not yet known: _known).
_STAGE_TRIALS = (
    select(
        Job.id,
        Job.checkpoint_epoch,
        Job.epochs,
        fairness.ran_elsewhere().label("elsewhere"),
        select(Dataset.n_samples)
        .where(Dataset.id == Job.dataset_id)
        .scalar_subquery()
        .label("n_samples"),
    )
    .where(
        Job.sweep_id == bindparam("sweep_id"),
        Job.status == JobStatus.QUEUED,
        Job.kind == JobKind.TRAIN,
        func.coalesce(Job.checkpoint_epoch, 0) == bindparam("stage"),
    )
    .order_by(fairness.ran_elsewhere(), Job.created_at, Job.id)
    .limit(CANDIDATES)
)
_CONFIGS = select(Job.id, Job.network_config, Job.options, Job.dataset_id, Job.init_model_id).where(
    Job.id.in_(bindparam("job_ids", expanding=True))
)
# PostgreSQL: claimers of one sweep's trials take turns (a transaction-scoped advisory
# lock on the sweep), so each counts the others' committed claims against max_parallel;
# only claimers take it (some inside a trial's ending transaction: app/jobs/next_claim.py),
# and only by trying, so it cannot deadlock with an ending or a sweep's cancel. A
# claimer that finds it taken never waits (another claimer could be stalled inside its
# transaction): it claims its one job without companions, or, from a sweep with a
# max_parallel, nothing (claim_pack_in then reads the next job outside that sweep).
# The turn is tried for a capped sweep's trial, or to take companions: this reads the
# sweep's max_parallel and the turn (True / False; None when not tried: CASE evaluates
# the volatile try only then).
_CAP_AND_TURN = select(
    Sweep.max_parallel,
    case(
        (
            or_(Sweep.max_parallel.is_not(None), bindparam("companions", type_=Boolean)),
            func.pg_try_advisory_xact_lock(func.hashtextextended(Sweep.id, 0)),
        ),
        else_=None,
    ),
).where(Sweep.id == bindparam("sweep_id"))
_WORKERS = core_table(WorkerHeartbeat)
_ROOM = select(
    Sweep.max_parallel,
    select(func.count())
    .select_from(JOBS)
    .where(JOBS.c.sweep_id == Sweep.id, JOBS.c.status == JobStatus.RUNNING)
    .scalar_subquery(),
    # The sweep's queued trials and the other workers with nothing running: see
    # _leave_for_idle.
    select(func.count())
    .select_from(JOBS)
    .where(JOBS.c.sweep_id == Sweep.id, JOBS.c.status == JobStatus.QUEUED)
    .scalar_subquery(),
    select(func.count())
    .select_from(_WORKERS)
    .where(
        _WORKERS.c.heartbeat_at >= bindparam("fresh_since"),
        _WORKERS.c.id != bindparam("worker"),
        ~exists().where(JOBS.c.worker_id == _WORKERS.c.id, JOBS.c.status == JobStatus.RUNNING),
    )
    .scalar_subquery(),
).where(Sweep.id == bindparam("sweep_id"))


# Taken only while still queued, and (PostgreSQL) not locked by another worker's claim,
# which is skipped rather than waited for. The first job of a claim is taken only while
# its sweep is below ``max_parallel`` too (_TAKE_FIRST), and on PostgreSQL its companions
# as well: a check in the take's own statement, after the sweep's turn was taken.
def _take_statement(*where: ColumnElement[bool]) -> Update:
    return (
        update(Job)
        .where(
            Job.id
            == select(Job.id)
            .where(Job.id == bindparam("job_id"), Job.status == JobStatus.QUEUED, *where)
            .with_for_update(skip_locked=True)
            .scalar_subquery(),
            Job.status == JobStatus.QUEUED,
        )
        .values(**fairness.claimed_values())
        .returning(Job.attempts, Job.kind, Job.cancel_requested)
    )


_TAKE = _take_statement()
_TAKE_FIRST = _take_statement(fairness.may_start())


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
    if not layers or trial_cost.dense_parameters(network_config) > PACK_MAX_PARAMETERS:
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
    """The next queued job (``queue.claim_next``'s order; on PostgreSQL not from a capped
    sweep whose turn another claimer holds) or, when that is a sweep's trial, the longest
    work of up to ``size`` trials of its sweep and stage (see the module docstring); []
    when nothing may start."""
    with db.session() as session:
        return claim_pack_in(session, worker_id=worker_id, lease_seconds=lease_seconds, size=size)


def claim_pack_in(
    session: Session, *, worker_id: str, lease_seconds: float, size: int
) -> list[Claim]:
    """:func:`claim_pack` inside ``session``'s write transaction (another write's: the
    claims hold once it commits)."""
    leased_at = time.monotonic()  # before the lease's expiry is computed: never late
    params = claim_parameters(worker_id, lease_seconds)
    connection = core(session)
    skipped: list[str] = []  # capped sweeps whose turn another claimer holds (PostgreSQL)
    for _ in range(HEAD_LOOKS):
        statement = fairness.next_statement(skipping=bool(skipped))
        head = connection.execute(statement, {**params, "skipped": skipped}).first()
        if head is None:
            return []
        taken: list[Claim] | None = []
        if head.sweep_id is not None and head.kind == JobKind.TRAIN:
            stage = head.checkpoint_epoch or 0
            taken = _take_longest(connection, head.sweep_id, stage, params, size)
            if taken is None:
                skipped.append(head.sweep_id)
                continue
        # PostgreSQL: the longest work may have been taken by another claimer since it was
        # read; the head, which the read locked, cannot have been.
        taken = taken or _take(connection, [head.id], params, 1)
        if taken:
            return [replace(claim, leased_at=leased_at) for claim in taken]
        # PostgreSQL: the head's sweep reached its cap since it was read; look again.
    return []


def _leave_for_idle(queued: int, idle: int) -> int:
    """How many of a sweep's ``queued`` trials a claimer may take as companions while
    ``idle`` other live workers run nothing: all but one for each idle worker. With many
    trials queued that changes nothing; at a sweep's end (a halving sweep's last rung:
    a few trials, often of one network) it splits the last pack between the free
    workers instead of training it on one while the others wait (the benchmark's
    halving sweep ended ~130 ms after one worker had gone idle)."""
    return max(0, queued - idle)


def _take_longest(
    connection: Connection, sweep_id: str, stage: int, params: dict[str, Any], size: int
) -> list[Claim] | None:
    """The longest work among the sweep's queued trials of ``stage`` (a checkpointed
    epoch; see the module docstring), taken; [] when another claimer took them meanwhile
    or the sweep reached its cap, None when the sweep has a ``max_parallel`` and another
    claimer its turn (both PostgreSQL)."""
    room = _room(connection, sweep_id, params, size - 1)
    if room is None:
        return None
    # All read before the first is taken: SQLite's scan must not run under its updates.
    rows = connection.execute(_STAGE_TRIALS, {**params, "sweep_id": sweep_id, "stage": stage}).all()
    known = _known(connection, rows)
    return _take(connection, [row.id for row in _longest(rows, known, 1 + room)], params, 1 + room)


def _take(
    connection: Connection, job_ids: list[str], params: dict[str, Any], most: int
) -> list[Claim]:
    """Up to ``most`` of ``job_ids``, in order, each taken with the lease of ``params``
    while still queued (a job locked or taken by another claimer is skipped)."""
    claims: list[Claim] = []
    # SQLite's write lock held since the room was counted keeps it exact; on PostgreSQL
    # every take rechecks the cap (the turn makes the count exact; the check is cheap).
    recheck = connection.dialect.name == "postgresql"
    for job_id in job_ids:
        statement = _TAKE_FIRST if recheck or not claims else _TAKE
        taken = connection.execute(statement, {**params, "job_id": job_id}).first()
        if taken is not None:
            claims.append(
                Claim(
                    job_id,
                    params["token"],
                    params["worker"],
                    taken.attempts,
                    taken.kind,
                    bool(taken.cancel_requested),
                )
            )
            if len(claims) == most:
                break
    return claims


def _room(connection: Connection, sweep_id: str, params: dict[str, Any], room: int) -> int | None:
    """How many companions the claim may take beside its first trial: ``room`` at most,
    under the sweep's ``max_parallel`` and :func:`_leave_for_idle`, all counted as once
    the first is taken. On PostgreSQL while another claimer has the sweep's turn: none,
    or, when the sweep has a ``max_parallel``, None: not even the first trial, which the
    other's uncommitted claims could take past the cap."""
    if connection.dialect.name == "postgresql":
        found = connection.execute(
            _CAP_AND_TURN, {"sweep_id": sweep_id, "companions": room > 0}
        ).first()
        cap, turn = found if found is not None else (None, None)
        if turn is None:  # the sweep is gone, or uncapped and no companions are wanted
            return 0
        if not turn:
            return None if cap is not None else 0
    if room <= 0:
        return 0
    fresh_since = params["now"] - timedelta(seconds=LIVE_WORKER_SECONDS)
    cap, running, queued, idle = connection.execute(
        _ROOM, {"sweep_id": sweep_id, "fresh_since": fresh_since, "worker": params["worker"]}
    ).one()
    if cap is not None:
        room = min(room, cap - running - 1)
    return max(0, min(room, _leave_for_idle(queued - 1, idle)))


# A job's pack signature and cost inputs (one epoch's: TrialCost.epochs 0) by (job id,
# checkpoint epoch): what they are computed from (network config, options, dataset,
# initial model) is written once, when the job is queued. A claim weighs every queued
# trial of a stage (48 at a digits grid's start): computing their signatures again at each
# claim cost ~1 ms of it, reading and decoding their configurations another ~0.5 ms.
Known = tuple[str | None, trial_cost.TrialCost]
_KNOWN: dict[tuple[str, int | None], Known] = {}
_KNOWN_KEPT = 4096


def _known(connection: Connection, rows: Sequence[Row[Any]]) -> dict[str, Known]:
    """Each of ``rows``' trials' (signature, cost inputs) by job id, the configurations of
    those not known yet read in one statement."""
    known: dict[str, Known] = {}
    missing: dict[str, int | None] = {}
    for row in rows:
        entry = _KNOWN.get((row.id, row.checkpoint_epoch))
        if entry is None:
            missing[row.id] = row.checkpoint_epoch
        else:
            known[row.id] = entry
    if not missing:
        return known
    if len(_KNOWN) + len(missing) > _KNOWN_KEPT:
        _KNOWN.clear()
    for config in connection.execute(_CONFIGS, {"job_ids": list(missing)}):
        epoch = missing[config.id]
        entry = (
            pack_signature(
                config.network_config,
                config.options,
                epoch,
                config.dataset_id,
                config.init_model_id,
            ),
            trial_cost.trial_of(config.network_config, config.options, 0),
        )
        _KNOWN[(config.id, epoch)] = known[config.id] = entry
    return known


def _longest(rows: Sequence[Row[Any]], known: dict[str, Known], most: int) -> list[Row[Any]]:
    """Of a stage's queued trials (in claim order), the longest work: the trials of a pack
    (those that train together), in claim order, weighed by their first ``most``, or one
    trial alone (trial_cost.pack_cost); the first in claim order among equals. When the
    claimer ran some of them last, only their packs are weighed: it may still hold their
    paused trainers, which resume without reading a checkpoint."""
    groups: dict[object, list[Row[Any]]] = {}
    for row in rows:
        if row.id not in known:  # deleted since the stage was read (PostgreSQL)
            continue
        signature = known[row.id][0]
        groups.setdefault(("alone", row.id) if signature is None else signature, []).append(row)
    candidates = list(groups.values())
    own = [group for group in candidates if not group[0].elsewhere]  # its own come first
    rows_in_dataset = max(rows[0].n_samples or 1, 1) if rows else 1

    def cost(group: list[Row[Any]]) -> float:
        # A pack's trials share the network, the batch size and the split: one estimate
        # of the first's, with each trial's epochs left.
        first = known[group[0].id][1]
        left = [max(0, row.epochs - (row.checkpoint_epoch or 0)) for row in group[:most]]
        return trial_cost.pack_cost(first, left, rows_in_dataset)

    return max(own or candidates, key=cost, default=[])
