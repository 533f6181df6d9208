"""The lease pulse: a worker's background thread that renews the leases of the jobs it
trains (one, or the trials of a pack), polls (with a cheap read) for a cancel, and keeps
the worker's row in ``workers`` fresh. It is a thread of its own so that a long batch
never lets a lease lapse."""

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
    """The pulse's latest news about a held job."""

    lost: bool = False
    cancel_requested: bool = False


class Lease:
    """The pulse's watch over one held job, what an attempt reads of it (``view``,
    ``alarm``, ``lease_deadline``) and tells it (``ending``). Its state is guarded by the
    pulse's lock."""

    def __init__(self, claim: queue.Claim, lock: threading.Lock, lease_seconds: float) -> None:
        self.claim = claim
        self._lock = lock
        self._view = LeaseView()
        self._ending = False  # the main thread is writing this job's ending
        # By which it surely expired: counted from the claim's lease when known.
        start = claim.leased_at if claim.leased_at is not None else time.monotonic()
        self._lease_until = start + lease_seconds
        # Set while the view says lost or cancel requested: the training loop checks this
        # flag at every batch (a lock-free read, not the view under the lock).
        self.alarm = threading.Event()
        if claim.cancel_requested:  # read by the claim itself: no batch trains before it
            self._view = LeaseView(cancel_requested=True)
            self.alarm.set()

    @property
    def view(self) -> LeaseView:
        with self._lock:
            return self._view

    def cancel_seen(self) -> None:
        """The attempt read the job's row and found its cancel requested (between the
        claim and the start): the alarm goes up now, not at the pulse's next read."""
        with self._lock:
            self._view = LeaseView(lost=self._view.lost, cancel_requested=True)
        self.alarm.set()

    def ending(self) -> None:
        """The main thread is about to write this job's ending (succeeded, failed,
        cancelled, or back to the queue): from now on, a lease the pulse finds gone was
        cleared by that write, not taken by another worker, and is not reported as lost.
        The ending's own fenced write tells the worker whether it still held the job; the
        pulse keeps renewing the lease meanwhile."""
        with self._lock:
            self._ending = True

    def lease_deadline(self) -> float:
        """``time.monotonic()`` at which the lease expires unless renewed (counted from
        just before the last successful renewal, so never late): until then no other
        worker can take the job, and a database write for it is worth retrying."""
        with self._lock:
            return self._lease_until


class Pulse(threading.Thread):
    """Renews the held jobs' leases every ``lease/3`` s, reads their cancel flags every
    :data:`CANCEL_POLL_SECONDS` in between, and beats the worker's row. A worker holds
    one job, or the trials of a pack (``hold_all``)."""

    def __init__(self, db: Database, settings: Settings, worker_id: str) -> None:
        super().__init__(name="backprop-pulse", daemon=True)
        self._db = db
        self._lease_seconds = settings.lease_seconds
        self._worker_id = worker_id
        self._lock = threading.Lock()
        self._leases: list[Lease] = []
        self._jobs_done = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()

    # --- called by the worker's main thread
    def hold_all(self, claims: list[queue.Claim], *, finished: int = 0) -> list[Lease]:
        """Renew these jobs' leases (read at once) instead of the ones held so far; count
        ``finished`` jobs done. Returns their leases, in order."""
        with self._lock:
            self._leases = [Lease(claim, self._lock, self._lease_seconds) for claim in claims]
            self._jobs_done += finished
            leases = list(self._leases)
        self._wake.set()
        return leases

    def drop(self, lease: Lease) -> None:
        """Stop renewing and polling one held lease: its job ended, or was left to its
        lease (a pack's other trials go on)."""
        with self._lock:
            self._leases = [held for held in self._leases if held is not lease]

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self.join(timeout=10)

    # --- the thread
    def run(self) -> None:
        renew_every = self._lease_seconds / 3
        next_beat = 0.0
        next_renew = next_poll = math.inf  # no job held
        held: list[Lease] = []
        while not self._stopped.is_set():
            # Cleared before the leases are read: a hold from here on wakes the next wait.
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                leases = self._leases
            if leases is not held:  # new jobs (their leases were just taken), fewer, none
                if not set(leases) <= set(held):
                    next_renew = now + renew_every
                    # New jobs are first read a poll from now: their claims read their
                    # cancel flags (a job back in the queue with a cancel pending,
                    # queue.requeue_expired, holds an alarm from the start), and every
                    # attempt reads its job's flag again as it starts (a cancel since the
                    # claim), so a read at once learnt nothing new, and cost a sweep's
                    # short trials a read session each beside their start (§9).
                    next_poll = now + CANCEL_POLL_SECONDS
                if not leases:
                    next_renew = next_poll = math.inf
                held = leases
            try:
                if now >= next_beat:
                    self._beat(leases[0].claim if leases else None)
                    next_beat = now + WORKER_BEAT_SECONDS
                if leases and now >= next_renew:
                    for lease in leases:
                        if self._holds(lease):  # not dropped meanwhile: renewed
                            lease_state = queue.heartbeat(
                                self._db, lease.claim, lease_seconds=self._lease_seconds
                            )
                            self._report(lease, lease_state, renewed_at=now)
                    next_renew = now + renew_every
                    next_poll = now + CANCEL_POLL_SECONDS
                elif leases and now >= next_poll:
                    for lease in leases:
                        if self._holds(lease):
                            self.poll(lease)
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

    def poll(self, lease: Lease) -> None:
        """Read a held job's lease once, without renewing it, and publish what it says
        (the thread does this every :data:`CANCEL_POLL_SECONDS` between renewals)."""
        self._report(lease, queue.read_lease(self._db, lease.claim))

    def _holds(self, lease: Lease) -> bool:
        with self._lock:
            return lease in self._leases

    def _report(
        self, lease: Lease, state: queue.LeaseState, *, renewed_at: float | None = None
    ) -> None:
        """Publish what a renewal (made at ``renewed_at``) or a poll learned, unless the
        worker moved on."""
        with self._lock:
            if lease not in self._leases:
                return
            if lease._ending and not state.ours:
                return  # cleared by the worker's own ending, committed a moment ago
            if renewed_at is not None and state.ours:
                lease._lease_until = renewed_at + self._lease_seconds
            newly_lost = not state.ours and not lease._view.lost
            lease._view = LeaseView(lost=not state.ours, cancel_requested=state.cancel_requested)
            if lease._view.lost or lease._view.cancel_requested:
                lease.alarm.set()
        if newly_lost:
            log.warning("lost the lease of job %s", lease.claim.job_id)

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
