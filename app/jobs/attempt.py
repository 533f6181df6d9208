"""One attempt at one claimed job: load, train (or resume), report, commit the outcome.

Progress is written at most every :data:`PROGRESS_SECONDS` and a resumable checkpoint
every ``settings.checkpoint_seconds`` (0 = every epoch), both at epoch boundaries and
fenced by the lease. The outcome commits in one fenced transaction: succeeded + model,
failed + reason, cancelled (+ best-so-far model when asked), or released back to the
queue on shutdown. Crash-test points (:mod:`app.jobs.faults`) sit around each commit.

Arrays come from the blob store: x memory-mapped read-only from its hash-checked local
file (no copy; a second job on the same dataset reads nothing again), y, the checkpoint
and an initial model read whole. A blob that is missing or corrupt fails the job with a
message naming it; a store that is down (:class:`BlobStoreUnavailable`) propagates to the
worker, which puts the job back in the queue and waits before claiming again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import raiseload

from app.config import Settings
from app.engine import findings
from app.engine.errors import DivergenceError, EngineError
from app.engine.loop import scores_of
from app.engine.model import Model
from app.engine.network import Network
from app.engine.training import Trainer, TrainingOptions, TrainingResult
from app.jobs import cache_metrics, dbretry, endings, faults, queue
from app.jobs.pulse import Pulse
from app.storage import tables
from app.storage.blob_arrays import load_array
from app.storage.blobs import (
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    BlobStoreUnavailable,
    read_verified,
)
from app.storage.database import Database, brief
from app.storage.tables import Dataset, Job

log = logging.getLogger("backprop.worker")

PROGRESS_SECONDS = 0.5  # progress writes per job: at most ~2 a second
FINDINGS_COST_FACTOR = 10.0  # findings recomputed after 10x their last computing time
T = TypeVar("T")
_NO_ROWS = np.empty((0, 0), dtype=np.float32)  # stands in for arrays a running job dropped


class StartError(Exception):
    """The job cannot start (missing dataset...): it fails with this message."""


@dataclass(frozen=True)
class JobInputs:
    """Everything a job trains on, read once at the start of an attempt."""

    x: np.ndarray  # (m, n0) float32
    y: np.ndarray  # (m,) labels or (m, k) targets
    network_config: dict[str, Any]
    options: dict[str, Any]
    epochs: int
    checkpoint: bytes | None
    history: list[dict[str, Any]]  # the checkpoint's epochs' entries (job_epochs rows)
    init_model: tuple[bytes, dict[str, Any]] | None  # (weights npz, engine config)
    samples_trained: int  # by earlier attempts
    train_seconds: float


@dataclass(frozen=True)
class _Refs:
    """What a job's rows say about its inputs (read in one short transaction)."""

    job: Job
    dataset: Dataset
    init_model: tables.Model | None
    history: list[dict[str, Any]]  # epochs 1..checkpoint_epoch


def _read_rows(db: Database, job_id: str) -> _Refs:
    with db.read_session() as session:
        job = session.get(Job, job_id, options=[raiseload(Job.epoch_rows)])
        if job is None:
            raise StartError(f"job {job_id} vanished")
        resumed = job.checkpoint_sha256 is not None
        history = queue.history_until(session, job_id, job.checkpoint_epoch or 0) if resumed else []
        dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
        if dataset is None:
            raise StartError("the job's dataset was deleted")
        init_model = None
        if job.init_model_id is not None:
            init_model = session.get(tables.Model, job.init_model_id)
            if init_model is None:
                raise StartError("the job's initial model was deleted")
        return _Refs(job, dataset, init_model, history)


def load_inputs(db: Database, blobs: BlobStore, job_id: str) -> JobInputs:
    """Read the job, its dataset and its initial model (if any); StartError names a
    missing or corrupt blob."""
    refs = _read_rows(db, job_id)
    job, dataset = refs.job, refs.dataset
    what = "the dataset's features (x)"
    try:
        x = load_array(blobs, dataset.x_sha256)  # (m, n0) float32, memory-mapped read-only
        what = "the dataset's labels (y)"
        y = np.array(load_array(blobs, dataset.y_sha256))  # small: copied, no map kept open
        checkpoint = init_model = None
        if job.checkpoint_sha256 is not None:
            what = "the job's checkpoint"
            checkpoint = read_verified(blobs, job.checkpoint_sha256)
        if refs.init_model is not None:
            what = "the initial model's weights"
            weights = read_verified(blobs, refs.init_model.weights_sha256)
            init_model = (weights, refs.init_model.config)
    except (BlobMissing, BlobCorrupt) as exc:
        raise StartError(f"{what}: {exc.message}") from None
    return JobInputs(
        x=x,
        y=y,
        network_config=job.network_config,
        options=job.options,
        epochs=job.epochs,
        checkpoint=checkpoint,
        history=refs.history,
        init_model=init_model,
        samples_trained=job.samples_trained,
        train_seconds=job.train_seconds,
    )


