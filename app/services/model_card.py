"""A model card: the facts about a model that travel with it, read from the rows they
come from (the model, the job that trained it, the dataset it was trained on, its
evaluations).

``GET /v1/models/{id}`` carries them as its ``card`` object and ``GET
/v1/models/{id}/card`` as Markdown (:mod:`app.services.model_card_markdown`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.engine.loop import scores_of
from app.services.export_source import backprop_version
from app.services.models import PATH_LOC, architecture_size
from app.services.ownership import get_owned
from app.storage.blob_arrays import load_array
from app.storage.blobs import BlobStore
from app.storage.database import Database
from app.storage.tables import Dataset, Evaluation, Job, Model


@dataclass(frozen=True)
class ClassCount:
    """How many training rows carry ``label``, and which fraction of all rows that is."""

    label: Any
    count: int
    fraction: float


@dataclass(frozen=True)
class TrainingData:
    """The dataset a job trained the model on (all of it; a validation split is part)."""

    dataset_id: str
    name: str
    sha256: str  # the dataset's content hash (x then y, with shapes and dtypes)
    n_samples: int
    n_features: int
    n_targets: int
    label_kind: str
    feature_names: list[str] | None
    class_balance: list[ClassCount] | None  # classifiers with one label per row


@dataclass(frozen=True)
class CardMetrics:
    """``final``: the last epoch's history entry; ``best``: the entry with the lowest
    ``best_by`` (val_loss when the job validated, else loss); ``weights_epoch``: the epoch
    whose weights the model holds (the best one with early stopping, else the last)."""

    final: dict[str, Any] | None
    best: dict[str, Any] | None
    best_by: str | None
    weights_epoch: int | None


@dataclass(frozen=True)
class Lineage:
    job_id: str | None  # null: imported, or the job was deleted
    initial_model_id: str | None  # the model the job started from (fine-tuning)
    # Trained by a job of this service, even when no job holds it any more (a sweep
    # trial's rung model kept apart from the trial when the next rung's replaced it):
    # its dataset or metrics say so; an imported model has neither.
    trained_here: bool
    sweep_id: str | None = None  # the sweep whose trial made it
    trial_index: int | None = None  # that trial's index in the sweep


@dataclass(frozen=True)
class EvaluationSummary:
    """One stored evaluation, its headline scores only (GET .../evaluations has all).
    ``scores``: accuracy, log_loss, roc_auc and macro_f1 for classifiers; mse, rmse, mae
    and r2 for regression."""

    evaluation_id: str
    dataset_id: str | None  # null once the dataset is deleted
    created_at: datetime
    n_samples: int
    scores: dict[str, float | None]


CLASSIFIER_SCORES = ("accuracy", "log_loss", "roc_auc")
REGRESSION_SCORES = ("mse", "rmse", "mae", "r2")


@dataclass(frozen=True)
class ModelCard:
    model_id: str
    task: str
    classes: list[Any] | None
    architecture: dict[str, Any]  # the network config: input_size, layers, loss, init, seed
    parameter_count: int
    standardize: bool
    training_data: TrainingData | None  # null: imported, or the dataset was deleted
    training_options: dict[str, Any] | None  # every option of the job, as it ran
    metrics: CardMetrics
    lineage: Lineage
    backprop_version: str
    created_at: datetime
    evaluations: list[EvaluationSummary] = field(default_factory=list)  # oldest first


def class_balance(y: np.ndarray) -> list[ClassCount] | None:
    """Count per distinct label of y (n,) or (n, 1), in sorted label order; None for
    anything else (multi-output targets, probability rows)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.size == 0:
        return None
    labels, counts = np.unique(y, return_counts=True)
    total = int(y.size)
    return [
        ClassCount(label=label, count=int(count), fraction=int(count) / total)
        for label, count in zip(labels.tolist(), counts.tolist(), strict=True)
    ]


def _stored_balance(blobs: BlobStore, dataset: Dataset) -> list[ClassCount] | None:
    """The class balance from the counts stored with the dataset (null for labels that
    are not categorical); a dataset stored before they were has its y counted."""
    if "class_counts" not in dataset.stats:
        # Only y is read (memory-mapped from the blob store, checked on first use).
        return class_balance(load_array(blobs, dataset.y_sha256))
    counts: list[int] | None = dataset.stats["class_counts"]
    if counts is None or dataset.classes is None:
        return None
    total = sum(counts)
    return [
        ClassCount(label=label, count=count, fraction=count / total)
        for label, count in zip(dataset.classes, counts, strict=True)
    ]


