"""Training options: small frozen dataclasses that validate themselves.

This file is the one declaration of every training option: its name (the field), its
default, its bounds and its description (see ``optionspec``). The HTTP API's job body
and its OpenAPI document are built from these fields, so they cannot disagree.

Every bad value raises a ConfigError whose ``loc`` is the path of the field as it appears
in ``TrainingOptions.to_dict()``, e.g. ("optimizer", "learning_rate") or ("epochs",).
``to_dict`` / ``from_dict`` round-trip through JSON.

The L2 penalty, when l2 > 0, adds (l2 / 2)·Σ_l ‖W[l]‖²_F to the minimised loss (biases
are not penalised), i.e. l2·W[l] to each weight gradient before clipping and before the
optimizer (PyTorch's ``weight_decay`` convention; with Adam this is L2, not AdamW).
Gradient clipping, when clip_norm is set, rescales the whole gradient (all layers
together, penalty included) to norm clip_norm whenever its L2 norm is larger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

from app.engine.errors import ConfigError
from app.engine.optimizers import OPTIMIZERS as OPTIMIZER_TABLE
from app.engine.optionspec import choice, flag, integer, nested, number, options_of, spec_of
from app.engine.schedules import SCHEDULES as SCHEDULE_TABLE

OPTIMIZERS = tuple(OPTIMIZER_TABLE)
SCHEDULES = tuple(SCHEDULE_TABLE)
MAX_EPOCHS = 1_000_000
MAX_BATCH = 1_000_000
MAX_SEED = 2**32 - 1
MAX_LEARNING_RATE = 10.0

T = TypeVar("T", bound="_Options")


class _Options:
    """Validation and the dict round trip, both driven by the fields' specs; subclasses
    are frozen dataclasses with a ``LOC`` prefix."""

    LOC: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for declared in fields(self):  # type: ignore[arg-type]
            spec_of(declared).check(getattr(self, declared.name), (*self.LOC, declared.name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (nested options as dicts)."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Options from a (possibly partial) dict; missing fields keep their defaults."""
        if not isinstance(data, Mapping):
            raise ConfigError("must be an object", cls.LOC)
        declared = {option.name: option.spec for option in options_of(cls)}
        for key in data:
            if key not in declared:
                raise ConfigError(
                    f"unknown option {key!r}; valid: {', '.join(sorted(declared))}",
                    (*cls.LOC, str(key)),
                )
        values = dict(data)
        for name, spec in declared.items():
            if spec.options is not None and values.get(name) is not None:
                values[name] = spec.options.from_dict(values[name])
        return cls(**values)


@dataclass(frozen=True)
class OptimizerOptions(_Options):
    """sgd, momentum (nesterov optional) or adam, with their hyperparameters."""

    LOC: ClassVar[tuple[str, ...]] = ("optimizer",)
    name: str = choice("adam", "The update rule", choices=OPTIMIZERS, noun="optimizer")
    learning_rate: float = number(
        0.01,
        "Step size (the starting rate when a schedule is set)",
        low=0.0,
        high=MAX_LEARNING_RATE,
        open_low=True,
    )
    momentum: float = number(
        0.9, "momentum: the share of the last step kept", low=0.0, high=1.0, open_high=True
    )
    nesterov: bool = flag(False, "momentum: look ahead along the velocity (Nesterov)")
    beta1: float = number(
        0.9, "adam: decay of the gradient's running mean", low=0.0, high=1.0, open_high=True
    )
    beta2: float = number(
        0.999,
        "adam: decay of the squared gradient's running mean",
        low=0.0,
        high=1.0,
        open_high=True,
    )
    epsilon: float = number(
        1e-8, "adam: added to the denominator's root", low=0.0, high=1.0, open_low=True
    )


@dataclass(frozen=True)
class ScheduleOptions(_Options):
    """Learning rate per epoch: constant; step (times factor every step_size epochs); cosine
    (from the optimizer's rate down to min_learning_rate over all epochs)."""

    LOC: ClassVar[tuple[str, ...]] = ("lr_schedule",)
    name: str = choice(
        "constant", "How the rate changes per epoch", choices=SCHEDULES, noun="schedule"
    )
    step_size: int = integer(10, "step: epochs between two cuts", low=1, high=MAX_EPOCHS)
    factor: float = number(
        0.5, "step: the rate is multiplied by this at each cut", low=0.0, high=1.0, open_low=True
    )
    min_learning_rate: float = number(
        0.0,
        "step and cosine: the floor (at most the optimizer's learning_rate)",
        low=0.0,
        high=MAX_LEARNING_RATE,
    )


@dataclass(frozen=True)
class EarlyStoppingOptions(_Options):
    """Stop after ``patience`` epochs without an improvement larger than ``min_delta``."""

    LOC: ClassVar[tuple[str, ...]] = ("early_stopping",)
    patience: int = integer(10, "Epochs without improvement before stopping", low=1, high=100_000)
    min_delta: float = number(
        0.0, "The smallest drop in the watched loss that counts", low=0.0, high=1e6
    )


@dataclass(frozen=True)
class TrainingOptions(_Options):
    """Everything about one training run except the network and the data."""

    epochs: int = integer(100, "Passes over the training rows", low=1, high=MAX_EPOCHS)
    batch_size: int = integer(32, "Rows per gradient step", low=1, high=MAX_BATCH)
    optimizer: OptimizerOptions = nested(OptimizerOptions, "The update rule and its settings")
    l2: float = number(
        0.0, "L2 penalty on the weights: adds (l2 / 2)·Σ‖W‖² to the loss", low=0.0, high=1e3
    )
    clip_norm: float | None = number(
        None,
        "Rescale the whole gradient to this L2 norm when it is longer (null: off)",
        low=0.0,
        high=1e6,
        open_low=True,
        nullable=True,
    )
    lr_schedule: ScheduleOptions = nested(ScheduleOptions, "The learning rate per epoch")
    validation_split: float = number(
        0.2,
        "Share of rows held out (stratified by class) to measure generalisation",
        low=0.0,
        high=0.9,
    )
    early_stopping: EarlyStoppingOptions | None = nested(
        EarlyStoppingOptions,
        "Stop when the validation loss (training loss without a split) stops improving (null: off)",
        nullable=True,
    )
    standardize: bool = flag(True, "Scale each feature to mean 0, std 1 (fitted on training rows)")
    seed: int = integer(
        0,
        "Seeds the validation split and the shuffling (the network's seed sets the weights)",
        low=0,
        high=MAX_SEED,
    )
    shuffle: bool = flag(True, "Shuffle the training rows every epoch")
    diagnostics: bool = flag(
        True,
        "Per-layer statistics (gradient and weight norms, dead and saturated units) in "
        "every epoch's history entry, and the findings drawn from them",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr_schedule.min_learning_rate > self.optimizer.learning_rate:
            raise ConfigError(
                "must not exceed the optimizer's learning_rate",
                ("lr_schedule", "min_learning_rate"),
            )
