"""Rows for batch-job tests: a stored model, a dataset and a queued prediction run or
evaluation of the one over the other, written straight to the database (no API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.config import get_settings
from app.engine.model import Model as EngineModel
from app.engine.network import Network
from app.jobs import batch_queue
from app.storage.blobs import open_blob_store
from app.storage.database import Database
from app.storage.tables import Evaluation, JobKind, Model
from tests.queue.rows import add_dataset, add_owner


@dataclass(frozen=True)
class BatchRows:
    job_id: str
    model_id: str
    dataset_id: str
    evaluation_id: str | None  # the evaluation row of an EVALUATE job


def add_batch_job(
    db: Database,
    *,
    owner: str,
    kind: JobKind,
    network: dict[str, Any],
    task: str,
    classes: list[Any],
    x: np.ndarray,
    y: np.ndarray,
) -> BatchRows:
    """Owner ``owner``, a dataset of ``x`` (rows, features) and ``y`` (rows,), a model of
    ``network`` (untrained, its seed's weights) for ``task`` with ``classes``, and a queued
    job of ``kind`` over all the rows (with its evaluation row for EVALUATE)."""
    owner_id = add_owner(db, owner)
    dataset_id = add_dataset(db, owner_id, x, y)
    model = EngineModel(Network.from_config(network), task, classes)
    weights = open_blob_store(get_settings()).put_bytes(model.export_npz())
    with db.session() as session:
        row = Model(
            owner_id=owner_id,
            config=model.get_config(),
            weights_sha256=weights.sha256,
            weights_size=weights.size,
        )
        session.add(row)
        session.flush()
        job = batch_queue.enqueue_batch(
            session,
            kind=kind,
            owner_id=owner_id,
            model_id=row.id,
            dataset_id=dataset_id,
            rows_total=x.shape[0],
            options={},
        )
        evaluation_id = None
        if kind == JobKind.EVALUATE:
            evaluation = Evaluation(
                owner_id=owner_id, model_id=row.id, dataset_id=dataset_id, metrics={}, job_id=job.id
            )
            session.add(evaluation)
            session.flush()
            evaluation_id = evaluation.id
        return BatchRows(job.id, row.id, dataset_id, evaluation_id)
