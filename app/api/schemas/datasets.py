"""Dataset bodies: create from JSON arrays, generate a toy set, read back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Label, Name, Number
from app.api.schemas.names import DatasetKind
from app.engine.datasets import MAX_CLASSES, MAX_NOISE, MAX_SAMPLES


class DatasetCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "xor",
                    "x": [[0, 0], [0, 1], [1, 0], [1, 1]],
                    "y": [0, 1, 1, 0],
                }
            ]
        },
    )

    name: Name
    x: list[list[Number]] = Field(
        min_length=1, description="Features, one row per sample: (n_samples, n_features)"
    )
    # min_length on each arm: on the union itself it becomes a string rule (minLength).
    y: (
        Annotated[list[Label], Field(min_length=1)]
        | Annotated[list[list[Number]], Field(min_length=1)]
    ) = Field(
        description="Labels: one JSON scalar per sample (class labels of one type, or numbers "
        "for regression), or one row of numbers per sample (multi-output regression)",
    )


class DatasetGenerate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        use_enum_values=True,
        json_schema_extra={
            "examples": [
                {
                    "kind": "xor",
                    "n_samples": 200,
                    "noise": 0.1,
                    "classes": 2,
                    "seed": 0,
                    "name": "xor",
                }
            ]
        },
    )

    kind: DatasetKind
    n_samples: int = Field(default=200, ge=1, le=MAX_SAMPLES)
    noise: float = Field(
        default=0.1, ge=0, le=MAX_NOISE, description="Std of Gaussian noise added to x"
    )
    classes: int = Field(
        default=2,
        ge=2,
        le=MAX_CLASSES,
        description="Arms (spirals) or centres (blobs); 2 for the others",
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    name: Name | None = Field(default=None, description="Defaults to the kind")


class FeatureStats(BaseModel):
    mean: list[float]
    std: list[float]
    min: list[float]
    max: list[float]


class LabelKind(StrEnum):
    categorical = "categorical"
    continuous = "continuous"
    multi_output = "multi_output"


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    n_samples: int
    n_features: int
    n_targets: int = Field(description="Label columns: 1, or k for multi-output regression")
    label_kind: LabelKind
    classes: list[Label] | None = Field(description="Sorted class labels (categorical only)")
    feature_names: list[str] | None
    stats: FeatureStats = Field(description="Per-feature statistics of x")
    sha256: str = Field(description="SHA-256 of x (float32, row-major) followed by y")
    created_at: datetime


class DatasetData(BaseModel):
    x: list[list[float]]
    y: list[Label] | list[list[float]]
    n_samples: int = Field(description="Rows in the dataset (x and y may hold fewer)")
