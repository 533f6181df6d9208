"""One attempt at a prediction run or a worker-side evaluation: stream the dataset's rows
through the model in chunks, report ``rows_done``, commit the outcome.

The dataset's x is memory-mapped (see :mod:`app.jobs.attempt`), so memory holds one
chunk of rows and its outputs, whatever the dataset's size. Both kinds write the outputs
(n, k) to a ``.npy`` file and store the rows written so far as a blob piece every
``settings.checkpoint_seconds``: a later attempt (after a SIGKILL, or a release on
shutdown) rebuilds the file from the pieces and continues after them, so its outputs are
the same bytes as an uninterrupted run's. A prediction run stores the file; an
evaluation reads it back and scores it (the ROC AUC needs every row's outputs, and
scoring them at once keeps the synchronous evaluation's sums: the same metrics to the
last bit, resumed or not). Both stop within one chunk on a cancel or a stop signal, like
training (the same pulse, lease and verbs).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.engine import scoring
from app.engine.errors import DataError
from app.engine.model import Model
from app.jobs import batch_queue, endings, faults, queue
from app.jobs.attempt_base import Attempt, StartError, crash_hook
from app.jobs.batch_output import OutputFile
from app.jobs.input_check import InputCheck
from app.storage import tables
from app.storage.blob_arrays import load_array, load_array_checked_later
from app.storage.blobs import BlobCorrupt, BlobMissing, BlobRef, BlobStore, read_verified
from app.storage.database import Database
from app.storage.tables import Dataset, Job, JobKind, JobStatus

log = logging.getLogger("backprop.worker")

PROGRESS_SECONDS = 0.5  # rows_done writes: at most ~2 a second
X_WHAT = "the dataset's features (x)"
CHUNK_ALIGN = 64  # rows: a multiple of the row blocking of BLAS kernels (8, 16 or 32)


@dataclass(frozen=True)
class BatchInputs:
    """What a run reads at the start of an attempt."""

    model: Model
    x: np.ndarray  # (n, input_size) float32, memory-mapped read-only
    x_check: Callable[[], None]  # x's hash check, not yet done (see app.jobs.input_check)
    y: np.ndarray | None  # an evaluation's labels (n,) or targets (n, t)
    chunk_rows: int
    parts: list[dict[str, Any]]  # the output pieces stored by earlier attempts
    seconds: float  # worked by earlier attempts
    cancel_requested: bool = False  # already, when the job's row was read


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
        what = X_WHAT
        x, x_check = load_array_checked_later(blobs, dataset.x_sha256)
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
        x_check=x_check,
        y=y,
        chunk_rows=chunk_rows(model, settings),
        parts=list(job.output_parts or []),
        seconds=job.train_seconds,
        cancel_requested=bool(job.cancel_requested),
    )


class BatchRun(Attempt):
    """Run one attempt of a prediction run or evaluation ``claim``; :meth:`run` returns
    True when the job ended."""

    _inputs: BatchInputs | None = None  # set by _start
    _x_check: InputCheck  # set by _work
    rows_done = 0
    _last_write = _last_piece = 0.0  # monotonic times of the last writes

    def _start(self) -> None:
        job_id = self.claim.job_id
        self._inputs = self._retrying(
            "load", lambda: load_batch_inputs(self.db, self.blobs, self.settings, job_id)
        )
        self._earlier_seconds = self._inputs.seconds
        if self._inputs.cancel_requested:  # requested since the claim: no chunk is scored
            self.pulse.cancel_seen()

    def _work(self) -> bool:
        inputs = self._inputs
        assert inputs is not None
        self._last_write = self._last_piece = self._clock
        self._x_check = InputCheck(inputs.x_check, X_WHAT)
        try:
            with tempfile.TemporaryDirectory(prefix=f"backprop-{self.claim.kind}-") as folder:
                return self._stream(inputs, Path(folder))
        finally:
            self._x_check.join()

    # --- progress
    def _report(self) -> None:
        now = time.monotonic()
        if now - self._last_write >= PROGRESS_SECONDS:
            saved = batch_queue.save_rows(
                self.db, self.claim, rows_done=self.rows_done, seconds=self.seconds()
            )
            self.lease_lost |= not saved
            self._last_write = now

    def _save_piece(self, out: OutputFile, parts: list[dict[str, Any]]) -> None:
        """Store the rows since the last piece and commit them with the progress (once x
        checked out: StartError otherwise)."""
        faults.crash_point("before_checkpoint")
        self._x_check.wait()
        piece = out.store_piece(self.blobs)
        if piece is None:
            return
        parts.append(piece)
        saved = batch_queue.save_rows(
            self.db,
            self.claim,
            rows_done=self.rows_done,
            seconds=self.seconds(),
            output_parts=parts,
            before_commit=crash_hook("checkpoint_uncommitted"),
        )
        self.lease_lost |= not saved
        self._last_piece = self._last_write = time.monotonic()
        if saved:
            faults.crash_point("after_checkpoint")

    # --- the rows, then the two kinds' ends
    def _stream(self, inputs: BatchInputs, folder: Path) -> bool:
        """Write the outputs (rows, output_size) of every row not in the stored pieces to
        ``folder``'s OutputFile, storing a piece every ``checkpoint_seconds``; then end
        the job as its kind does."""
        model, x = inputs.model, inputs.x
        rows = x.shape[0]
        out = OutputFile(
            folder, rows=rows, width=model.network.output_size, dtype=model.network.dtype
        )
        parts = inputs.parts
        # A prediction run's chunks are single blocks starting on CHUNK_ALIGN rows; an
        # evaluation's are whole blocks of the synchronous evaluation's forward pass: the
        # same row blocks, so the same outputs (and scores) to the last bit. A resumed
        # attempt starts after its pieces, which end on a chunk, so on the same grid.
        if self.claim.kind == JobKind.EVALUATE:
            block = scoring.BLOCK_ROWS
            chunk = max(1, inputs.chunk_rows // block) * block
        else:
            block = chunk = inputs.chunk_rows
        try:
            try:
                self.rows_done = out.restore(self.blobs, parts)
                if parts:
                    log.info("job %s: resumed after %d rows", self.claim.job_id, self.rows_done)
            except (BlobMissing, BlobCorrupt) as exc:
                log.warning("job %s: outputs unusable, starting over: %s", self.claim.job_id, exc)
                out.start_over()
                parts, self.rows_done = [], 0
            every = self.settings.checkpoint_seconds
            for start in range(self.rows_done, rows, chunk):
                if self.stop_requested() or self.over_time():
                    return self._stopped(out, parts)
                stop = min(rows, start + chunk)
                out.append(scoring.forward_in_blocks(model, x[start:stop], block, first_row=start))
                self.rows_done = out.rows
                if self.rows_done < rows and time.monotonic() - self._last_piece >= every:
                    self._save_piece(out, parts)
                else:
                    self._report()
            if self.lease_gone():
                return False
            self._x_check.wait()
            if self.claim.kind == JobKind.EVALUATE:
                return self._finish_evaluation(inputs, out.read())
            return self._finish_prediction(out.store(self.blobs))
        except scoring.NonFiniteOutputs as exc:  # outputs that overflow: unless x is corrupt
            return self._fail(self._x_problem() or exc.message)
        except StartError as exc:  # x is corrupt or gone (the check's wait)
            return self._fail(self._cannot_continue(exc))
        finally:
            out.close()

    def _finish_prediction(self, result: BlobRef) -> bool:
        seconds = self.seconds()
        status = self._ending(
            "finish",
            lambda: batch_queue.finish_prediction(
                self.db,
                self.claim,
                rows_done=self.rows_done,
                seconds=seconds,
                result=result,
                max_owner_bytes=self.settings.max_owner_bytes,
                before_commit=crash_hook("before_final_commit"),
            ),
        )
        log.info("job %s: prediction run %s (%d rows)", self.claim.job_id, status, self.rows_done)
        return status is not None

    def _finish_evaluation(self, inputs: BatchInputs, outputs: np.ndarray) -> bool:
        """Score ``outputs`` (rows, output_size) against the labels and store the metrics
        with the job's success."""
        assert inputs.y is not None
        try:
            metrics = scoring.score(inputs.model, outputs, inputs.y)
        except DataError as exc:
            return self._fail(exc.message)
        seconds = self.seconds()
        status = self._ending(
            "finish",
            lambda: batch_queue.finish_evaluation(
                self.db,
                self.claim,
                rows_done=self.rows_done,
                seconds=seconds,
                metrics=metrics,
                before_commit=crash_hook("before_final_commit"),
            ),
        )
        log.info("job %s: evaluation %s (%d rows)", self.claim.job_id, status, self.rows_done)
        return status is not None

    # --- stopped before the end
    def _fail_over_time(self) -> bool:
        """End ``failed`` at BACKPROP_MAX_JOB_SECONDS. A prediction run's stored pieces are
        dropped with it (no partial download; gc takes their blobs), like a cancel's."""
        limit = self.settings.max_job_seconds
        rows_done, seconds = self.rows_done, self.seconds()
        error = (
            f"the run worked {seconds:.1f} s, the limit BACKPROP_MAX_JOB_SECONDS="
            f"{limit:g}, after {rows_done} of its rows"
        )
        log.info("job %s: %s", self.claim.job_id, error)
        return self._ending(
            "fail",
            lambda: batch_queue.end_batch(
                self.db,
                self.claim,
                JobStatus.FAILED,
                rows_done=rows_done,
                seconds=seconds,
                error=error,
            ),
        )

    def _stopped(self, out: OutputFile, parts: list[dict[str, Any]]) -> bool:
        """Cancelled (ends ``cancelled``), over its time limit (ends ``failed``), or the
        worker stops (the pieces written so far are stored, the job goes back to the
        queue), or the lease is gone (nothing)."""
        job_id = self.claim.job_id
        if self.lease_gone():
            log.warning("job %s: lease lost; leaving the job to its new owner", job_id)
            return False
        state = queue.heartbeat(self.db, self.claim, lease_seconds=self.settings.lease_seconds)
        if not state.ours:
            return False
        if state.cancel_requested:
            log.info("job %s: cancelled after %d rows", job_id, self.rows_done)
            rows_done, seconds = self.rows_done, self.seconds()
            return self._ending(
                "cancel",
                lambda: batch_queue.end_batch(
                    self.db, self.claim, JobStatus.CANCELLED, rows_done=rows_done, seconds=seconds
                ),
            )
        if self.over_time():
            return self._fail_over_time()
        self._save_piece(out, parts)
        log.info("job %s: released back to the queue after %d rows", job_id, self.rows_done)
        self._ending("release", lambda: endings.release(self.db, self.claim))
        return False

    def _x_problem(self) -> str | None:
        """Once x's hash check ended: why x cannot be used, or None when it checked out."""
        try:
            self._x_check.wait()
        except StartError as exc:
            return self._cannot_continue(exc)
        return None

    def _cannot_continue(self, exc: StartError) -> str:
        log.info("job %s: cannot continue: %s", self.claim.job_id, exc)
        return f"cannot start: {exc}"

    def _fail(self, error: str) -> bool:
        return self._ending("fail", lambda: endings.fail(self.db, self.claim, error))
