"""Evaluation bodies: which dataset to score a model on; the metrics, as sklearn.metrics
defines them, stored with the model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Label
from app.services.evaluation_runs import EvaluationState
from app.storage.tables import Evaluation


class EvaluationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"dataset_id": "ds_0123456789abcdef"}]}
    )

    dataset_id: str = Field(
        max_length=64,
        description="A dataset of yours with the model's input width and labels it knows",
    )


class ClassScores(BaseModel):
    label: Label
    precision: float = Field(description="Right among the rows predicted as this class")
    recall: float = Field(description="Found among the rows of this class")
    f1: float
    support: int = Field(description="Rows of this class in the dataset")


class AverageScores(BaseModel):
    precision: float
    recall: float
    f1: float


class RocCurve(BaseModel):
    fpr: list[float] = Field(description="False positive rates, from 0 to 1 (at most 200)")
    tpr: list[float] = Field(description="True positive rates at the same thresholds")


class TargetScores(BaseModel):
    target: int = Field(description="Output column")
    mse: float
    rmse: float
    mae: float
    r2: float


class ScatterPoints(BaseModel):
    actual: list[list[float]] = Field(description="(p, targets): at most 500 sampled rows")
    predicted: list[list[float]] = Field(description="The model's outputs for the same rows")


# The fields every evaluation body starts with, scored or not.
_EXAMPLE_HEAD: dict[str, Any] = {
    "id": "ev_0123456789abcdef",
    "model_id": "mdl_0123456789abcdef",
    "dataset_id": "ds_0123456789abcdef",
    "created_at": "2026-12-01T12:00:00Z",
}


class _EvaluationHead(BaseModel):
    id: str
    model_id: str
    dataset_id: str | None = Field(description="null once the dataset is deleted")
    created_at: datetime


class _EvaluationBase(_EvaluationHead):
    status: Literal["succeeded"] = Field(
        default="succeeded", description="Scores are present: always succeeded"
    )
    n_samples: int


class ClassifierEvaluation(_EvaluationBase):
    """A binary or multiclass model's scores."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_HEAD,
                    "status": "succeeded",
                    "task": "binary",
                    "n_samples": 4,
                    "classes": ["no", "yes"],
                    "accuracy": 0.75,
                    "log_loss": 0.4,
                    "roc_auc": 0.75,
                    "confusion_matrix": [[1, 1], [0, 2]],
                    "per_class": [
                        {"label": "no", "precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 2},
                        {
                            "label": "yes",
                            "precision": 0.667,
                            "recall": 1.0,
                            "f1": 0.8,
                            "support": 2,
                        },
                    ],
                    "macro": {"precision": 0.833, "recall": 0.75, "f1": 0.733},
                    "weighted": {"precision": 0.833, "recall": 0.75, "f1": 0.733},
                    "roc_curve": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 1.0, 1.0]},
                }
            ]
        }
    )

    task: Literal["binary", "multiclass"]
    classes: list[Label] = Field(description="The model's classes: the order of every list")
    accuracy: float
    log_loss: float = Field(description="Probabilities clipped to [eps, 1 - eps] (float eps)")
    roc_auc: float | None = Field(
        description="Binary: of classes[1]; multiclass: macro one-vs-rest; null when a "
        "class has no rows"
    )
    confusion_matrix: list[list[int]] = Field(description="Rows: true class; columns: predicted")
    per_class: list[ClassScores]
    macro: AverageScores = Field(description="Unweighted mean over classes")
    weighted: AverageScores = Field(description="Mean over classes weighted by support")
    roc_curve: RocCurve | None = Field(
        default=None, description="Binary models: (fpr, tpr) points; null when undefined"
    )


class RegressionEvaluation(_EvaluationBase):
    """A regression model's scores, averaged uniformly over targets."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_HEAD,
                    "status": "succeeded",
                    "task": "regression",
                    "n_samples": 2,
                    "mse": 0.25,
                    "rmse": 0.5,
                    "mae": 0.5,
                    "r2": 0.9,
                    "per_target": [{"target": 0, "mse": 0.25, "rmse": 0.5, "mae": 0.5, "r2": 0.9}],
                    "points": {"actual": [[1.0], [2.0]], "predicted": [[1.5], [1.5]]},
                }
            ]
        }
    )

    task: Literal["regression"]
    mse: float
    rmse: float = Field(description="Mean over targets of each target's rmse")
    mae: float
    r2: float = Field(description="Mean over targets; a constant target scores 1 or 0")
    per_target: list[TargetScores]
    points: ScatterPoints = Field(description="Sampled (actual, predicted) pairs to plot")


EvaluationRead = Annotated[ClassifierEvaluation | RegressionEvaluation, Field(discriminator="task")]


class EvaluationRun(_EvaluationHead):
    """An evaluation a worker is computing (a dataset over BACKPROP_SYNC_EVALUATION_ROWS
    rows), or one whose job failed or was cancelled: no scores yet. GET it again (or
    list the model's evaluations) until its status is succeeded and the scores are there."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_HEAD,
                    "status": "running",
                    "rows_done": 400000,
                    "rows_total": 1000000,
                    "error": None,
                }
            ]
        }
    )

    status: Literal["queued", "running", "failed", "cancelled"]
    rows_done: int | None = Field(description="Rows scored so far")
    rows_total: int | None = Field(description="Rows of the dataset")
    error: str | None = Field(default=None, description="Why it failed")


# One of three named bodies: the status tells them apart (only EvaluationRun is not
# succeeded), and then the task.
EvaluationResult = ClassifierEvaluation | RegressionEvaluation | EvaluationRun


def evaluation_body(row: Evaluation, state: EvaluationState | None = None) -> dict[str, Any]:
    """The stored evaluation as the fields of :data:`EvaluationRead` once it has scores,
    else of :class:`EvaluationRun` (``state``: its job's)."""
    fields = {name: getattr(row, name) for name in _EvaluationHead.model_fields}
    if row.metrics:
        return {**fields, **row.metrics}
    assert state is not None, "an evaluation without scores has a job"
    return {
        **fields,
        "status": state.status,
        "rows_done": state.rows_done,
        "rows_total": state.rows_total,
        "error": state.error,
    }
