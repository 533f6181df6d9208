"""Sweep bodies: a search over network and job settings, and its trials as they run."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SkipValidation,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from app.api.schemas.common import Name
from app.services.sweep_view import SweepView, TrialView
from app.storage.tables import JobStatus

EXAMPLE_NETWORK: dict[str, Any] = {
    "input_size": 64,
    "layers": [{"units": 32, "activation": "relu"}, {"units": 10, "activation": "softmax"}],
}


class SweepMetric(StrEnum):
    """What ranks the trials: losses and errors are minimised, accuracy and r2 maximised."""

    loss = "loss"
    accuracy = "accuracy"
    mae = "mae"
    r2 = "r2"
    val_loss = "val_loss"
    val_accuracy = "val_accuracy"
    val_mae = "val_mae"
    val_r2 = "val_r2"


class GridStrategy(BaseModel):
    """Every combination of the grid's values."""

    model_config = ConfigDict(extra="forbid")
    name: Literal["grid"]


class RandomStrategy(BaseModel):
    """``trials`` draws, one value per path (from its list or its distribution)."""

    model_config = ConfigDict(extra="forbid")
    name: Literal["random"]
    trials: int = Field(ge=1, le=1000, strict=True)
    seed: int = Field(default=0, ge=0, le=2**32 - 1, strict=True)


class HalvingStrategy(BaseModel):
    """Successive halving: every combination trains ``min_epochs``; the best 1/``factor``
    continue from their checkpoints for ``factor`` times as many epochs, and so on up to
    the job's ``epochs``."""

    model_config = ConfigDict(extra="forbid")
    name: Literal["halving"]
    factor: int = Field(default=3, ge=2, le=100, strict=True)
    min_epochs: int = Field(default=5, ge=1, le=100_000, strict=True)


Strategy = Annotated[GridStrategy | RandomStrategy | HalvingStrategy, Field(discriminator="name")]
MAX_ALTERNATIVES = 1000  # values listed for one grid path


def _grid_values(value: JsonValue) -> JsonValue:
    """A grid path's value: a list of 1..MAX_ALTERNATIVES alternatives, or an object (a
    distribution, checked with the strategy). One error at the path, whatever is wrong (a
    union of the two would report both branches, each tagged with a type name)."""
    if isinstance(value, list):
        if not 1 <= len(value) <= MAX_ALTERNATIVES:
            raise PydanticCustomError(
                "grid_alternatives",
                "a grid path lists 1 to {limit} alternatives, not {count}",
                {"limit": MAX_ALTERNATIVES, "count": len(value)},
            )
        return value
    if isinstance(value, dict):
        return value
    raise PydanticCustomError(
        "grid_values",
        "a grid path's value is a list of alternatives, e.g. [0.001, 0.01], or (random "
        "search) a distribution such as {example}, not {kind}",
        {"example": '{"log_uniform": [0.0001, 0.1]}', "kind": _json_kind(value)},
    )


def _json_kind(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a string" if isinstance(value, str) else "a number"


GridValues = Annotated[
    JsonValue,
    AfterValidator(_grid_values),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {}, "minItems": 1, "maxItems": MAX_ALTERNATIVES},
                {"type": "object", "additionalProperties": {}},
            ]
        }
    ),
]


class SweepCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        use_enum_values=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "digits-grid",
                    "dataset_id": "ds_0123456789abcdef",
                    "network": EXAMPLE_NETWORK,
                    "job": {"epochs": 40, "optimizer": {"name": "adam"}, "validation_split": 0.2},
                    "grid": {
                        "job.optimizer.learning_rate": [0.001, 0.01],
                        "job.batch_size": [32, 128],
                    },
                    "strategy": {"name": "grid"},
                    "metric": "val_accuracy",
                    "max_parallel": None,
                },
                {
                    "name": "digits-random",
                    "dataset_id": "ds_0123456789abcdef",
                    "network": EXAMPLE_NETWORK,
                    "job": {"epochs": 40, "validation_split": 0.2},
                    "grid": {
                        "job.optimizer.learning_rate": {"log_uniform": [0.0001, 0.1]},
                        "job.batch_size": {"int_uniform": [16, 256]},
                    },
                    "strategy": {"name": "random", "trials": 20, "seed": 0},
                    "metric": "val_loss",
                },
                {
                    "name": "digits-halving",
                    "dataset_id": "ds_0123456789abcdef",
                    "network": EXAMPLE_NETWORK,
                    "job": {"epochs": 45, "validation_split": 0.2},
                    "grid": {"job.optimizer.learning_rate": [0.001, 0.003, 0.01, 0.03]},
                    "strategy": {"name": "halving", "factor": 3, "min_epochs": 5},
                    "metric": "val_accuracy",
                },
            ]
        },
    )

    name: Name
    dataset_id: str = Field(max_length=64)
    network: dict[str, JsonValue] = Field(description="A POST /v1/networks body without its name")
    job: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="A POST /v1/jobs body without its ids; diagnostics default to false in "
        "a sweep's trials (set them here or in the grid to get each trial's X-ray)",
    )
    grid: dict[str, GridValues] = Field(
        min_length=1,
        max_length=20,
        description="Dotted path into network or job (job.optimizer.learning_rate, "
        "network.layers) -> its alternatives, or (random) a distribution: "
        '{"log_uniform": [lo, hi]}, {"uniform": [a, b]}, {"int_uniform": [a, b]}',
    )
    strategy: Strategy
    metric: SweepMetric = SweepMetric.val_loss
    max_parallel: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        strict=True,
        description="Trials running at once (null: no cap)",
    )


# What a sweep read returns was validated when the sweep was created and is read back
# from this service's own rows: JsonValue's recursive check of each trial's params was
# most of the cost of a polled GET /v1/sweeps/{id} (BENCHMARKS §9), and so was JsonValue's
# serialiser (a Python function per value): neither check nor serialiser runs here (the
# OpenAPI schema: an object of JSON values, as before).
StoredJson = Annotated[
    dict[str, Any],
    SkipValidation,
    WithJsonSchema({"type": "object", "additionalProperties": {}}),
]


class TrialRead(BaseModel):
    index: int
    params: StoredJson = Field(description="The trial's value of each grid path")
    job_id: str
    status: JobStatus
    score: float | None = Field(description="The sweep's metric of the trial's model")
    epochs_run: int
    epochs: int = Field(description="Epochs it trains to (under halving: its current rung)")
    model_id: str | None

    @classmethod
    def of(cls, trial: TrialView) -> TrialRead:
        return cls(
            index=trial.index,
            params=trial.params,
            job_id=trial.job_id,
            status=JobStatus(trial.status),
            score=trial.score,
            epochs_run=trial.epochs_run,
            epochs=trial.epochs,
            model_id=trial.model_id,
        )


class BestTrial(BaseModel):
    index: int
    params: StoredJson
    score: float
    model_id: str | None
    job_id: str


class SweepRead(BaseModel):
    id: str
    name: str
    dataset_id: str | None
    status: JobStatus
    metric: SweepMetric
    maximise: bool = Field(description="Whether a larger score is better")
    strategy: StoredJson
    grid: StoredJson
    network: StoredJson
    job: StoredJson
    max_parallel: int | None
    trials: list[TrialRead]
    best: BestTrial | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, sweep_view: SweepView) -> SweepRead:
        row, best = sweep_view.sweep, sweep_view.best
        return cls(
            id=row.id,
            name=row.name,
            dataset_id=row.dataset_id,
            status=JobStatus(sweep_view.status),
            metric=SweepMetric(row.metric),
            maximise=sweep_view.maximise,
            strategy=row.strategy,
            grid=row.grid,
            network=row.network,
            job=row.job,
            max_parallel=row.max_parallel,
            trials=[TrialRead.of(trial) for trial in sweep_view.trials],
            best=None
            if best is None or best.score is None
            else BestTrial(
                index=best.index,
                params=best.params,
                score=best.score,
                model_id=best.model_id,
                job_id=best.job_id,
            ),
            created_at=row.created_at,
            finished_at=row.finished_at,
        )


class SweepEnd(BaseModel):
    """Data of the final ``end`` event of /v1/sweeps/{id}/events."""

    status: JobStatus
    best: BestTrial | None
