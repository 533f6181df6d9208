"""Batch predictions: a model run over a stored dataset by a worker (a prediction run),
followed, listed, cancelled and downloaded.

A prediction run is a queue entry of kind ``predict`` (see :mod:`app.jobs.batch_queue`):
it counts toward BACKPROP_MAX_ACTIVE_JOBS like a training job (it holds a worker), and
GET /v1/jobs does not list it. Its result is a ``.npy`` blob of outputs (rows,
output_size) in the model's dtype: the npy download streams that blob; the CSV download
streams it as text, :data:`CSV_BLOCK_ROWS` rows at a time, with each row's predicted
label for classifiers (the labels POST /v1/models/{id}/predict answers).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.config import Settings
from app.engine import labels
from app.jobs import batch_queue, queue
from app.services.errors import Conflict, Invalid, NotFound
from app.services.jobs import TERMINAL, check_active_jobs
from app.services.ownership import get_owned, page
from app.services.quota import check_owner_bytes
from app.storage import tables
from app.storage.blob_arrays import load_array
from app.storage.blobs import CHUNK_BYTES, BlobStore
from app.storage.database import Database
from app.storage.tables import Dataset, Job, JobKind, JobStatus

PATH_LOC = ("path", "prediction_id")
MODEL_LOC = ("path", "model_id")
DATASET_LOC = ("body", "dataset_id")
CSV_BLOCK_ROWS = 4096
FORMATS = ("npy", "csv")
NPY_HEADER_BYTES = 128  # an .npy file's header for a 2-d array (padded to 64 bytes)
ESTIMATE_ITEMSIZE = 4  # float32 outputs; a float64 model's are twice as large (see README)


def output_bytes_estimate(model: tables.Model, rows: int) -> int:
    """Bytes of a run's ``.npy`` outputs (rows, output_size) if float32: reserved toward
    BACKPROP_MAX_OWNER_BYTES while the run is queued or running."""
    width = int(model.config["network"]["layers"][-1]["units"])
    return NPY_HEADER_BYTES + rows * width * ESTIMATE_ITEMSIZE


def check_width(model: tables.Model, dataset: Dataset) -> None:
    """422 at body.dataset_id unless the dataset has the model's input width."""
    width = int(model.config["network"]["input_size"])
    if dataset.n_features != width:
        raise Invalid(
            f"dataset {dataset.id} has {dataset.n_features} features but the model takes {width}",
            DATASET_LOC,
            error_type="input_width",
        )


def submit_prediction(
    db: Database, settings: Settings, *, owner_id: int, model_id: str, dataset_id: str
) -> Job:
    """Queue a prediction run of the model over the dataset (both owned: 404 otherwise;
    422 when the widths differ; 429 past the owner's active jobs; 413 when its estimated
    outputs would take the owner past BACKPROP_MAX_OWNER_BYTES)."""
    with db.session() as session:
        check_active_jobs(session, settings, owner_id)
        # Locked: a concurrent delete of either must see this run (and refuse) or finish
        # first (and this answers 404). The dataset first, as delete_dataset takes them
        # (its delete sets its models' dataset_id): the other order could deadlock.
        dataset = get_owned(
            session, Dataset, dataset_id, owner_id=owner_id, loc=DATASET_LOC, for_update=True
        )
        model = get_owned(
            session, tables.Model, model_id, owner_id=owner_id, loc=MODEL_LOC, for_update=True
        )
        check_width(model, dataset)
        estimate = output_bytes_estimate(model, dataset.n_samples)
        check_owner_bytes(session, settings, owner_id=owner_id, adding=estimate, loc=DATASET_LOC)
        run = batch_queue.enqueue_batch(
            session,
            kind=JobKind.PREDICT,
            owner_id=owner_id,
            model_id=model.id,
            dataset_id=dataset.id,
            rows_total=dataset.n_samples,
            options={},
        )
        run.result_bytes = estimate
        return run


def _owned_run(session: Any, *, owner_id: int, prediction_id: str, for_update: bool = False) -> Job:
    try:
        run = get_owned(
            session, Job, prediction_id, owner_id=owner_id, loc=PATH_LOC, for_update=for_update
        )
    except NotFound:
        run = None
    if run is None or run.kind != JobKind.PREDICT:  # named as the caller knows it
        raise NotFound("prediction run", PATH_LOC)
    return run


def get_prediction(db: Database, *, owner_id: int, prediction_id: str) -> Job:
    with db.read_session() as session:
        return _owned_run(session, owner_id=owner_id, prediction_id=prediction_id)


