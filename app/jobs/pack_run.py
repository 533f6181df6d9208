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
from app.engine.errors import EngineError
from app.engine.pack import Outcome, Pack, packs
from app.engine.training import TrainingResult
from app.jobs import dbretry, endings
from app.jobs.attempt import JobRun
from app.jobs.next_claim import NextClaim
from app.jobs.pulse import Lease, Pulse
from app.jobs.queue import Claim
from app.storage.blobs import BlobStore, BlobStoreUnavailable
from app.storage.database import UNAVAILABLE, Database, brief

log = logging.getLogger("backprop.worker")

# What stops a pack's endings from being written together but not a trial alone: its
# blob store or database away (each trial's own ending deals with it as alone).
_EXPECTED: tuple[type[Exception], ...] = (BlobStoreUnavailable, *UNAVAILABLE)

Guard = Callable[[Claim, Lease, Callable[[], "bool | None"]], "bool | None"]


def run_pack(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    pulse: Pulse,
    leases: list[Lease],
    stopping: threading.Event,
    guard: Guard,
    next_claim: NextClaim | None = None,
) -> int:
    """Run the trials of ``leases`` (one per claimed trial); the number that ended. Each
    trial's lease is dropped from ``pulse`` once its outcome is written (or left to the
    lease), so the pulse renews only the trials still training. ``next_claim`` is taken
    in the transaction that ends the last trials (``app.jobs.next_claim``)."""
    ended = 0
    started: list[tuple[Lease, JobRun]] = []
    for lease in leases:
        run = JobRun(db, blobs, settings, lease.claim, lease, stopping)
        outcome = guard(lease.claim, lease, run.begin)
        if outcome is None:
            started.append((lease, run))
        else:
            ended += int(outcome)
            pulse.drop(lease)
    groups = packs([run.trainer for _, run in started])
    for group in groups:
        trials = [started[i] for i in group]
        for _, run in trials:  # a later group's trials waited: not time they worked
            run.restart_clock()
        last = group is groups[-1]
        if len(trials) == 1:
            lease, run = trials[0]
            if last:
                run.next_claim = next_claim
            ended += int(bool(guard(lease.claim, lease, run.work)))
            pulse.drop(lease)
        else:
            ended += _together(pulse, trials, guard, next_claim if last else None)
    return ended


def _together(
    pulse: Pulse,
    trials: list[tuple[Lease, JobRun]],
    guard: Guard,
    next_claim: NextClaim | None = None,
) -> int:
    """Train one pack's trials together, each concluded as it leaves; the number that
    ended."""
    log.info(
        "jobs %s: trained together (a pack of %d)",
        ", ".join(lease.claim.job_id for lease, _ in trials),
        len(trials),
    )
    ended = 0
    left: set[int] = set()

    def conclude(i: int, outcome: Outcome) -> None:
        nonlocal ended
        lease, run = trials[i]
        if isinstance(outcome, TrainingResult | EngineError):
            call = functools.partial(run.conclude, outcome)
        else:  # raised for this trial alone (a bug): it fails, the others go on
            call = functools.partial(_reraise, outcome)
        try:
            ended += int(bool(guard(lease.claim, lease, call)))
        except Exception:  # what even the guard could not handle: this trial's lease decides
            log.exception("job %s: its ending failed; left to its lease", lease.claim.job_id)
        pulse.drop(lease)

    def on_leave(group: list[tuple[int, Outcome]]) -> None:
        nonlocal ended
        left.update(i for i, _ in group)
        finishing = [
            (i, outcome)
            for i, outcome in group
            if isinstance(outcome, TrainingResult)
            and not outcome.stopped
            and not trials[i][1].lease_gone()
        ]
        last = len(left) == len(trials)  # the pack's last trials: the next claim with them
        if len(finishing) > 1 and trials[0][1].db.is_sqlite:  # see finish_together
            written, cancelled = _finish_together(
                [(i, *trials[i], result) for i, result in finishing],
                next_claim if last else None,
            )
            for i, done in written.items():
                ended += int(done)
                pulse.drop(trials[i][0])
            for i, item in cancelled.items():  # ended as finish ends them alone
                lease, run = trials[i]
                end = functools.partial(run.cancelled, item)
                ended += int(bool(guard(lease.claim, lease, end)))
                pulse.drop(lease)
            group = [(i, o) for i, o in group if i not in written and i not in cancelled]
        finishers = [
            i for i, outcome in group if isinstance(outcome, TrainingResult) and not outcome.stopped
        ]
        if last and finishers:  # ended one by one: the last finished one's commit claims
            trials[finishers[-1]][1].next_claim = next_claim
        for i, outcome in group:
            conclude(i, outcome)

    try:
        Pack([run.member() for _, run in trials]).run(on_leave)
    except Exception as exc:  # a bug in the pack itself: every trial still in it fails
        for i, (lease, _) in enumerate(trials):
            if i not in left:
                ended += int(bool(guard(lease.claim, lease, functools.partial(_reraise, exc))))
                pulse.drop(lease)
    return ended


def _finish_together(
    trials: list[tuple[int, Lease, JobRun, TrainingResult]],
    next_claim: NextClaim | None = None,
) -> tuple[dict[int, bool], dict[int, endings.Finishing]]:
    """The final commits of trials that completed at the same epoch, in one transaction
    (:func:`app.jobs.endings.finish_together`): ({i: whether trial i ended} for those it
    wrote, {i: its finishing} for those whose cancel was requested, which the caller ends
    as :func:`app.jobs.endings.finish` would). When the transaction cannot be written,
    neither: every trial then ends on its own, as alone, its blob store or database
    trouble handled there. ``next_claim`` is taken in that transaction."""
    jobs = ", ".join(lease.claim.job_id for _, lease, _, _ in trials)
    try:
        items = [run.finishing(result) for _, _, run, result in trials]
        for _, lease, _, _ in trials:
            lease.ending()
        then = next_claim.in_transaction if next_claim is not None else None
        outcomes = dbretry.until_deadline(
            lambda: endings.finish_together(trials[0][2].db, items, then=then),
            deadline=lambda: min(lease.lease_deadline() for _, lease, _, _ in trials),
            what=f"jobs {jobs}: finish",
        )
    except _EXPECTED as exc:
        log.warning("jobs %s: endings not written together: %s", jobs, brief(exc))
        return {}, {}
    except Exception:  # a bug: logged whole; each trial's own ending still runs
        log.exception("jobs %s: endings not written together", jobs)
        return {}, {}
    written: dict[int, bool] = {}
    cancelled: dict[int, endings.Finishing] = {}
    for (i, _, run, _), item, outcome in zip(trials, items, outcomes, strict=True):
        if outcome is None:
            cancelled[i] = item
        else:
            written[i] = run.finished(outcome)
    if any(written.values()):
        log.info("jobs %s: endings written in one transaction", jobs)
    return written, cancelled


def _reraise(exc: Exception) -> bool:
    raise exc
