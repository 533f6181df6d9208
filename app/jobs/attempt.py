"""One attempt at one claimed job: load, train (or resume), report, commit the outcome.

Progress is written at most every :data:`PROGRESS_SECONDS` and a resumable checkpoint
every ``settings.checkpoint_seconds`` (0 = every epoch), both at epoch boundaries and
fenced by the lease. The outcome commits in one fenced transaction: succeeded + model,
failed + reason, cancelled (+ best-so-far model when asked), or released back to the
queue on shutdown. Crash-test points (:mod:`app.jobs.faults`) sit around each commit.

The inputs are read by :mod:`app.jobs.train_inputs` (x memory-mapped: a second job on the
same dataset reads nothing again). A blob that is missing or corrupt fails the job with a
message naming it; a store that is down (:class:`BlobStoreUnavailable`) propagates to the
worker, which puts the job back in the queue and waits before claiming again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.engine import findings
from app.engine.errors import DivergenceError, EngineError
from app.engine.loop import scores_of
from app.engine.model import Model
from app.engine.pack import Member
from app.engine.training import Trainer, TrainingResult
from app.jobs import cache_metrics, endings, faults, paused_trainers, queue
from app.jobs.attempt_base import Attempt, crash_hook
from app.jobs.next_claim import NextClaim
from app.jobs.train_inputs import NO_ROWS, JobInputs, build_trainer, load_inputs
from app.storage.blobs import BlobRef, BlobStore, BlobStoreUnavailable
from app.storage.database import brief
from app.storage.tables import Job, JobStatus

log = logging.getLogger("backprop.worker")

PROGRESS_SECONDS = 0.5  # progress writes per job: at most ~2 a second
# A file store's writes of at most this many bytes (a finished attempt's model and paused
# checkpoint together) are awaited inside the final transaction, overlapping its
# statements; larger ones, and every write to another store, before it: the transaction's
# locks (all of SQLite's writes) are not held over a long write.
OVERLAPPED_WRITE_BYTES = 4 * 1024 * 1024


@functools.cache
def blob_writer() -> ThreadPoolExecutor:
    """Two threads per process that write a finished attempt's blobs (its model, and a
    paused trial's checkpoint) while the main thread prepares the final commit."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="backprop-blob-writer")


class PendingBlob:
    """A blob being written by :func:`blob_writer`, its hash and size known at once (the
    bytes are hashed here, once: the store writes them under that hash without hashing
    them again), so that the final commit's rows can be built meanwhile. ``wait()``
    returns once the blob is in the store (or raises the write's error). Every failed
    write is logged: one nobody waits for (the job was cancelled meanwhile) would
    otherwise fail unseen."""

    def __init__(self, blobs: BlobStore, data: bytes) -> None:
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.size = len(data)
        self._future = blob_writer().submit(blobs.put_bytes, data, self.sha256)
        self._future.add_done_callback(_log_failure)

    def wait(self) -> None:
        self._future.result()  # stored under self.sha256, the hash it was given


def _log_failure(future: Future[BlobRef]) -> None:
    if (error := future.exception()) is not None:
        log.warning("a blob write failed: %s", error)


def model_row(
    model: Model, weights: BlobRef | PendingBlob, metrics: dict[str, Any] | None
) -> endings.TrainedModel:
    """The row to commit for ``model``, whose weights are (being) stored as ``weights``."""
    return endings.TrainedModel(
        config=model.get_config(),
        weights_sha256=weights.sha256,
        weights_size=weights.size,
        metrics=metrics,
    )


def trained_model(
    blobs: BlobStore, model: Model, metrics: dict[str, Any] | None
) -> endings.TrainedModel:
    """Store the model's weights as a blob; the row to commit that references them."""
    return model_row(model, blobs.put_bytes(model.export_npz()), metrics)


