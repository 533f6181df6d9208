"""What a training attempt reads at its start: the job's rows (dataset, initial model,
the history of a checkpoint) in one short transaction, then its arrays from the blob
store (x memory-mapped read-only from its hash-checked local file, y, the checkpoint and
an initial model read whole), and the Trainer built from them, fresh or resumed. The
last dataset's arrays and the data prepared from them are kept for the worker's next
job (:mod:`app.jobs.data_memo`): a sweep's trials load and prepare their dataset once.

A blob that is missing or corrupt is a :class:`StartError` naming it (the job fails); a
store that is down (:class:`BlobStoreUnavailable`) propagates to the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import bindparam, select

from app.engine.model import Model
from app.engine.network import Network
from app.engine.training import Trainer, TrainingOptions
from app.jobs import data_memo, paused_trainers, queue
from app.jobs.attempt_base import StartError
from app.storage import tables
from app.storage.blob_arrays import load_array
from app.storage.blobs import BlobCorrupt, BlobMissing, BlobStore, read_verified
from app.storage.database import Database
from app.storage.tables import Dataset, Job, core_table

NO_ROWS = np.empty((0, 0), dtype=np.float32)  # stands in for arrays an attempt does not hold


@dataclass(frozen=True)
class JobInputs:
    """Everything a job trains on, read once at the start of an attempt."""

    x: np.ndarray  # (m, n0) float32
    y: np.ndarray  # (m,) labels or (m, k) targets
    x_sha256: str  # the blobs of x and y (which data_memo keeps the prepared data by)
    y_sha256: str
    network_config: dict[str, Any]
    options: dict[str, Any]
    epochs: int
    checkpoint: bytes | None
    history: list[dict[str, Any]]  # the checkpoint's epochs' entries (job_epochs rows)
    init_model: tuple[bytes, dict[str, Any]] | None  # (weights npz, engine config)
    samples_trained: int  # by earlier attempts
    train_seconds: float
    # The trainer that paused at the job's checkpoint, kept by this process (then x, y,
    # checkpoint and history are left empty: it holds them).
    paused: Trainer | None = None
    cancel_requested: bool = False  # already, when the row was read: stop before a batch


@dataclass(frozen=True)
class _Refs:
    """What a job's rows say about its inputs (read in one short transaction)."""

    job: Any  # a row of _JOB_INPUTS
    init_model: Any  # a row of _INIT_MODEL (its weights blob and config), or None
    history: list[dict[str, Any]]  # epochs 1..checkpoint_epoch
    paused: Trainer | None  # paused_trainers' for the job's checkpoint


_JOBS, _DATASETS, _MODELS = core_table(Job), core_table(Dataset), core_table(tables.Model)
# The job's columns an attempt reads and its dataset's blobs, in one statement built once
# (a sweep's worker runs this per trial: ORM loads of the whole job and dataset rows cost
# several times more; BENCHMARKS.md §9).
_JOB_INPUTS = (
    select(
        _JOBS.c.network_config,
        _JOBS.c.options,
        _JOBS.c.epochs,
        _JOBS.c.checkpoint_sha256,
        _JOBS.c.checkpoint_epoch,
        _JOBS.c.init_model_id,
        _JOBS.c.samples_trained,
        _JOBS.c.train_seconds,
        _JOBS.c.cancel_requested,
        _DATASETS.c.id.label("dataset_id"),
        _DATASETS.c.x_sha256,
        _DATASETS.c.y_sha256,
    )
    .select_from(_JOBS.outerjoin(_DATASETS, _DATASETS.c.id == _JOBS.c.dataset_id))
    .where(_JOBS.c.id == bindparam("job_id"))
)

# An initial model's weights blob and config (what the trainer starts from).
_INIT_MODEL = select(_MODELS.c.weights_sha256, _MODELS.c.config).where(
    _MODELS.c.id == bindparam("model_id")
)


def _read_rows(db: Database, job_id: str) -> _Refs:
    # A bare read connection, not an ORM session: 0.16 -> 0.11 ms of CPU per trial start.
    with db.read_connection() as connection:
        job = connection.execute(_JOB_INPUTS, {"job_id": job_id}).first()
        if job is None:
            raise StartError(f"job {job_id} vanished")
        if job.dataset_id is None:
            raise StartError("the job's dataset was deleted")
        paused = history = None
        if job.checkpoint_sha256 is not None:
            paused = paused_trainers.PAUSED.take(job_id, job.checkpoint_sha256)
            if paused is None:
                history = queue.history_until(connection, job_id, job.checkpoint_epoch or 0)
        init_model = None
        if job.init_model_id is not None:
            init_model = connection.execute(_INIT_MODEL, {"model_id": job.init_model_id}).first()
            if init_model is None:
                raise StartError("the job's initial model was deleted")
        return _Refs(job, init_model, history or [], paused)


def load_inputs(db: Database, blobs: BlobStore, job_id: str) -> JobInputs:
    """Read the job, its dataset and its initial model (if any); StartError names a
    missing or corrupt blob."""
    refs = _read_rows(db, job_id)
    job = refs.job
    columns = {
        "x_sha256": job.x_sha256,
        "y_sha256": job.y_sha256,
        "network_config": job.network_config,
        "options": job.options,
        "epochs": job.epochs,
        "samples_trained": job.samples_trained,
        "train_seconds": job.train_seconds,
        "cancel_requested": bool(job.cancel_requested),
    }
    if refs.paused is not None:  # it holds its data and state: nothing to read
        return JobInputs(
            x=NO_ROWS,
            y=NO_ROWS,
            checkpoint=None,
            history=[],
            init_model=None,
            paused=refs.paused,
            **columns,
        )
    what = "the dataset's features (x)"
    try:
        # The last dataset's arrays are kept (data_memo): a sweep's next trial maps nothing.
        x = data_memo.array(job.x_sha256, lambda: load_array(blobs, job.x_sha256))  # mapped
        what = "the dataset's labels (y)"
        # small: copied, no map kept open
        y = data_memo.array(job.y_sha256, lambda: np.array(load_array(blobs, job.y_sha256)))
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
        checkpoint=checkpoint,
        history=refs.history,
        init_model=init_model,
        **columns,
    )


def build_trainer(inputs: JobInputs) -> Trainer:
    """A fresh Trainer, or one resumed from the job's last checkpoint (the paused trainer
    itself when this process kept it). It trains up to the job's ``epochs`` column, which
    a sweep's halving trial holds below its options' epochs until promoted
    (app/jobs/sweep_advance.py)."""
    trainer = inputs.paused or _new_trainer(inputs)
    trainer.loop.stop_at = inputs.epochs if inputs.epochs < trainer.options.epochs else None
    return trainer


def _new_trainer(inputs: JobInputs) -> Trainer:
    prepare = data_memo.preparer(inputs.x_sha256, inputs.y_sha256)
    if inputs.checkpoint is not None:
        return Trainer.resume(
            inputs.checkpoint, inputs.x, inputs.y, history=inputs.history, prepare=prepare
        )
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
        prepare=prepare,
    )
