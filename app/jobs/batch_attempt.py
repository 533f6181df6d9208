"""One attempt at a prediction run or a worker-side evaluation: stream the dataset's rows
through the model in chunks, report ``rows_done``, commit the outcome.

The dataset's x is memory-mapped (see :mod:`app.jobs.attempt`), so memory holds one
chunk of rows and its outputs, whatever the dataset's size. A prediction run writes its
outputs to a ``.npy`` file and stores the rows written so far as a blob piece every
``settings.checkpoint_seconds``: a later attempt (after a SIGKILL, or a release on
shutdown) rebuilds the file from the pieces and continues after them, so its result is
the same bytes as an uninterrupted run's. An evaluation keeps the outputs (n, k) it
scores (the ROC AUC needs them all) and, interrupted, starts over. Both stop within one
chunk on a cancel or a stop signal, like training (the same pulse, lease and verbs).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.engine.errors import DataError, EngineError
from app.engine.model import Model
from app.jobs import batch_queue, endings, faults, queue
from app.jobs.attempt import StartError
from app.jobs.batch_output import OutputFile
from app.jobs.pulse import Pulse
from app.services.errors import ServiceError
from app.services.evaluations import BLOCK_ROWS, forward_in_blocks, score
from app.storage import tables
from app.storage.blob_arrays import load_array
from app.storage.blobs import BlobCorrupt, BlobMissing, BlobStore, read_verified
from app.storage.database import Database
from app.storage.tables import Dataset, Job, JobKind, JobStatus

log = logging.getLogger("backprop.worker")

PROGRESS_SECONDS = 0.5  # rows_done writes: at most ~2 a second
CHUNK_ALIGN = 64  # rows: a multiple of the row blocking of BLAS kernels (8, 16 or 32)


@dataclass(frozen=True)
class BatchInputs:
    """What a run reads at the start of an attempt."""

    model: Model
    x: np.ndarray  # (n, input_size) float32, memory-mapped read-only
    y: np.ndarray | None  # an evaluation's labels (n,) or targets (n, t)
    chunk_rows: int
    parts: list[dict[str, Any]]  # a prediction run's stored output pieces
    seconds: float  # worked by earlier attempts


def chunk_rows(model: Model, settings: Settings) -> int:
    """Rows per chunk: BACKPROP_PREDICTION_CHUNK_ROWS, fewer when the activations of that
    many rows would pass BACKPROP_MAX_ACTIVATION_BYTES, rounded down to a multiple of
    :data:`CHUNK_ALIGN` rows when there are that many.

    Why the rounding: a BLAS matrix product computes a row's outputs with one of several
    kernels depending on where the row falls in its blocks of rows, and the kernels may
    round differently in the last bit. Chunks that start on a block boundary give each
    row the kernel it gets when POST predict sends all the rows at once, so a run's
    outputs equal predict's, bit for bit."""
    rows = min(settings.prediction_chunk_rows, model.block_rows(settings.max_activation_bytes))
    return rows - rows % CHUNK_ALIGN if rows >= CHUNK_ALIGN else rows


def load_batch_inputs(
    db: Database, blobs: BlobStore, settings: Settings, job_id: str
) -> BatchInputs:
    """The job's model and dataset; StartError names what is missing or corrupt."""
    with db.read_session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise StartError(f"job {job_id} vanished")
        row = session.get(tables.Model, job.model_id) if job.model_id else None
        if row is None:
            raise StartError("the model was deleted")
        dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
        if dataset is None:
            raise StartError("the dataset was deleted")
    what = "the model's weights"
    try:
        model = Model.from_export(read_verified(blobs, row.weights_sha256), row.config)
        what = "the dataset's features (x)"
        x = load_array(blobs, dataset.x_sha256)
        y = None
        if job.kind == JobKind.EVALUATE:
            what = "the dataset's labels (y)"
            y = np.array(load_array(blobs, dataset.y_sha256))
    except (BlobMissing, BlobCorrupt) as exc:
        raise StartError(f"{what}: {exc.message}") from None
    if x.ndim != 2 or x.shape[1] != model.network.input_size:
        raise StartError(
            f"the dataset has {x.shape[1:]} features but the model takes {model.network.input_size}"
        )
    return BatchInputs(
        model=model,
        x=x,
        y=y,
        chunk_rows=chunk_rows(model, settings),
        parts=list(job.output_parts or []),
        seconds=job.train_seconds,
    )