def build_trainer(inputs: JobInputs) -> Trainer:
    """A fresh Trainer, or one resumed from the job's last checkpoint. It trains up to the
    job's ``epochs`` column, which a sweep's halving trial holds below its options' epochs
    until promoted (app/jobs/sweep_advance.py)."""
    trainer = _new_trainer(inputs)
    if inputs.epochs < trainer.options.epochs:
        trainer.loop.stop_at = inputs.epochs
    return trainer


def _new_trainer(inputs: JobInputs) -> Trainer:
    if inputs.checkpoint is not None:
        return Trainer.resume(inputs.checkpoint, inputs.x, inputs.y, history=inputs.history)
    init_model = None
    if inputs.init_model is not None:
        weights, config = inputs.init_model
        init_model = Model.from_export(weights, config)
    return Trainer(
        Network.from_config(inputs.network_config),
        inputs.x,
        inputs.y,
        TrainingOptions.from_dict(inputs.options),
        init_model=init_model,
    )


def trained_model(
    blobs: BlobStore, model: Model, metrics: dict[str, Any] | None
) -> endings.TrainedModel:
    """Store the model's weights as a blob; the row to commit that references them."""
    weights = blobs.put_bytes(model.export_npz())
    return endings.TrainedModel(
        config=model.get_config(),
        weights_sha256=weights.sha256,
        weights_size=weights.size,
        metrics=metrics,
    )


def _crash_hook(point: str) -> Callable[[], None] | None:
    return (lambda: faults.crash_point(point)) if faults.ENABLED else None


