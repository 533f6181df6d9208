"""The worker process: claim a queued job, train it, commit the result; repeat.

``Worker(db, settings).run()`` loops until SIGTERM/SIGINT: sweep expired leases back to
the queue (every few seconds), claim the oldest queued job, train it (see
:mod:`app.job_run`), and poll every ``settings.poll_seconds`` when idle. A background
:class:`Pulse` thread renews the job's lease, polls (with a cheap read) for a cancel and
keeps the worker's row in ``workers`` fresh; it is a thread of its own so that a long
batch never lets the lease lapse.

On a stop signal the training stops within one batch and the job goes back to the queue
(``release``); the process exits 0. ``run(burst=True)`` returns once the queue is empty.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from app import queue
from app.config import Settings
from app.db import Database
from app.job_run import JobRun
from app.models import WorkerHeartbeat, utcnow

log = logging.getLogger("backprop.worker")

CANCEL_POLL_SECONDS = 0.5  # a cancel stops the running job within this (plus one batch)
WORKER_BEAT_SECONDS = 5.0  # how often the ``workers`` row is refreshed
STALE_WORKER_ROWS = timedelta(minutes=10)  # rows of workers that died without a goodbye
DB_RETRY_SECONDS = 1.0


def new_worker_id() -> str:
    """``host:pid:random``, unique across restarts and hosts."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeaseView:
    """The pulse's latest news about the current job."""

    lost: bool = False
    cancel_requested: bool = False


class Pulse(threading.Thread):
    """Renews the current job's lease every ``lease/3`` s, reads its cancel flag every
    :data:`CANCEL_POLL_SECONDS` in between, and beats the worker's row."""

    def __init__(self, db: Database, settings: Settings, worker_id: str) -> None:
        super().__init__(name="backprop-pulse", daemon=True)
        self._db = db
        self._lease_seconds = settings.lease_seconds
        self._worker_id = worker_id
        self._lock = threading.Lock()
        self._claim: queue.Claim | None = None
        self._view = LeaseView()
        self._jobs_done = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()

    # --- called by the worker's main thread
    def hold(self, claim: queue.Claim | None, *, finished_one: bool = False) -> None:
        """Start (``claim``) or stop (None) renewing a lease; refreshes the worker row."""
        with self._lock:
            self._claim = claim
            self._view = LeaseView()
            self._jobs_done += int(finished_one)
        self._wake.set()

    @property
    def view(self) -> LeaseView:
        with self._lock:
            return self._view

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self.join(timeout=10)

    # --- the thread
    def run(self) -> None:
        renew_every = self._lease_seconds / 3
        next_beat = 0.0
        next_renew = next_poll = math.inf  # no job held
        held: queue.Claim | None = None
        while not self._stopped.is_set():
            now = time.monotonic()
            with self._lock:
                claim = self._claim
            if claim is not held:  # a new job (its lease was just taken) or none
                held = claim
                next_renew = now + renew_every if claim is not None else math.inf
                next_poll = now + CANCEL_POLL_SECONDS if claim is not None else math.inf
            try:
                if self._wake.is_set() or now >= next_beat:
                    self._wake.clear()
                    self._beat(claim)
                    next_beat = now + WORKER_BEAT_SECONDS
                if claim is not None and now >= next_renew:
                    state = queue.heartbeat(self._db, claim, lease_seconds=self._lease_seconds)
                    self._report(claim, state)
                    next_renew = now + renew_every
                    next_poll = now + CANCEL_POLL_SECONDS
                elif claim is not None and now >= next_poll:
                    self._report(claim, queue.read_lease(self._db, claim))
                    next_poll = now + CANCEL_POLL_SECONDS
            except SQLAlchemyError as exc:  # the database is away: retry soon, not at once
                log.warning("heartbeat failed: %s", exc)
                retry = now + DB_RETRY_SECONDS
                next_beat = retry
                next_renew, next_poll = max(next_renew, retry), max(next_poll, retry)
            self._wake.wait(max(0.0, min(next_beat, next_renew, next_poll) - time.monotonic()))

    def _report(self, claim: queue.Claim, state: queue.LeaseState) -> None:
        """Publish what a renewal or a poll learned, unless the worker moved on."""
        with self._lock:
            if self._claim is not claim:
                return
            newly_lost = not state.ours and not self._view.lost
            self._view = LeaseView(lost=not state.ours, cancel_requested=state.cancel_requested)
        if newly_lost:
            log.warning("lost the lease of job %s", claim.job_id)

    def _beat(self, claim: queue.Claim | None) -> None:
        with self._db.session() as session:
            row = session.get(WorkerHeartbeat, self._worker_id)
            if row is None:
                row = WorkerHeartbeat(
                    id=self._worker_id, hostname=socket.gethostname()[:255], pid=os.getpid()
                )
                session.add(row)
            row.heartbeat_at = utcnow()
            row.current_job_id = claim.job_id if claim is not None else None
            row.jobs_done = self._jobs_done


