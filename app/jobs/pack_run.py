"""The trials of a claimed pack (``app.jobs.pack_claim``) run by one worker: each one's
attempt starts (loads its inputs) on its own, those whose trainers pack
(``app.engine.pack.packs``) train together, and each ends on its own — its progress,
checkpoints and final commit are exactly those of a trial trained alone, written as it
leaves the pack while the others go on (a cancel, a divergence or early stopping ends
one trial, not the pack). Trainers that turn out not to pack train alone, one after
another.

``guard`` is the worker's handling of what escapes an attempt (a blob store or database
that is away, a bug): applied to every call made for one trial, so that one trial's
trouble ends that trial as it would end a trial trained alone.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

from app.config import Settings
from app.engine.pack import Member, Outcome, Pack, packs
from app.jobs.attempt import JobRun
from app.jobs.pulse import Lease
from app.jobs.queue import Claim
from app.storage.blobs import BlobStore
from app.storage.database import Database

log = logging.getLogger("backprop.worker")

Guard = Callable[[Claim, Lease, Callable[[], "bool | None"]], "bool | None"]


def run_pack(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    leases: list[Lease],
    stopping: threading.Event,
    guard: Guard,
) -> int:
    """Run the trials of ``leases`` (one per claimed trial); the number that ended."""
    trials = [
        (lease, JobRun(db, blobs, settings, lease.claim, lease, stopping)) for lease in leases
    ]
    ended = 0
    started: list[tuple[Lease, JobRun]] = []
    for lease, run in trials:
        outcome = guard(lease.claim, lease, run.begin)
        if outcome is None:
            started.append((lease, run))
        else:
            ended += int(outcome)
    members = [run.member() for _, run in started]
    for group in packs([member.trainer for member in members]):
        if len(group) == 1:
            lease, run = started[group[0]]
            ended += int(bool(guard(lease.claim, lease, run.work)))
            continue
        ended += _together([started[i] for i in group], [members[i] for i in group], guard)
    return ended


def _together(trials: list[tuple[Lease, JobRun]], members: list[Member], guard: Guard) -> int:
    """Train one pack's trials together, each concluded as it leaves; the number that
    ended."""
    log.info(
        "jobs %s: trained together (a pack of %d)",
        ", ".join(lease.claim.job_id for lease, _ in trials),
        len(trials),
    )
    ended = 0
    left: set[int] = set()

    def on_leave(i: int, outcome: Outcome) -> None:
        nonlocal ended
        left.add(i)
        lease, run = trials[i]
        ended += int(bool(guard(lease.claim, lease, functools.partial(run.conclude, outcome))))

    try:
        Pack(members).run(on_leave)
    except Exception as exc:  # a bug: every trial still in the pack fails with it
        for i, (lease, _) in enumerate(trials):
            if i not in left:
                ended += int(bool(guard(lease.claim, lease, functools.partial(_reraise, exc))))
    return ended


def _reraise(exc: Exception) -> bool:
    raise exc
