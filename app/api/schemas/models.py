"""Trained-model bodies: read, predict."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Label
from app.api.schemas.metrics import EpochMetrics
from app.api.schemas.networks import NetworkConfig
from app.storage.tables import Model


class ModelTask(StrEnum):
    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"


class ModelConfig(BaseModel):
    """A model's export config: what /v1/models/import takes back as ``config``."""

    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)

    format: str = Field(description="backprop-mlp")
    version: int
    network: NetworkConfig
    task: ModelTask
    classes: list[Label] | None = Field(default=None, description="Labels in output order")
    standardize: bool = Field(default=False, description="Inputs standardised with x_mean/x_std")


class ModelRead(BaseModel):
    id: str
    job_id: str | None = Field(description="The job that trained it (null when imported)")
    network_id: str | None
    dataset_id: str | None = Field(
        description="The dataset it was trained on (null when imported, or once deleted)"
    )
    task: ModelTask
    classes: list[Label] | None = Field(description="Labels in output order (classifiers)")
    architecture: NetworkConfig = Field(description="The network config")
    standardize: bool
    config: ModelConfig = Field(description="The full export config (for /v1/models/import)")
    metrics: EpochMetrics | None = Field(description="The kept epoch's metrics (trained models)")
    parameter_count: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: Model, parameter_count: int) -> ModelRead:
        config = row.config
        return cls(
            id=row.id,
            job_id=row.job_id,
            network_id=row.network_id,
            dataset_id=row.dataset_id,
            task=config["task"],
            classes=config.get("classes"),
            architecture=NetworkConfig.model_validate(config["network"]),
            standardize=bool(config.get("standardize", False)),
            config=ModelConfig.model_validate(config),
            metrics=row.metrics,
            parameter_count=parameter_count,
            created_at=row.created_at,
        )


class PredictRequest(BaseModel):
    """Documented schema of the predict body (parsed by hand for speed)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"x": [[0, 0], [0, 1], [1, 0], [1, 1]]}]}
    )

    x: list[list[float]] = Field(min_length=1, description="(rows, input_size) raw features")


class PredictResponse(BaseModel):
    outputs: list[list[float]] = Field(description="(rows, output_size): probabilities or values")
    labels: list[Label] | None = Field(
        default=None, description="Predicted labels (classifiers only; absent for regression)"
    )