class JobRun:
    """Run one attempt of ``claim``; :meth:`run` returns True when the job ended."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: Settings,
        claim: queue.Claim,
        pulse: Pulse,
        stopping: threading.Event,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        self.claim = claim
        self.pulse = pulse
        self.stopping = stopping
        self.lease_lost = False
        self._first_epoch = True
        self._trainer: Trainer | None = None
        self._inputs: JobInputs | None = None
        self._start_samples = 0
        self._recorded = 0  # epochs whose history entries are in job_epochs
        self._findings_now: list[dict[str, Any]] = []
        self._findings_due = 0.0  # monotonic time after which findings are recomputed
        self._epochs = 0
        self._clock = time.monotonic()
        self._last_write = self._last_checkpoint = self._clock

    def run(self) -> bool:
        job_id = self.claim.job_id
        log.info("job %s: attempt %d started", job_id, self.claim.attempt)
        try:
            before = cache_metrics.counts(self.blobs)
            self._inputs = self._retrying("load", lambda: load_inputs(self.db, self.blobs, job_id))
            cache_metrics.record(job_id, before, cache_metrics.counts(self.blobs))
            trainer = self._trainer = build_trainer(self._inputs)
        except (StartError, EngineError) as exc:
            log.info("job %s: cannot start: %s", job_id, exc)
            self.pulse.ending()
            return endings.fail(self.db, self.claim, f"cannot start training: {exc}")
        self._start_samples = trainer.samples_trained
        # Epochs in job_epochs: all the checkpoint's, unless it carried them (version 1).
        self._recorded = min(len(self._inputs.history), trainer.epoch)
        self._epochs = self._inputs.epochs
        # The trainer holds what it needs of the rows: the loaded checkpoint and initial
        # weights would otherwise stay alive for the whole run.
        self._inputs = replace(
            self._inputs, x=_NO_ROWS, y=_NO_ROWS, checkpoint=None, history=[], init_model=None
        )
        self._clock = self._last_write = self._last_checkpoint = time.monotonic()
        try:
            result = trainer.run(on_epoch=self._on_epoch, should_stop=self._should_stop)
        except DivergenceError as exc:
            log.info("job %s: diverged: %s", job_id, exc.message)
            error, progress = exc.message, self._progress(diverged=True, final=True)
            self.pulse.ending()
            return self._retrying(
                "fail", lambda: endings.fail(self.db, self.claim, error, progress)
            )
        except EngineError as exc:
            error, progress = f"training failed: {exc}", self._progress(final=True)
            self.pulse.ending()
            return self._retrying(
                "fail", lambda: endings.fail(self.db, self.claim, error, progress)
            )
        return self._conclude(result)

    # --- during training
    def _should_stop(self) -> bool:
        view = self.pulse.view
        stop = self.stopping.is_set() or self.lease_lost or view.lost or view.cancel_requested
        return stop or self._over_time()

    def _over_time(self) -> bool:
        """Whether the job has trained BACKPROP_MAX_JOB_SECONDS (all attempts together)."""
        assert self._inputs is not None
        spent = self._inputs.train_seconds + time.monotonic() - self._clock
        return spent >= self.settings.max_job_seconds

    def _findings(self, *, diverged: bool, final: bool) -> list[dict[str, Any]]:
        """The findings of the whole history, fresh for a final commit; otherwise redone once
        FINDINGS_COST_FACTOR times their last cost has passed (their rules read every
        epoch: this keeps them under ~1/10 of a long run's time)."""
        assert self._trainer is not None
        now = time.monotonic()
        if final or diverged or now >= self._findings_due:
            self._findings_now = findings.evaluate(self._trainer.history, diverged=diverged)
            spent = time.monotonic() - now
            self._findings_due = time.monotonic() + FINDINGS_COST_FACTOR * spent
        return self._findings_now

    def _progress(self, *, diverged: bool = False, final: bool = False) -> queue.Progress:
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
            train_seconds=inputs.train_seconds + time.monotonic() - self._clock,
            findings=self._findings(diverged=diverged, final=final),
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
            before_commit=_crash_hook("checkpoint_uncommitted"),
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
    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` (the read that starts an attempt, a write that ends the job or
        hands it back) retried while the database is away and the lease still ours
        (:mod:`app.jobs.dbretry`): a database restart at the start costs no attempt, and
        one during the final commit loses no finished training."""
        return dbretry.until_deadline(
            call, deadline=self.pulse.lease_deadline, what=f"job {self.claim.job_id}: {what}"
        )

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
        if self.lease_lost or self.pulse.view.lost:
            log.warning("job %s: lease lost; leaving the job to its new owner", job_id)
            return False
        best = partial(self._best, progress := self._progress(final=True))
        if not result.stopped:
            assert self._trainer is not None
            # With early stopping the model holds the best epoch's weights: its metrics too.
            best_entry = self._trainer.best_entry() if self._uses_best_weights() else None
            model = trained_model(
                self.blobs,
                result.model,
                scores_of(best_entry) if best_entry else progress.metrics,
            )
            paused_checkpoint = self._paused_checkpoint()
            self._inject_cancel("before_final_commit")
            self.pulse.ending()
            outcome = self._retrying(
                "finish",
                lambda: endings.finish(
                    self.db,
                    self.claim,
                    progress,
                    model,
                    best=best,
                    before_commit=_crash_hook("before_final_commit"),
                    checkpoint_sha256=paused_checkpoint,
                ),
            )
            faults.crash_point("after_final_commit")
            if outcome.status is None:
                log.warning("job %s: lease lost before the final commit; not written", job_id)
                return False
            log.info("job %s: %s, model %s", job_id, outcome.status, outcome.model_id)
            return True
        lease = self.settings.lease_seconds
        state = self._retrying(
            "lease check", lambda: queue.heartbeat(self.db, self.claim, lease_seconds=lease)
        )
        if not state.ours:
            return False
        if not state.cancel_requested and self._over_time():
            return self._fail_over_time(progress)
        self._inject_cancel("before_release")
        # Back to the queue, or, when a cancel is pending, cancelled (model kept if asked).
        self.pulse.ending()
        released = self._retrying(
            "release",
            lambda: endings.release(self.db, self.claim, progress=progress, best=best),
        )
        log.info("job %s: released (cancel requested: %s)", job_id, state.cancel_requested)
        return released and state.cancel_requested

    def _inject_cancel(self, point: str) -> None:
        """Test hook (faults.CANCEL_POINTS): a client's cancel request lands right here."""
        if not faults.ENABLED or point not in faults.CANCEL_POINTS:
            return
        keep = faults.CANCEL_POINTS[point]
        with self.db.session() as session:
            job = session.get(Job, self.claim.job_id)
            assert job is not None
            queue.request_cancel(session, job, keep_model=keep)

    def _paused_checkpoint(self) -> str | None:
        """A checkpoint blob when the run paused short of its options' epochs (a sweep's
        rung), so that a promotion continues it; None when training is complete."""
        trainer = self._trainer
        assert trainer is not None
        progress = trainer.progress
        if progress.early_stopped or progress.epoch >= trainer.options.epochs:
            return None
        return self.blobs.put_bytes(trainer.checkpoint()).sha256

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
        self.pulse.ending()
        return self._retrying(
            "fail", lambda: endings.fail(self.db, self.claim, error, progress, best)
        )