class Worker:
    """One worker process's loop (see the module docstring)."""

    def __init__(self, db: Database, settings: Settings, worker_id: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.worker_id = worker_id or new_worker_id()
        self.stopping = threading.Event()
        self._sweep_every = max(settings.poll_seconds, min(5.0, settings.lease_seconds / 2))

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
        pulse = Pulse(self.db, self.settings, self.worker_id)
        pulse.start()
        log.info("worker %s started (pid %d)", self.worker_id, os.getpid())
        done = 0
        next_sweep = 0.0
        try:
            while not self.stopping.is_set():
                try:
                    if time.monotonic() >= next_sweep:
                        self._sweep()
                        next_sweep = time.monotonic() + self._sweep_every
                    claim = None
                    if queue.has_queued(self.db):  # a read first: no write lock while idle
                        claim = queue.claim_next(
                            self.db,
                            worker_id=self.worker_id,
                            lease_seconds=self.settings.lease_seconds,
                        )
                except SQLAlchemyError as exc:
                    log.warning("worker %s: database unavailable: %s", self.worker_id, exc)
                    self.stopping.wait(DB_RETRY_SECONDS)
                    continue
                if claim is None:
                    if burst:
                        break
                    self.stopping.wait(self.settings.poll_seconds)
                    continue
                pulse.hold(claim)
                try:
                    done += int(self._run_job(claim, pulse))
                finally:
                    pulse.hold(None, finished_one=True)
        finally:
            pulse.stop()
            self._goodbye()
        log.info("worker %s stopped after %d job(s)", self.worker_id, done)
        return done

    def _run_job(self, claim: queue.Claim, pulse: Pulse) -> bool:
        try:
            return JobRun(self.db, self.settings, claim, pulse, self.stopping).run()
        except SQLAlchemyError as exc:
            # The database went away mid-job: the lease will lapse and the job resume
            # from its last checkpoint elsewhere (or here).
            log.warning("job %s: database error, leaving it to the lease: %s", claim.job_id, exc)
            return False
        except Exception as exc:  # a bug: make it visible on the job, keep the worker alive
            log.exception("job %s: unexpected error", claim.job_id)
            try:
                return queue.fail(self.db, claim, f"internal error: {type(exc).__name__}: {exc}")
            except SQLAlchemyError as db_exc:  # the database is away too: the lease decides
                log.warning("job %s: failure not recorded: %s", claim.job_id, db_exc)
                return False

    def _sweep(self) -> None:
        handled = queue.requeue_expired(self.db, max_attempts=self.settings.max_attempts)
        if handled:
            log.info("requeued or ended %d job(s) whose lease expired", handled)
        with self.db.session() as session:
            session.execute(
                delete(WorkerHeartbeat).where(
                    WorkerHeartbeat.heartbeat_at < utcnow() - STALE_WORKER_ROWS
                )
            )

    def _goodbye(self) -> None:
        try:
            with self.db.session() as session:
                session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == self.worker_id))
        except SQLAlchemyError as exc:
            log.warning("could not remove worker row %s: %s", self.worker_id, exc)
