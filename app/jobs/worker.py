"""The worker process: claim a queued job, run it, commit the result; repeat.

``Worker(db, settings).run()`` loops until SIGTERM/SIGINT: sweep expired leases back to
the queue (every few seconds), claim the oldest queued job, run it (training:
:mod:`app.jobs.attempt`; prediction runs and evaluations: :mod:`app.jobs.batch_attempt`),
claim the next one at once (in the transaction that ends the last one, when it found one
queued: :mod:`app.jobs.next_claim`), and poll every ``settings.poll_seconds`` when idle (and look
at once when a commit to the SQLite file, or PostgreSQL's NOTIFY of a queued job, ends
the wait early: ``app.storage.commit_watch``). For
:data:`QUICK_POLL_WINDOW` seconds after its last job ended a worker polls every
:data:`QUICK_POLL_SECONDS` instead: another worker's job ending is what most often makes new
work (a halving sweep promotes a trial once it is certain to be among its rung's best,
at the latest when the rung's last trial ends; a ``max_parallel`` sweep frees a slot),
and a promotion then starts within a few milliseconds
rather than a poll tick later. Not on SQLite, whose watch ends a wait at every commit, that
ending's included: there the quick looks only cost CPU (each ~0.5-1.5 ms, taken from the
worker still training; ~180 of them per halving sweep of the benchmark). An idle server
still polls at the slow rate. A background
:class:`Pulse` thread renews the job's lease, polls (with a cheap read) for a cancel and
keeps the worker's row in ``workers`` fresh; it is a thread of its own so that a long
batch never lets the lease lapse.

On a stop signal the training stops within one batch and the job goes back to the queue
(``release``); the process exits 0. When the blob store is unreachable the job goes back
to the queue too, and the worker waits :data:`STORE_RETRY_SECONDS` before claiming again
(not when the ending claimed its next jobs already: their starts find out).
``run(burst=True)`` returns once the queue is empty. The trainers of the halving trials a
worker paused, kept for their promotions (:mod:`app.jobs.paused_trainers`), are dropped
once it has idled :data:`KEEP_PAUSED_SECONDS`, and when it stops.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings
from app.jobs import endings, pack_claim, paused_trainers, queue
from app.jobs.attempt import JobRun
from app.jobs.batch_attempt import BatchRun
from app.jobs.next_claim import NextClaim
from app.jobs.pack_run import run_pack
from app.jobs.pulse import DB_RETRY_SECONDS, Lease, Pulse
from app.storage.blobs import BlobStore, BlobStoreUnavailable, open_blob_store
from app.storage.commit_watch import CommitWatch
from app.storage.database import Database, brief
from app.storage.tables import JobKind, WorkerHeartbeat, utcnow

log = logging.getLogger("backprop.worker")

STALE_WORKER_ROWS = timedelta(minutes=10)  # rows of workers that died without a goodbye
STORE_RETRY_SECONDS = 5.0
QUICK_POLL_SECONDS = 0.02  # idle polling right after a job ended (see the module docstring)
QUICK_POLL_WINDOW = 5.0
# Idle seconds after its last job before a worker drops the trainers of the trials it
# paused (app/jobs/paused_trainers.py): a rung's promotions come with the endings of its
# last trials, while this worker trains the rung's others or waits for them (a few seconds
# at most on the benchmark's sweep, whose rungs take ~0.2 s).
KEEP_PAUSED_SECONDS = 5.0


def new_worker_id() -> str:
    """``host:pid:random``, unique across restarts and hosts."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """One worker process's loop (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        worker_id: str | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.blobs = blobs or open_blob_store(settings)
        self.worker_id = worker_id or new_worker_id()
        self.stopping = threading.Event()
        self._sweep_every = max(settings.poll_seconds, min(5.0, settings.lease_seconds / 2))
        self._store_down = False  # a job of the current pack found the blob store away

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the current batch, release the job, exit 0. A second
        SIGINT (Ctrl+C twice) interrupts at once; the job's lease then lapses. Under
        ``backprop serve`` a Ctrl+C reaches a worker twice (terminal, then supervisor's
        SIGTERM), which is why a repeated SIGTERM changes nothing."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self.stopping.is_set():
                if signum == signal.SIGINT:
                    signal.default_int_handler(signum, frame)
                return
            log.info("worker %s: %s received, stopping", self.worker_id, signal.strsignal(signum))
            self.stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def run(self, *, burst: bool = False) -> int:
        """Work until stopped (or, with ``burst``, until the queue is empty). Returns the
        number of jobs this worker brought to an end."""
        commits = CommitWatch(self.db.url)  # ends idle waits at new work (see its module)
        pulse = Pulse(self.db, self.settings, self.worker_id)
        pulse.start()
        log.info("worker %s started (pid %d)", self.worker_id, os.getpid())
        done = 0
        next_sweep = 0.0
        quick_until = 0.0  # monotonic time until which idle polling is quick
        last_end = 0.0  # monotonic time the last claimed job(s) ended
        just_ended = False  # the last loop ran a job
        claimed: list[queue.Claim] = []  # claimed as the last job(s) ended (NextClaim)
        try:
            while not self.stopping.is_set() or claimed:
                claims: list[queue.Claim] = []
                try:
                    # Expired leases are handled on time however busy the worker is (its
                    # jobs may follow each other, each claimed by the last one's ending),
                    # but not once it stops: then it only runs what it holds.
                    if time.monotonic() >= next_sweep and not self.stopping.is_set():
                        self._sweep()
                        next_sweep = time.monotonic() + self._sweep_every
                    if claimed:  # (when stopping, its attempts see it and hand the jobs back)
                        claims, claimed = claimed, []
                    # A read first (no write lock while idle), except right after a job
                    # ended whose own transaction did not look for the next one: a
                    # sweep's next trial is most likely waiting, so claim at once.
                    elif just_ended or queue.has_queued(self.db):
                        claims = self._claim()
                except SQLAlchemyError as exc:
                    log.warning("worker %s: database unavailable: %s", self.worker_id, brief(exc))
                    self.stopping.wait(DB_RETRY_SECONDS)
                    continue
                just_ended = False
                if not claims:
                    if burst:
                        break
                    if time.monotonic() >= last_end + KEEP_PAUSED_SECONDS:
                        paused_trainers.PAUSED.clear()  # idle a while: no promotion coming
                    commits.wait(self._idle_wait(quick_until, commits), self.stopping)
                    continue
                leases = pulse.hold_all(claims)
                next_claim = NextClaim(
                    worker_id=self.worker_id,
                    lease_seconds=self.settings.lease_seconds,
                    size=self.settings.pack_trials,
                    stopping=self.stopping,
                )
                try:
                    done += self._run(pulse, leases, next_claim)
                finally:
                    claimed = next_claim.claims
                    pulse.hold_all([], finished=len(claims))
                    last_end = time.monotonic()
                    quick_until = last_end + QUICK_POLL_WINDOW
                    just_ended = not next_claim.tried
        finally:
            paused_trainers.PAUSED.clear()
            commits.close()
            pulse.stop()
            self._goodbye()
        log.info("worker %s stopped after %d job(s)", self.worker_id, done)
        return done

    def _idle_wait(self, quick_until: float, commits: CommitWatch) -> float:
        """Seconds to wait before looking for a queued job again."""
        if time.monotonic() < quick_until and not commits.sees_every_commit:
            return min(QUICK_POLL_SECONDS, self.settings.poll_seconds)
        return self.settings.poll_seconds

    def _claim(self) -> list[queue.Claim]:
        """The next job, or pack of a sweep's trials (``pack_claim``); [] when none."""
        return pack_claim.claim_pack(
            self.db,
            worker_id=self.worker_id,
            lease_seconds=self.settings.lease_seconds,
            size=self.settings.pack_trials,
        )

    def _run(self, pulse: Pulse, leases: list[Lease], next_claim: NextClaim) -> int:
        """Run the claimed jobs (one, or the trials of a pack); the number that ended. The
        transaction that ends the last of a training job or pack takes ``next_claim``."""
        self._store_down = False
        guard = functools.partial(self._guarded, wait_on_store=False)
        if len(leases) > 1:
            ended = run_pack(
                self.db,
                self.blobs,
                self.settings,
                pulse,
                leases,
                self.stopping,
                guard,
                next_claim,
            )
        else:
            lease = leases[0]
            claim = lease.claim
            # Training, or a prediction run / evaluation streaming a dataset's rows.
            run = JobRun if claim.kind == JobKind.TRAIN else BatchRun
            attempt = run(self.db, self.blobs, self.settings, claim, lease, self.stopping)
            if isinstance(attempt, JobRun):
                attempt.next_claim = next_claim
            ended = int(bool(guard(claim, lease, attempt.run)))
        # The store was away: wait before claiming again, unless jobs are claimed already
        # (their leases run: their own starts find out whether the store is back).
        if self._store_down and not next_claim.claims:
            self.stopping.wait(STORE_RETRY_SECONDS)
        return ended

    def _guarded(
        self,
        claim: queue.Claim,
        lease: Lease,
        call: Callable[[], bool | None],
        *,
        wait_on_store: bool = True,
    ) -> bool | None:
        """``call()`` (an attempt's start, work or ending) with what escapes it handled:
        a blob store that is away puts the job back in the queue (and the worker waits
        before claiming again), a database that is away leaves the job to its lease, a
        bug fails the job with an internal error. False when the job did not end."""
        try:
            return call()
        except BlobStoreUnavailable as exc:
            log.warning("job %s: blob store unavailable, back to the queue: %s", claim.job_id, exc)
            lease.ending()
            endings.release(self.db, claim)
            self._store_down = True
            if wait_on_store:
                self.stopping.wait(STORE_RETRY_SECONDS)
            return False
        except SQLAlchemyError as exc:
            # The database went away mid-job: the lease will lapse and the job resume
            # from its last checkpoint elsewhere (or here).
            log.warning(
                "job %s: database error, leaving it to the lease: %s", claim.job_id, brief(exc)
            )
            return False
        except Exception as exc:  # a bug: make it visible on the job, keep the worker alive
            log.exception("job %s: unexpected error", claim.job_id)
            lease.ending()
            try:
                return endings.fail(self.db, claim, f"internal error: {type(exc).__name__}: {exc}")
            except SQLAlchemyError as db_exc:  # the database is away too: the lease decides
                log.warning("job %s: failure not recorded: %s", claim.job_id, db_exc)
                return False

    def _sweep(self) -> None:
        handled = queue.requeue_expired(self.db, max_attempts=self.settings.max_attempts)
        if handled:
            log.info("requeued or ended %d job(s) whose lease expired", handled)
        stale = WorkerHeartbeat.heartbeat_at < utcnow() - STALE_WORKER_ROWS
        with self.db.read_session() as session:  # a read first, as requeue_expired does
            if session.scalar(select(WorkerHeartbeat.id).where(stale).limit(1)) is None:
                return
        with self.db.session() as session:
            session.execute(delete(WorkerHeartbeat).where(stale))

    def _goodbye(self) -> None:
        try:
            with self.db.session() as session:
                session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == self.worker_id))
        except SQLAlchemyError as exc:
            log.warning("could not remove worker row %s: %s", self.worker_id, exc)
