"""Evaluate a model on one of the owner's datasets, store the result with the model, list
a model's evaluations.

The forward pass runs in blocks of :data:`BLOCK_ROWS` rows, so its activations stay
bounded whatever the dataset's size; only the outputs (rows, output_size) are kept, which
the AUC needs whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select

from app.config import Settings
from app.engine import evaluation
from app.engine.errors import DataError
from app.engine.model import Model
from app.services.datasets import load_dataset_arrays
from app.services.errors import Invalid
from app.services.model_cache import ModelCache
from app.services.models import PATH_LOC
from app.services.ownership import get_owned
from app.services.predict import load_model
from app.storage import tables
from app.storage.blobs import BlobStore
from app.storage.database import Database
from app.storage.tables import Dataset, Evaluation

DATASET_LOC = ("body", "dataset_id")
BLOCK_ROWS = 4096  # rows per forward pass
SCATTER_POINTS = 500  # (actual, predicted) pairs kept for a regression model's plot


def _dataset_arrays(
    db: Database, blobs: BlobStore, *, owner_id: int, dataset_id: str, width: int
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """The owned dataset (404 at body.dataset_id), refused (422) unless it has ``width``
    features, and its x (n, width) and y arrays: the one place evaluation reads them."""
    with db.read_session() as session:
        dataset = get_owned(session, Dataset, dataset_id, owner_id=owner_id, loc=DATASET_LOC)
        if dataset.n_features != width:
            raise Invalid(
                f"dataset {dataset.id} has {dataset.n_features} features but the model "
                f"takes {width}",
                DATASET_LOC,
                error_type="input_width",
            )
    x, y = load_dataset_arrays(blobs, dataset)
    return dataset, x, y


def forward_in_blocks(
    model: Model, x: np.ndarray, block_rows: int = BLOCK_ROWS, *, first_row: int = 0
) -> Any:
    """The model's outputs (n, output_size) for x (n, input_size), ``block_rows`` rows at
    a time; 422 at body.dataset_id naming the first row whose outputs overflow (counted
    from ``first_row``: where x starts in the dataset)."""
    dtype = model.network.dtype
    if x.shape[0] <= block_rows:  # one block: its outputs as they come, no copy
        return _forward_block(model, x, first_row)
    outputs = np.empty((x.shape[0], model.network.output_size), dtype=dtype)
    for start in range(0, x.shape[0], block_rows):
        block = x[start : start + block_rows]
        outputs[start : start + block.shape[0]] = _forward_block(model, block, first_row + start)
    return outputs


def _forward_block(model: Model, x: np.ndarray, first_row: int) -> Any:
    """The outputs (k, output_size) of rows x (k, input_size) in one pass; 422 naming the
    first row whose outputs overflow (x's rows count from ``first_row``)."""
    block = np.ascontiguousarray(x, dtype=model.network.dtype)
    with np.errstate(all="ignore"):
        out = model.predict_checked(block)
    if not np.isfinite(out).all():
        row = first_row + int(np.argwhere(~np.isfinite(out))[0][0])
        raise Invalid(
            f"the model's outputs overflow for row {row} of the dataset",
            DATASET_LOC,
            error_type="non_finite_output",
        )
    return out


def _targets(y: npt.NDArray[Any], width: int) -> np.ndarray:
    """Regression targets (n, width) float64 from y (n,) or (n, t); DataError otherwise."""
    if y.dtype.kind not in "biuf":
        raise DataError(f"y holds {y.dtype} values, but a regression model needs numbers")
    column = y.reshape(-1, 1) if y.ndim == 1 else y
    if column.shape[1] != width:
        raise DataError(
            f"y has {column.shape[1]} target column(s) but the model has {width} output(s)"
        )
    return column.astype(np.float64)


def score(model: Model, outputs: np.ndarray, y: npt.NDArray[Any]) -> dict[str, Any]:
    """The metrics of ``outputs`` (n, output_size) against the dataset's labels ``y``
    (DataError when they do not fit the model)."""
    if model.task == "regression":
        actual = _targets(y, outputs.shape[1])
        metrics = evaluation.regression_metrics(actual, outputs)
        metrics["points"] = evaluation.sample_pairs(actual, outputs, SCATTER_POINTS)
        return metrics
    return evaluation.classifier_metrics(_class_codes(model, y), outputs, model.classes or [])


def _class_codes(model: Model, y: npt.NDArray[Any]) -> np.ndarray:
    """(n,) indices into the classifier's classes of labels ``y`` (n,) or (n, 1);
    DataError naming the labels it never saw."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"y has {y.shape[1]} columns; evaluating a classifier needs one class label per row"
        )
    return evaluation.class_codes(y, model.classes or [], name="the dataset")


def check_labels(model: Model, y: npt.NDArray[Any]) -> None:
    """422 at body.dataset_id unless the labels ``y`` fit the model (what :func:`score`
    would refuse, checked before a worker computes the outputs)."""
    try:
        if model.task == "regression":
            _targets(y, model.network.output_size)
        else:
            _class_codes(model, y)
    except DataError as exc:
        raise Invalid(exc.message, DATASET_LOC, error_type="labels_mismatch") from None


def evaluate_model(
    db: Database,
    blobs: BlobStore,
    cache: ModelCache,
    settings: Settings,
    *,
    owner_id: int,
    model_id: str,
    dataset_id: str,
) -> Evaluation:
    """Score the model on the dataset and store the result (both owned: 404 otherwise)."""
    entry = load_model(db, blobs, cache, settings, owner_id=owner_id, model_id=model_id)
    dataset, x, y = _dataset_arrays(
        db, blobs, owner_id=owner_id, dataset_id=dataset_id, width=entry.input_size
    )
    outputs = forward_in_blocks(entry.model, x)
    try:
        metrics = score(entry.model, outputs, y)
    except DataError as exc:  # labels that do not fit the model: about the dataset itself
        raise Invalid(exc.message, DATASET_LOC, error_type="labels_mismatch") from None
    row = Evaluation(owner_id=owner_id, model_id=model_id, dataset_id=dataset.id, metrics=metrics)
    with db.session() as session:
        session.add(row)
    return row


def list_evaluations(
    db: Database, *, owner_id: int, model_id: str, limit: int, offset: int
) -> tuple[list[Evaluation], int]:
    """A page of the model's evaluations, newest first (404 for a model not owned)."""
    where = (Evaluation.owner_id == owner_id, Evaluation.model_id == model_id)
    with db.read_session() as session:
        get_owned(session, tables.Model, model_id, owner_id=owner_id, loc=PATH_LOC)
        total = session.scalar(select(func.count()).select_from(Evaluation).where(*where)) or 0
        rows = session.scalars(
            select(Evaluation)
            .where(*where)
            .order_by(Evaluation.created_at.desc(), Evaluation.id)
            .limit(limit)
            .offset(offset)
        ).all()
    return list(rows), total
