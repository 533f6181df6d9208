"""What every attempt at a claimed job shares, training (:mod:`app.jobs.attempt`) or a
row-streaming kind (:mod:`app.jobs.batch_attempt`): the database, blob store, settings,
claim, lease pulse and stop signal it runs with; the start (load the inputs, retried
while the database is away; a :class:`StartError` fails the job); the stop and
lease-lost checks; the clock of seconds worked over all attempts; and the retry of a
write that ends the job or hands it back (:mod:`app.jobs.dbretry`).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from app.config import Settings
from app.engine.errors import EngineError
from app.jobs import dbretry, endings, faults, queue
from app.jobs.pulse import Lease
from app.storage.blobs import BlobStore
from app.storage.database import Database

log = logging.getLogger("backprop.worker")

T = TypeVar("T")


class StartError(Exception):
    """The job cannot start (missing dataset...): it fails with this message."""


def crash_hook(point: str) -> Callable[[], None] | None:
    """A ``before_commit`` hook dying at crash-test ``point``; None when faults are off."""
    return (lambda: faults.crash_point(point)) if faults.ENABLED else None


class Attempt(ABC):
    """One attempt at ``claim``. A subclass loads its inputs in :meth:`_start` and does
    the work in :meth:`_work`; :meth:`run` returns True when the job ended."""

    CANNOT_START = "cannot start"  # the failed job's error: "<this>: <why>"

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: Settings,
        claim: queue.Claim,
        pulse: Lease,
        stopping: threading.Event,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self.claim = claim
        self.pulse = pulse
        self.stopping = stopping
        self.lease_lost = False  # a fenced write found the job no longer ours
        self._earlier_seconds = 0.0  # worked by earlier attempts
        self._clock = time.monotonic()  # when this attempt's work began
        self._time_limit_at = float("inf")  # monotonic time of BACKPROP_MAX_JOB_SECONDS

    def run(self) -> bool:
        ended = self.begin()
        return ended if ended is not None else self._work()

    def begin(self) -> bool | None:
        """Load the inputs and start the clocks: None when the work may begin, else (the
        job could not start and is failed) whether that ending was written."""
        job_id = self.claim.job_id
        log.info("job %s: attempt %d started (%s)", job_id, self.claim.attempt, self.claim.kind)
        try:
            self._start()
        except (StartError, EngineError) as exc:
            log.info("job %s: cannot start: %s", job_id, exc)
            error = f"{self.CANNOT_START}: {exc}"
            return self._ending("fail", lambda: endings.fail(self.db, self.claim, error))
        self.restart_clock()
        return None

    def restart_clock(self) -> None:
        """Count the seconds worked (and the time limit) from now: at the start, and when
        a pack's trial that waited for the trials before it begins to train."""
        self._clock = time.monotonic()
        self._time_limit_at = self._clock + self.settings.max_job_seconds - self._earlier_seconds

    @abstractmethod
    def _start(self) -> None:
        """Load the inputs (StartError / EngineError: the job fails) and set
        ``_earlier_seconds``."""

    def work(self) -> bool:
        """The work, after ``begin``; True when the job ended."""
        return self._work()

    @abstractmethod
    def _work(self) -> bool:
        """The attempt's work and its outcome's commit; True when the job ended."""

    # --- shared checks
    def seconds(self) -> float:
        """Seconds worked on the job, earlier attempts included."""
        return self._earlier_seconds + time.monotonic() - self._clock

    def lease_gone(self) -> bool:
        """Whether the job is no longer ours (a fenced write or the pulse found so)."""
        return self.lease_lost or self.pulse.view.lost

    def stop_requested(self) -> bool:
        """A stop signal, a cancel request, or a lost lease: stop at the next boundary."""
        return self.stopping.is_set() or self.lease_gone() or self.pulse.view.cancel_requested

    def stop_now(self) -> bool:
        """:meth:`stop_requested` or :meth:`over_time`, cheaply: the training loop asks
        this at every batch (flags and one clock read; no lock)."""
        return (
            self.pulse.alarm.is_set()
            or self.stopping.is_set()
            or self.lease_lost
            or time.monotonic() >= self._time_limit_at
        )

    def over_time(self) -> bool:
        """Whether the job has worked BACKPROP_MAX_JOB_SECONDS (all attempts together)."""
        return self.seconds() >= self.settings.max_job_seconds

    def _ending(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, the write that ends the attempt (the job's ending, or its release
        back to the queue), retried as :meth:`_retrying` does. The pulse is told first:
        the lease that write clears is not reported as lost by another worker."""
        self.pulse.ending()
        return self._retrying(what, call)

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` (the read that starts an attempt, a write that ends the job or
        hands it back) retried while the database is away and the lease still ours
        (:mod:`app.jobs.dbretry`): a database restart at the start costs no attempt, and
        one during the final commit loses no finished work."""
        return dbretry.until_deadline(
            call, deadline=self.pulse.lease_deadline, what=f"job {self.claim.job_id}: {what}"
        )
