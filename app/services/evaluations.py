"""Evaluate a model on one of the owner's datasets, store the result with the model, list
a model's evaluations.

The forward pass and the scores are the engine's (:mod:`app.engine.scoring`: blocks of
rows, so memory stays bounded whatever the dataset's size); here they become 422s at
``body.dataset_id``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select

from app.config import Settings
from app.engine import scoring
from app.engine.errors import DataError
from app.engine.evaluation import ScoresOverflow
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


def forward_in_blocks(model: Model, x: np.ndarray) -> Any:
    """The model's outputs (n, output_size) for x (n, input_size), in blocks of
    ``scoring.BLOCK_ROWS`` rows; 422 at body.dataset_id naming the first row whose outputs
    overflow."""
    try:
        return scoring.forward_in_blocks(model, x)
    except scoring.NonFiniteOutputs as exc:
        raise Invalid(exc.message, DATASET_LOC, error_type="non_finite_output") from None


def check_labels(model: Model, y: npt.NDArray[Any]) -> None:
    """422 at body.dataset_id unless the labels ``y`` fit the model (what scoring would
    refuse, checked before a worker computes the outputs)."""
    try:
        scoring.check_labels(model, y)
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
        metrics = scoring.score(entry.model, outputs, y)
    except ScoresOverflow as exc:  # targets whose errors' squares pass float64's range
        raise Invalid(exc.message, DATASET_LOC, error_type="scores_overflow") from None
    except DataError as exc:  # labels that do not fit the model: about the dataset itself
        raise Invalid(exc.message, DATASET_LOC, error_type="labels_mismatch") from None
    row = Evaluation(owner_id=owner_id, model_id=model_id, dataset_id=dataset.id, metrics=metrics)
    with db.session() as session:
        # Both read again, locked, in the transaction that stores the result: either may
        # have gone since they were loaded (a halving trial's next rung replaces its rung
        # model; a dataset deleted), a 404 then, not a foreign key's 500. The dataset
        # first, as delete_dataset takes them (its delete sets its models' dataset_id).
        get_owned(session, Dataset, dataset.id, owner_id=owner_id, loc=DATASET_LOC, for_update=True)
        get_owned(session, tables.Model, model_id, owner_id=owner_id, loc=PATH_LOC, for_update=True)
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
