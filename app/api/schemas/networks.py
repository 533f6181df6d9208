"""Network bodies: an architecture, validated by the engine."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Name
from app.api.schemas.names import ActivationName, InitName, LossName
from app.storage.tables import Network


class LayerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    units: int = Field(ge=1, le=1_000_000, strict=True)
    activation: ActivationName


class NetworkCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        use_enum_values=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "xor-net",
                    "input_size": 2,
                    "layers": [
                        {"units": 8, "activation": "tanh"},
                        {"units": 1, "activation": "sigmoid"},
                    ],
                    "seed": 0,
                }
            ]
        },
    )

    name: Name
    input_size: int = Field(ge=1, le=1_000_000, strict=True)
    layers: list[LayerSpec] = Field(min_length=1, max_length=100)
    loss: LossName | None = Field(
        default=None, description="Defaults to the loss that fits the output layer"
    )
    init: InitName = Field(
        default=InitName("auto"),
        validate_default=True,  # so the field holds the plain name, as when given
        description="Initial weights: auto (he for relu-like layers, else xavier), he or xavier",
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1, strict=True)


class NetworkConfig(BaseModel):
    """An architecture as the engine describes it (a model's ``architecture``, and its
    config's ``network``)."""

    model_config = ConfigDict(use_enum_values=True)

    input_size: int
    layers: list[LayerSpec]
    loss: LossName
    init: InitName
    seed: int


class NetworkRead(BaseModel):
    id: str
    name: str
    input_size: int
    layers: list[LayerSpec]
    loss: str
    init: str
    seed: int
    output_size: int
    parameter_count: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: Network) -> NetworkRead:
        config = row.config
        return cls(
            id=row.id,
            name=row.name,
            input_size=config["input_size"],
            layers=[LayerSpec(**layer) for layer in config["layers"]],
            loss=config["loss"],
            init=config["init"],
            seed=config["seed"],
            output_size=config["layers"][-1]["units"],
            parameter_count=row.parameter_count,
            created_at=row.created_at,
        )