def best_entry(history: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """The history entry with the lowest val_loss (lowest loss without validation), the
    first of equals; and the key it was chosen by."""
    if not history:
        return None, None
    key = "val_loss" if all("val_loss" in entry for entry in history) else "loss"
    scored = [entry for entry in history if isinstance(entry.get(key), int | float)]
    if not scored:
        return None, None
    return min(scored, key=lambda entry: entry[key]), key


def _dataset_facts(
    session: Session, blobs: BlobStore, row: Model, task: str
) -> TrainingData | None:
    """The model's own dataset (kept when its job no longer holds the model)."""
    if row.dataset_id is None:
        return None
    dataset = session.get(Dataset, row.dataset_id)
    if dataset is None or dataset.owner_id != row.owner_id:
        return None
    balance = None if task == "regression" else _stored_balance(blobs, dataset)
    return TrainingData(
        dataset_id=dataset.id,
        name=dataset.name,
        sha256=dataset.sha256,
        n_samples=dataset.n_samples,
        n_features=dataset.n_features,
        n_targets=dataset.n_targets,
        label_kind=dataset.label_kind,
        feature_names=dataset.feature_names,
        class_balance=balance,
    )


def _summary(row: Evaluation) -> EvaluationSummary:
    metrics = row.metrics
    if metrics["task"] == "regression":
        scores = {name: metrics[name] for name in REGRESSION_SCORES}
    else:
        scores = {name: metrics[name] for name in CLASSIFIER_SCORES}
        scores["macro_f1"] = metrics["macro"]["f1"]
    return EvaluationSummary(
        evaluation_id=row.id,
        dataset_id=row.dataset_id,
        created_at=row.created_at,
        n_samples=int(metrics["n_samples"]),
        scores=scores,
    )


def _evaluations(session: Session, model_id: str) -> list[EvaluationSummary]:
    rows = session.scalars(
        select(Evaluation)
        .where(Evaluation.model_id == model_id)
        .order_by(Evaluation.created_at, Evaluation.id)
    )
    # Evaluations a worker has not finished (no scores yet) are not on the card.
    return [_summary(row) for row in rows if row.metrics]


def _metrics(job: Job | None, row: Model) -> CardMetrics:
    epoch = (row.metrics or {}).get("epoch")
    weights_epoch = int(epoch) if isinstance(epoch, int | float) else None
    if job is None:
        return CardMetrics(final=row.metrics, best=None, best_by=None, weights_epoch=weights_epoch)
    # The entries' numbers: their per-layer statistics stay in the job's history.
    history = [scores_of(entry) for entry in job.history or []]
    best, best_by = best_entry(history)
    final = history[-1] if history else job.metrics
    return CardMetrics(final=final, best=best, best_by=best_by, weights_epoch=weights_epoch)


def card_of(session: Session, blobs: BlobStore, row: Model) -> ModelCard:
    """The card of a model row (already owner-checked), read in ``session``."""
    job = None
    if row.job_id is not None:
        job = session.get(Job, row.job_id)
    config = row.config
    training_data = _dataset_facts(session, blobs, row, config["task"])
    metrics = _metrics(job, row)
    return ModelCard(
        model_id=row.id,
        task=config["task"],
        classes=config.get("classes"),
        architecture=config["network"],
        parameter_count=architecture_size(config),
        standardize=bool(config.get("standardize", False)),
        training_data=training_data,
        training_options=None if job is None else job.options,
        metrics=metrics,
        lineage=Lineage(
            job_id=row.job_id,
            initial_model_id=None if job is None else job.init_model_id,
            sweep_id=None if job is None else job.sweep_id,
            trial_index=None if job is None else job.trial_index,
            trained_here=training_data is not None or metrics.final is not None,
        ),
        backprop_version=backprop_version(),
        created_at=row.created_at,
        evaluations=_evaluations(session, row.id),
    )


def model_card(
    db: Database, blobs: BlobStore, *, owner_id: int, model_id: str
) -> tuple[Model, ModelCard]:
    """The owned model row and its card (404 for a foreign or unknown id)."""
    with db.read_session() as session:
        row = get_owned(session, Model, model_id, owner_id=owner_id, loc=PATH_LOC)
        return row, card_of(session, blobs, row)