def _overflow_row(outputs: np.ndarray) -> int | None:
    """The first row of ``outputs`` (k, width) holding NaN or inf, or None."""
    if np.isfinite(outputs).all():
        return None
    return int(np.argwhere(~np.isfinite(outputs))[0][0])


class BatchRun:
    """Run one attempt of a prediction run or evaluation ``claim``; :meth:`run` returns
    True when the job ended."""

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
        self.rows_done = 0
        self._earlier_seconds = 0.0
        self._clock = self._last_write = self._last_piece = time.monotonic()

    def run(self) -> bool:
        job_id = self.claim.job_id
        log.info("job %s (%s): attempt %d started", job_id, self.claim.kind, self.claim.attempt)
        try:
            inputs = load_batch_inputs(self.db, self.blobs, self.settings, job_id)
        except (StartError, EngineError) as exc:
            log.info("job %s: cannot start: %s", job_id, exc)
            return endings.fail(self.db, self.claim, f"cannot start: {exc}")
        self._earlier_seconds = inputs.seconds
        self._clock = self._last_write = self._last_piece = time.monotonic()
        if self.claim.kind == JobKind.EVALUATE:
            return self._evaluate(inputs)
        with tempfile.TemporaryDirectory(prefix="backprop-predict-") as folder:
            return self._predict(inputs, Path(folder))

    # --- progress
    def _seconds(self) -> float:
        return self._earlier_seconds + time.monotonic() - self._clock

    def _should_stop(self) -> bool:
        view = self.pulse.view
        stop = self.stopping.is_set() or self.lease_lost or view.lost or view.cancel_requested
        return stop or self._over_time()

    def _over_time(self) -> bool:
        """Whether the run has worked BACKPROP_MAX_JOB_SECONDS (all attempts together)."""
        return self._seconds() >= self.settings.max_job_seconds

    def _report(self) -> None:
        now = time.monotonic()
        if now - self._last_write >= PROGRESS_SECONDS:
            saved = batch_queue.save_rows(
                self.db, self.claim, rows_done=self.rows_done, seconds=self._seconds()
            )
            self.lease_lost |= not saved
            self._last_write = now

    def _save_piece(self, out: OutputFile, parts: list[dict[str, Any]]) -> None:
        """Store the rows since the last piece and commit them with the progress."""
        faults.crash_point("before_checkpoint")
        piece = out.store_piece(self.blobs)
        if piece is None:
            return
        parts.append(piece)
        hook = (lambda: faults.crash_point("checkpoint_uncommitted")) if faults.ENABLED else None
        saved = batch_queue.save_rows(
            self.db,
            self.claim,
            rows_done=self.rows_done,
            seconds=self._seconds(),
            output_parts=parts,
            before_commit=hook,
        )
        self.lease_lost |= not saved
        self._last_piece = self._last_write = time.monotonic()
        if saved:
            faults.crash_point("after_checkpoint")

    # --- the two kinds
    def _predict(self, inputs: BatchInputs, folder: Path) -> bool:
        model, x = inputs.model, inputs.x
        dtype = model.network.dtype
        rows = x.shape[0]
        out = OutputFile(folder, rows=rows, width=model.network.output_size, dtype=dtype)
        parts = inputs.parts
        try:
            try:
                self.rows_done = out.restore(self.blobs, parts)
            except (BlobMissing, BlobCorrupt) as exc:
                log.warning("job %s: outputs unusable, starting over: %s", self.claim.job_id, exc)
                out.start_over()
                parts, self.rows_done = [], 0
            every = self.settings.checkpoint_seconds
            for start in range(self.rows_done, rows, inputs.chunk_rows):
                if self._should_stop():
                    return self._stopped(out, parts)
                block = np.ascontiguousarray(x[start : start + inputs.chunk_rows], dtype=dtype)
                with np.errstate(all="ignore"):
                    outputs = model.predict_checked(block)
                bad = _overflow_row(outputs)
                if bad is not None:
                    error = f"the model's outputs overflow for row {start + bad} of the dataset"
                    return endings.fail(self.db, self.claim, error)
                out.append(outputs)
                self.rows_done = out.rows
                if self.rows_done < rows and time.monotonic() - self._last_piece >= every:
                    self._save_piece(out, parts)
                else:
                    self._report()
            if self.lease_lost or self.pulse.view.lost:
                return False
            result = out.store(self.blobs)
        finally:
            out.close()
        hook = (lambda: faults.crash_point("before_final_commit")) if faults.ENABLED else None
        done = batch_queue.finish_prediction(
            self.db,
            self.claim,
            rows_done=self.rows_done,
            seconds=self._seconds(),
            result=result,
            max_owner_bytes=self.settings.max_owner_bytes,
            before_commit=hook,
        )
        log.info("job %s: prediction run ended (%d rows)", self.claim.job_id, rows)
        return done

    def _evaluate(self, inputs: BatchInputs) -> bool:
        model, x, y = inputs.model, inputs.x, inputs.y
        assert y is not None
        rows = x.shape[0]
        outputs = np.empty((rows, model.network.output_size), dtype=model.network.dtype)
        # Whole blocks of the synchronous evaluation's forward pass: the same row blocks,
        # so the same outputs and scores to the last bit.
        chunk = max(1, inputs.chunk_rows // BLOCK_ROWS) * BLOCK_ROWS
        try:
            for start in range(0, rows, chunk):
                if self._should_stop():
                    return self._stopped(None, [])
                stop = min(rows, start + chunk)
                outputs[start:stop] = forward_in_blocks(model, x[start:stop], first_row=start)
                self.rows_done = stop
                self._report()
            metrics = score(model, outputs, y)
        except ServiceError as exc:
            return endings.fail(self.db, self.claim, exc.msg)
        except DataError as exc:
            return endings.fail(self.db, self.claim, exc.message)
        if self.lease_lost or self.pulse.view.lost:
            return False
        log.info("job %s: evaluation succeeded (%d rows)", self.claim.job_id, rows)
        return batch_queue.finish_evaluation(
            self.db, self.claim, rows_done=rows, seconds=self._seconds(), metrics=metrics
        )

    # --- stopped before the end
    def _fail_over_time(self) -> bool:
        """End ``failed`` at BACKPROP_MAX_JOB_SECONDS. A prediction run's stored pieces are
        dropped with it (no partial download; gc takes their blobs), like a cancel's."""
        limit = self.settings.max_job_seconds
        error = (
            f"the run worked {self._seconds():.1f} s, the limit BACKPROP_MAX_JOB_SECONDS="
            f"{limit:g}, after {self.rows_done} of its rows"
        )
        log.info("job %s: %s", self.claim.job_id, error)
        return batch_queue.end_batch(
            self.db,
            self.claim,
            JobStatus.FAILED,
            rows_done=self.rows_done,
            seconds=self._seconds(),
            error=error,
        )

    def _stopped(self, out: OutputFile | None, parts: list[dict[str, Any]]) -> bool:
        """Cancelled (ends ``cancelled``), over its time limit (ends ``failed``), or the
        worker stops (the pieces written so far are stored, the job goes back to the
        queue), or the lease is gone (nothing)."""
        job_id = self.claim.job_id
        if self.lease_lost or self.pulse.view.lost:
            log.warning("job %s: lease lost; leaving the job to its new owner", job_id)
            return False
        state = queue.heartbeat(self.db, self.claim, lease_seconds=self.settings.lease_seconds)
        if not state.ours:
            return False
        if state.cancel_requested:
            log.info("job %s: cancelled after %d rows", job_id, self.rows_done)
            return batch_queue.end_batch(
                self.db,
                self.claim,
                JobStatus.CANCELLED,
                rows_done=self.rows_done,
                seconds=self._seconds(),
            )
        if self._over_time():
            return self._fail_over_time()
        if out is not None:
            self._save_piece(out, parts)
        log.info("job %s: released back to the queue after %d rows", job_id, self.rows_done)
        endings.release(self.db, self.claim)
        return False
