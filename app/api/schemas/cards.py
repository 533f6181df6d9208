"""The model card as JSON: the ``card`` of ``GET /v1/models/{id}`` (``ModelDetail``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Label
from app.api.schemas.datasets import LabelKind
from app.api.schemas.jobs import JobOptions
from app.api.schemas.metrics import EpochMetrics
from app.api.schemas.models import ModelRead, ModelTask
from app.api.schemas.networks import NetworkConfig
from app.services.model_card import ModelCard as CardFacts
from app.storage.tables import Model

_FROM_OBJECTS = ConfigDict(from_attributes=True)


class ClassCount(BaseModel):
    model_config = _FROM_OBJECTS

    label: Label
    count: int = Field(description="Training rows with this label")
    fraction: float = Field(description="count / all rows of the dataset")


class TrainingData(BaseModel):
    model_config = _FROM_OBJECTS

    dataset_id: str
    name: str
    sha256: str = Field(description="The dataset's content hash, as GET /v1/datasets/{id} shows")
    n_samples: int
    n_features: int
    n_targets: int
    label_kind: LabelKind
    feature_names: list[str] | None
    class_balance: list[ClassCount] | None = Field(
        description="Rows per class (classifiers trained on one label per row)"
    )


class CardMetrics(BaseModel):
    model_config = _FROM_OBJECTS

    final: EpochMetrics | None = Field(description="The last epoch's metrics")
    best: EpochMetrics | None = Field(description="The epoch with the lowest best_by")
    best_by: str | None = Field(description="val_loss when the job validated, else loss")
    weights_epoch: int | None = Field(description="The epoch whose weights the model holds")


class Lineage(BaseModel):
    model_config = _FROM_OBJECTS

    job_id: str | None = Field(description="The job that trained it (null when imported)")
    initial_model_id: str | None = Field(description="The model the job started from")
    sweep_id: str | None = Field(
        description="The sweep whose trial trained it (null: a job of its own, or imported)"
    )
    trial_index: int | None = Field(description="That trial's index in the sweep")
    trained_here: bool = Field(
        description="Trained by a job of this service, even when no job holds it any more "
        "(a sweep trial's earlier rung model); false: imported"
    )


class EvaluationSummary(BaseModel):
    model_config = _FROM_OBJECTS

    evaluation_id: str
    dataset_id: str | None = Field(description="null once the dataset is deleted")
    created_at: datetime
    n_samples: int
    scores: dict[str, float | None] = Field(
        description="accuracy, log_loss, roc_auc, macro_f1 (classifiers) or mse, rmse, mae, "
        "r2 (regression); GET /v1/models/{id}/evaluations has every metric"
    )


class ModelCard(BaseModel):
    """Everything that should travel with the model (as Markdown: GET .../card)."""

    model_config = _FROM_OBJECTS

    architecture: NetworkConfig
    parameter_count: int
    task: ModelTask
    classes: list[Label] | None
    standardize: bool
    training_data: TrainingData | None = Field(
        description="null when imported or when the dataset was deleted"
    )
    training_options: JobOptions | None = Field(description="Every option the job ran with")
    metrics: CardMetrics
    evaluations: list[EvaluationSummary] = Field(
        description="POST /v1/models/{id}/evaluate results, oldest first"
    )
    lineage: Lineage
    backprop_version: str
    created_at: datetime


class ModelDetail(ModelRead):
    """One model, with its card."""

    card: ModelCard

    @classmethod
    def from_card(cls, row: Model, card: CardFacts) -> ModelDetail:
        read = ModelRead.from_row(row, card.parameter_count)
        return cls(**dict(read), card=ModelCard.model_validate(card))
