"""The lease pulse: a worker's background thread that renews the lease of the job it
trains, polls (with a cheap read) for a cancel, and keeps the worker's row in ``workers``
fresh. It is a thread of its own so that a long batch never lets the lease lapse."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings
from app.jobs import queue
from app.storage.database import Database, brief
from app.storage.tables import WorkerHeartbeat, utcnow

log = logging.getLogger("backprop.worker")

CANCEL_POLL_SECONDS = 0.5  # a cancel stops the running job within this (plus one batch)
WORKER_BEAT_SECONDS = 5.0  # how often the ``workers`` row (its current job too) is refreshed
DB_RETRY_SECONDS = 1.0


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
        self._ending = False  # the main thread is writing the held job's ending
        self._lease_until = 0.0  # time.monotonic() by which the held lease surely expired
        self._jobs_done = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        # Set while the held job's view says lost or cancel requested: the training loop
        # checks this flag at every batch (a lock-free read, not the view under the lock).
        self.alarm = threading.Event()

    # --- called by the worker's main thread
    def hold(self, claim: queue.Claim | None, *, finished_one: bool = False) -> None:
        """Start (``claim``: its lease is read at once) or stop (None) renewing a lease."""
        with self._lock:
            self._claim = claim
            self._view = LeaseView()
            self.alarm.clear()
            self._ending = False
            self._lease_until = time.monotonic() + self._lease_seconds
            self._jobs_done += int(finished_one)
        self._wake.set()

    def ending(self) -> None:
        """The main thread is about to write the held job's ending (succeeded, failed,
        cancelled, or back to the queue): from now until the next :meth:`hold`, a lease
        the pulse finds gone was cleared by that write, not taken by another worker, and
        is not reported as lost. The ending's own fenced write tells the worker whether
        it still held the job; the pulse keeps renewing the lease meanwhile."""
        with self._lock:
            self._ending = True

    @property
    def view(self) -> LeaseView:
        with self._lock:
            return self._view

    def lease_deadline(self) -> float:
        """``time.monotonic()`` at which the held lease expires unless renewed (counted
        from just before the last successful renewal, so never late): until then no
        other worker can take the job, and a database write for it is worth retrying."""
        with self._lock:
            return self._lease_until

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
            # Cleared before the claim is read: a hold() from here on wakes the next wait.
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                claim = self._claim
            if claim is not held:  # a new job (its lease was just taken) or none
                held = claim
                next_renew = now + renew_every if claim is not None else math.inf
                # A new job is read at once: a job can come back to the queue with a cancel
                # pending (queue.requeue_expired), which should not train a batch longer.
                next_poll = now if claim is not None else math.inf
            try:
                if now >= next_beat:
                    self._beat(claim)
                    next_beat = now + WORKER_BEAT_SECONDS
                if claim is not None and now >= next_renew:
                    state = queue.heartbeat(self._db, claim, lease_seconds=self._lease_seconds)
                    self._report(claim, state, renewed_at=now)
                    next_renew = now + renew_every
                    next_poll = now + CANCEL_POLL_SECONDS
                elif claim is not None and now >= next_poll:
                    self.poll(claim)
                    next_poll = now + CANCEL_POLL_SECONDS
            except SQLAlchemyError as exc:
                # The database is away (a restart): not a lost lease. Retry soon, not at
                # once; the lease stays ours until it expires, and renewing it after an
                # outage shorter than the lease keeps the job here.
                log.warning("heartbeat failed: %s", brief(exc))
                retry = now + DB_RETRY_SECONDS
                next_beat = retry
                next_renew, next_poll = max(next_renew, retry), max(next_poll, retry)
            self._wake.wait(max(0.0, min(next_beat, next_renew, next_poll) - time.monotonic()))

    def poll(self, claim: queue.Claim) -> None:
        """Read ``claim``'s lease once, without renewing it, and publish what it says (the
        thread does this every :data:`CANCEL_POLL_SECONDS` between renewals)."""
        self._report(claim, queue.read_lease(self._db, claim))

    def _report(
        self, claim: queue.Claim, state: queue.LeaseState, *, renewed_at: float | None = None
    ) -> None:
        """Publish what a renewal (made at ``renewed_at``) or a poll learned, unless the
        worker moved on."""
        with self._lock:
            if self._claim is not claim:
                return
            if self._ending and not state.ours:
                return  # cleared by the worker's own ending, committed a moment ago
            if renewed_at is not None and state.ours:
                self._lease_until = renewed_at + self._lease_seconds
            newly_lost = not state.ours and not self._view.lost
            self._view = LeaseView(lost=not state.ours, cancel_requested=state.cancel_requested)
            if self._view.lost or self._view.cancel_requested:
                self.alarm.set()
        if newly_lost:
            log.warning("lost the lease of job %s", claim.job_id)

    def _beat(self, claim: queue.Claim | None) -> None:
        """One UPDATE of the worker's row, every WORKER_BEAT_SECONDS (not at each job's
        start and end: a sweep's worker ends and starts jobs many times a second, and
        those two write transactions each queued for SQLite's write lock beside the
        jobs' own; nothing reads the row's job more promptly than its freshness); the
        row is inserted when missing (the first beat, or after a stale-row cleanup)."""
        values = {
            "worker_id": self._worker_id,
            "at": utcnow(),
            "job_id": claim.job_id if claim is not None else None,
            "done": self._jobs_done,
        }
        with self._db.session() as session:
            if session.connection().execute(_BEAT, values).rowcount == 0:
                session.add(
                    WorkerHeartbeat(
                        id=self._worker_id,
                        hostname=socket.gethostname()[:255],
                        pid=os.getpid(),
                        heartbeat_at=values["at"],
                        current_job_id=values["job_id"],
                        jobs_done=values["done"],
                    )
                )


_WORKERS = cast(Table, WorkerHeartbeat.__table__)
_BEAT = (
    update(_WORKERS)
    .where(_WORKERS.c.id == bindparam("worker_id"))
    .values(
        heartbeat_at=bindparam("at"),
        current_job_id=bindparam("job_id"),
        jobs_done=bindparam("done"),
    )
)