def list_predictions(
    db: Database,
    *,
    owner_id: int,
    model_id: str | None = None,
    status: str | None = None,
    limit: int,
    offset: int,
) -> tuple[list[Job], int]:
    """A page of the owner's prediction runs, newest first (optionally of one model, or
    in one status)."""
    where = [Job.kind == JobKind.PREDICT]
    if model_id is not None:
        where.append(Job.model_id == model_id)
    if status is not None:
        where.append(Job.status == status)
    with db.read_session() as session:
        return page(session, Job, owner_id=owner_id, limit=limit, offset=offset, where=where)


def cancel_prediction(db: Database, *, owner_id: int, prediction_id: str) -> Job:
    """A queued run is cancelled now; a running one stops within a chunk; 409 once ended."""
    with db.session() as session:
        run = _owned_run(session, owner_id=owner_id, prediction_id=prediction_id, for_update=True)
        if run.status in TERMINAL:
            raise Conflict(
                f"the prediction run has already finished ({run.status})",
                PATH_LOC,
                error_type="job_finished",
            )
        queue.request_cancel(session, run)
    return get_prediction(db, owner_id=owner_id, prediction_id=prediction_id)


def delete_prediction(db: Database, *, owner_id: int, prediction_id: str) -> None:
    """Delete an ended run: its outputs no longer count toward the owner's quota and their
    blob goes at the next garbage collection (``backprop gc``; another run with the same
    outputs shares the blob and keeps it). 409 while it is queued or running."""
    with db.session() as session:
        run = _owned_run(session, owner_id=owner_id, prediction_id=prediction_id, for_update=True)
        if run.status not in TERMINAL:
            raise Conflict(
                f"the prediction run is {run.status}: cancel it first, then delete it",
                PATH_LOC,
                error_type="job_active",
            )
        session.delete(run)


def _finished_run(
    db: Database, *, owner_id: int, prediction_id: str
) -> tuple[Job, dict[str, Any] | None]:
    """The succeeded run and its model's engine config (None once the model is deleted);
    409 before it succeeded."""
    with db.read_session() as session:
        run = _owned_run(session, owner_id=owner_id, prediction_id=prediction_id)
        if run.status != JobStatus.SUCCEEDED or run.result_sha256 is None:
            raise Conflict(
                f"the prediction run is {run.status}: its outputs exist once it succeeded",
                PATH_LOC,
                error_type="not_finished",
            )
        model = session.get(tables.Model, run.model_id) if run.model_id else None
        return run, (model.config if model is not None else None)


def download_npy(
    db: Database, blobs: BlobStore, *, owner_id: int, prediction_id: str
) -> tuple[str, Iterator[bytes]]:
    """A file name and the outputs ``.npy`` (rows, output_size) as chunks of the blob."""
    run, _ = _finished_run(db, owner_id=owner_id, prediction_id=prediction_id)
    assert run.result_sha256 is not None
    reader = blobs.open(run.result_sha256)

    def chunks() -> Iterator[bytes]:
        with reader:
            while chunk := reader.read(CHUNK_BYTES):
                yield chunk

    return f"{run.id}.npy", chunks()


def download_csv(
    db: Database, blobs: BlobStore, *, owner_id: int, prediction_id: str
) -> tuple[str, Iterator[bytes]]:
    """A file name and the outputs as CSV text: a header ``output_0,...[,label]`` then one
    line per row, each value with enough digits to read back exactly (9 significant for
    float32, 17 for float64), and the predicted label for classifiers (409 once the model
    is deleted: its task and classes are gone)."""
    run, config = _finished_run(db, owner_id=owner_id, prediction_id=prediction_id)
    assert run.result_sha256 is not None
    if config is None:
        raise Conflict(
            "the run's model was deleted: whether it has labels, and its classes, are gone "
            "(the npy download has the outputs)",
            PATH_LOC,
            error_type="model_deleted",
        )
    task, classes = str(config["task"]), config.get("classes")
    outputs = load_array(blobs, run.result_sha256)  # (rows, k), memory-mapped
    with_labels = task != "regression"
    digits = "%.17g" if outputs.dtype == np.float64 else "%.9g"
    columns = [f"output_{j}" for j in range(outputs.shape[1])] + (["label"] if with_labels else [])

    def lines() -> Iterator[bytes]:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        for start in range(0, outputs.shape[0], CSV_BLOCK_ROWS):
            block = np.asarray(outputs[start : start + CSV_BLOCK_ROWS])
            values = np.char.mod(digits, block).tolist()
            if with_labels:
                for row, label in zip(values, labels.decode(block, task, classes), strict=True):
                    writer.writerow([*row, label])
            else:
                writer.writerows(values)
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()

    return f"{run.id}.csv", lines()