class JobRun(Attempt):
    """Run one attempt of a training ``claim``; :meth:`run` returns True when the job
    ended."""

    CANNOT_START = "cannot start training"

    # Per-attempt state, set by _start (class defaults: immutable values only).
    _trainer: Trainer | None = None
    _inputs: JobInputs | None = None
    _first_epoch = True
    _start_samples = 0
    _recorded = 0  # epochs whose history entries are in job_epochs
    _tracked: findings.Findings  # the findings of the history read so far; set by _start
    _epochs = 0
    _last_write = _last_checkpoint = 0.0  # monotonic times of the last writes
    _paused_at: str | None = None  # the checkpoint blob of a run that paused (a rung's end)
    _continued = False  # the run continued from a checkpoint (or a paused trainer)
    # The worker's next claim, taken in this run's final commit (app/jobs/next_claim.py).
    next_claim: NextClaim | None = None

    def _start(self) -> None:
        job_id = self.claim.job_id
        before = cache_metrics.counts(self.blobs)
        inputs = self._retrying("load", lambda: load_inputs(self.db, self.blobs, job_id))
        if inputs.cancel_requested:  # requested since the claim: no batch is trained
            self.pulse.cancel_seen()
        cache_metrics.record(job_id, before, cache_metrics.counts(self.blobs))
        trainer = self._trainer = build_trainer(inputs)
        self._continued = inputs.checkpoint is not None or inputs.paused is not None
        paused_trainers.PAUSED.training_on(trainer.data)
        self._start_samples = trainer.samples_trained
        # Epochs in job_epochs: all the checkpoint's (a paused trainer's: all it trained),
        # unless it carried them (version 1).
        recorded = len(inputs.history) if inputs.paused is None else trainer.epoch
        self._recorded = min(recorded, trainer.epoch)
        self._epochs = inputs.epochs
        self._tracked = findings.Findings()
        self._earlier_seconds = inputs.train_seconds
        # The trainer holds what it needs of the rows: the loaded checkpoint and initial
        # weights would otherwise stay alive for the whole run.
        self._inputs = replace(
            inputs,
            x=NO_ROWS,
            y=NO_ROWS,
            checkpoint=None,
            history=[],
            init_model=None,
            paused=None,
        )

    @property
    def trainer(self) -> Trainer:
        """The attempt's trainer (after ``begin``)."""
        assert self._trainer is not None
        return self._trainer

    def member(self) -> Member:
        """The trainer with this attempt's callbacks, to train alone (``_work``) or with
        others (``app.jobs.pack_run``); after ``begin``."""
        assert self._trainer is not None
        self._last_write = self._last_checkpoint = self._clock
        return Member(self._trainer, self._on_epoch, self._should_stop)

    def _work(self) -> bool:
        member = self.member()
        outcome: TrainingResult | EngineError
        try:
            outcome = member.trainer.run(on_epoch=member.on_epoch, should_stop=member.should_stop)
        except EngineError as exc:
            outcome = exc
        return self.conclude(outcome)

    def conclude(self, outcome: TrainingResult | EngineError) -> bool:
        """Commit what the training ended with (its result, or the error it raised);
        True when the job ended."""
        if isinstance(outcome, TrainingResult):
            return self._conclude(outcome)
        if isinstance(outcome, DivergenceError):
            log.info("job %s: diverged: %s", self.claim.job_id, outcome.message)
            error, progress = outcome.message, self._progress(diverged=True)
        else:
            error, progress = f"training failed: {outcome}", self._progress()
        # A cancel pending at this commit wins: cancelled, the best model kept if asked.
        best = functools.partial(self._best, progress)
        return self._ending(
            "fail", lambda: endings.fail(self.db, self.claim, error, progress, best=best)
        )

    # --- during training
    def _should_stop(self) -> bool:
        return self.stop_now()

    def _findings(self, *, diverged: bool) -> list[dict[str, Any]]:
        """The findings of the whole history so far, kept incrementally: only the epochs
        since the last call are read (O(layers) each, whatever the epochs before)."""
        assert self._trainer is not None
        history = self._trainer.history
        if len(history) < self._tracked.epochs:  # not expected: a history never shrinks
            self._tracked = findings.Findings()
        self._tracked.extend(history[self._tracked.epochs :])
        return self._tracked.current(diverged=diverged)

    def _progress(self, *, diverged: bool = False) -> queue.Progress:
        """What to report: the history entries not yet recorded (with their per-layer
        statistics), the latest metrics without them, and the findings drawn from the
        whole history so far."""
        trainer, inputs = self._trainer, self._inputs
        assert trainer is not None and inputs is not None
        history = trainer.history
        return queue.Progress(
            epoch=trainer.epoch,
            metrics=scores_of(history[-1]) if history else None,
            history=history[self._recorded :],
            samples_trained=inputs.samples_trained + trainer.samples_trained - self._start_samples,
            train_seconds=self.seconds(),
            findings=self._findings(diverged=diverged),
        )

    def _on_epoch(self, entry: dict[str, Any]) -> None:
        trainer = self._trainer
        assert trainer is not None
        if faults.ENABLED:
            faults.crash_at_epoch_end(trainer.epoch, self._first_epoch)
        self._first_epoch = False
        now = time.monotonic()
        every = self.settings.checkpoint_seconds
        try:
            last_epoch = trainer.epoch >= self._epochs  # the final commit follows at once
            if last_epoch:
                self._inject_cancel("last_epoch")
            if not last_epoch and (every == 0 or now - self._last_checkpoint >= every):
                self._write_checkpoint(trainer)
                self._last_checkpoint = self._last_write = now
            elif now - self._last_write >= PROGRESS_SECONDS:
                progress = self._progress()
                saved = queue.save_progress(self.db, self.claim, progress)
                self._saved(saved, progress)
                self._last_write = now
        except (SQLAlchemyError, BlobStoreUnavailable) as exc:  # try again next epoch
            log.warning("job %s: progress not saved: %s", self.claim.job_id, brief(exc))

    def _write_checkpoint(self, trainer: Trainer) -> None:
        faults.crash_point("before_checkpoint")
        checkpoint = self.blobs.put_bytes(trainer.checkpoint())
        progress = self._progress()
        saved = queue.save_progress(
            self.db,
            self.claim,
            progress,
            checkpoint_sha256=checkpoint.sha256,
            before_commit=crash_hook("checkpoint_uncommitted"),
        )
        self._saved(saved, progress)
        if saved:
            faults.crash_point("after_checkpoint")

    def _saved(self, saved: bool, progress: queue.Progress) -> None:
        """After a progress write: its epochs are recorded, or the lease was lost."""
        self.lease_lost |= not saved
        if saved:
            self._recorded = progress.epoch

    # --- the outcome
    def _uses_best_weights(self) -> bool:
        assert self._trainer is not None
        return self._trainer.options.early_stopping is not None

    def _best(self, progress: queue.Progress) -> endings.TrainedModel | None:
        """The best-so-far model, stored (a keep_model cancel keeps it); None at epoch 0."""
        trainer = self._trainer
        assert trainer is not None
        if progress.epoch == 0:
            return None
        best_entry = trainer.best_entry()
        metrics = scores_of(best_entry) if best_entry else progress.metrics
        return trained_model(self.blobs, trainer.best_model(), metrics)

    def _conclude(self, result: TrainingResult) -> bool:
        """Commit the outcome. A cancel request recorded before the final commit wins, even
        one that lands after the last epoch or after the last lease check: each final
        verb reads it under the lock of its own transaction (see endings.finish/release)."""
        job_id = self.claim.job_id
        if self.lease_gone():
            log.warning("job %s: lease lost; leaving the job to its new owner", job_id)
            return False
        if not result.stopped:
            item = self.finishing(result)
            then = self.next_claim.in_transaction if self.next_claim is not None else None
            outcome = self._ending("finish", lambda: endings.finish_item(self.db, item, then=then))
            return self.finished(outcome)
        best = functools.partial(self._best, progress := self._progress())
        lease = self.settings.lease_seconds
        state = self._retrying(
            "lease check", lambda: queue.heartbeat(self.db, self.claim, lease_seconds=lease)
        )
        if not state.ours:
            return False
        if not state.cancel_requested and self.over_time():
            return self._fail_over_time(progress)
        self._inject_cancel("before_release")
        # Back to the queue, or, when a cancel is pending, cancelled (model kept if asked).
        released = self._ending(
            "release",
            lambda: endings.release(self.db, self.claim, progress=progress, best=best),
        )
        log.info("job %s: released (cancel requested: %s)", job_id, state.cancel_requested)
        return released and state.cancel_requested

    def finishing(self, result: TrainingResult) -> endings.Finishing:
        """The final commit of a complete run (``result`` not stopped, the lease not
        known lost), for :func:`endings.finish` or, with a pack's other trials that ended
        at the same epoch, :func:`endings.finish_together`. The model's blob (and a
        paused trial's checkpoint, beside it) is written by the blob writer while this
        thread builds the commit; the commit waits for both to be in the store: inside the
        transaction for a file store's small blobs, overlapping its statements (~1-2 ms
        of a trial's ending), else before it (OVERLAPPED_WRITE_BYTES)."""
        assert self._trainer is not None and not result.stopped
        progress = self._progress()
        # With early stopping the model holds the best epoch's weights: its metrics too.
        best_entry = self._trainer.best_entry() if self._uses_best_weights() else None
        weights = PendingBlob(self.blobs, result.model.export_npz())
        checkpoint = self._paused_checkpoint()  # serialised while the weights go out
        metrics = scores_of(best_entry) if best_entry else progress.metrics
        hook = crash_hook("before_final_commit")

        def stored() -> None:  # the blobs the commit refers to are in the store
            weights.wait()
            if checkpoint is not None:
                checkpoint.wait()

        def before_commit() -> None:
            stored()
            if hook is not None:
                hook()

        written = weights.size + (checkpoint.size if checkpoint is not None else 0)
        if not self.blobs.local or written > OVERLAPPED_WRITE_BYTES:
            stored()
        self._inject_cancel("before_final_commit")
        self._paused_at = checkpoint.sha256 if checkpoint is not None else None
        return endings.Finishing(
            self.claim,
            progress,
            model_row(result.model, weights, metrics),
            best=functools.partial(self._best, progress),
            before_commit=before_commit,
            checkpoint_sha256=checkpoint.sha256 if checkpoint is not None else None,
            continued=self._continued,
        )

    def cancelled(self, item: endings.Finishing) -> bool:
        """End the job of ``item`` (a :meth:`finishing`), whose cancel was requested
        before its final commit, as :func:`endings.finish` does: ``cancelled``, with its
        best model when ``keep_model``."""
        outcome = self._ending(
            "finish",
            lambda: endings.end_cancelled(self.db, item.claim, item.progress, item.best),
        )
        return self.finished(outcome)

    def finished(self, outcome: endings.Outcome) -> bool:
        """After the final commit of :meth:`finishing`: whether the job ended (False when
        the lease was lost and nothing was written)."""
        faults.crash_point("after_final_commit")
        if outcome.status is None:
            log.warning(
                "job %s: lease lost before the final commit; not written", self.claim.job_id
            )
            return False
        log.info("job %s: %s, model %s", self.claim.job_id, outcome.status, outcome.model_id)
        if outcome.status == JobStatus.SUCCEEDED and self._paused_at is not None:
            # Its checkpoint is committed: a promotion claimed here continues this trainer.
            assert self._trainer is not None
            paused_trainers.PAUSED.keep(self.claim.job_id, self._paused_at, self._trainer)
        return True

    def _inject_cancel(self, point: str) -> None:
        """Test hook (faults.CANCEL_POINTS): a client's cancel request lands right here."""
        if not faults.ENABLED or point not in faults.CANCEL_POINTS:
            return
        keep = faults.CANCEL_POINTS[point]
        with self.db.session() as session:
            job = session.get(Job, self.claim.job_id)
            assert job is not None
            queue.request_cancel(session, job, keep_model=keep)

    def _paused_checkpoint(self) -> PendingBlob | None:
        """A checkpoint blob, being written by the blob writer, when the run paused short
        of its options' epochs (a sweep's rung), so that a promotion continues it; None
        when training is complete."""
        trainer = self._trainer
        assert trainer is not None
        progress = trainer.progress
        if progress.early_stopped or progress.epoch >= trainer.options.epochs:
            return None
        return PendingBlob(self.blobs, trainer.checkpoint())

    def _fail_over_time(self, progress: queue.Progress) -> bool:
        """End ``failed`` at the time limit, keeping the best model so far (the time was
        spent; a job without a finished epoch has none)."""
        assert self._trainer is not None
        limit = self.settings.max_job_seconds
        best = None
        if progress.epoch > 0:
            metrics = self._trainer.best_entry() or progress.metrics
            best = trained_model(self.blobs, self._trainer.best_model(), metrics)
        kept = "; the best model so far is kept" if best is not None else ""
        error = (
            f"the job trained {progress.train_seconds:.0f} s, the limit "
            f"BACKPROP_MAX_JOB_SECONDS={limit:g}, after epoch {progress.epoch}{kept}"
        )
        log.info("job %s: %s", self.claim.job_id, error)
        self._inject_cancel("before_time_limit")
        return self._ending(
            "fail", lambda: endings.fail(self.db, self.claim, error, progress, best)
        )
