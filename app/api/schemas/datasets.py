"""Dataset bodies: create from JSON arrays, generate a toy set, read back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, WithJsonSchema
from pydantic_core import PydanticCustomError

from app.api.schemas.common import Label, Name, Number
from app.api.schemas.names import DatasetKind
from app.engine.datasets import MAX_CLASSES, MAX_NOISE, MAX_SAMPLES
from app.engine.labels import MAX_LABEL_CHARS, fits_int64, text_label_problem


def _label(value: Any) -> Any:
    """One label: a string of at most MAX_LABEL_CHARS characters, a number or a boolean,
    as given (strict: "1" stays a string). One error whatever is wrong, where a union of
    the four would report one per member, each tagged with its type's name."""
    if isinstance(value, str):
        why = text_label_problem(value)
        if why is not None:
            code = "string_too_long" if len(value) > MAX_LABEL_CHARS else "label_nul"
            raise PydanticCustomError(code, "the label {why}", {"why": why})
        return value
    if isinstance(value, int) and not isinstance(value, bool) and not fits_int64(value):
        raise PydanticCustomError(
            "label_int_range",
            "an integer label must fit in 64 bits; write a regression target this large as a "
            "float (1e20, not 100000000000000000000)",
        )
    if isinstance(value, bool | int | float):
        return value
    kind = "null" if value is None else "an array" if isinstance(value, list) else "an object"
    raise PydanticCustomError(
        "label_type", "a label is a string, a number or true/false, not {kind}", {"kind": kind}
    )


_LABELS = TypeAdapter(Annotated[list[Annotated[Any, PlainValidator(_label)]], Field(min_length=1)])
_ROWS = TypeAdapter(Annotated[list[list[Number]], Field(min_length=1)])


def _labels_or_rows(value: Any) -> Any:
    """y: rows of numbers when its first item is a list, else labels; the errors are those
    of that shape alone, located in y (not one set per arm of a union, tagged)."""
    rows = isinstance(value, list) and bool(value) and isinstance(value[0], list)
    return (_ROWS if rows else _LABELS).validate_python(value)


LabelsOrRows = Annotated[
    Any,
    PlainValidator(_labels_or_rows),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": TypeAdapter(Label).json_schema(), "minItems": 1},
                {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "number"}},
                    "minItems": 1,
                },
            ]
        }
    ),
]


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
    y: LabelsOrRows = Field(
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
    n_samples: int = Field(default=200, ge=1, le=MAX_SAMPLES, strict=True)
    noise: float = Field(
        default=0.1,
        ge=0,
        le=MAX_NOISE,
        strict=True,
        allow_inf_nan=False,
        description="Std of Gaussian noise added to x",
    )
    classes: int = Field(
        default=2,
        ge=2,
        le=MAX_CLASSES,
        strict=True,
        description="Arms (spirals) or centres (blobs); 2 for the others",
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1, strict=True)
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
