"""Training options: small frozen dataclasses that validate themselves.

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

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from app.engine.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "step", "cosine")
MAX_EPOCHS = 1_000_000
MAX_BATCH = 1_000_000

T = TypeVar("T", bound="_Options")


def _number(
    value: Any,
    loc: tuple[str | int, ...],
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value!r}", loc)
    if value < low or (open_low and value == low) or value > high or (open_high and value == high):
        lo = f"{'>' if open_low else '>='} {low:g}"
        hi = f"{'<' if open_high else '<='} {high:g}"
        raise ConfigError(f"must be {lo} and {hi}, got {value!r}", loc)


def _integer(value: Any, loc: tuple[str | int, ...], low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"must be an integer from {low} to {high}, got {value!r}", loc)


def _flag(value: Any, loc: tuple[str | int, ...]) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", loc)


def _choice(value: Any, choices: tuple[str, ...], loc: tuple[str | int, ...], what: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; valid: {', '.join(choices)}", loc)


class _Options:
    """Shared dict round trip; subclasses are dataclasses with a ``LOC`` prefix."""

    LOC: ClassVar[tuple[str, ...]] = ()
    NESTED: ClassVar[dict[str, type[_Options]]] = {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (nested options as dicts)."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Options from a (possibly partial) dict; missing fields keep their defaults."""
        if not isinstance(data, Mapping):
            raise ConfigError("must be an object", cls.LOC)
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        for key in data:
            if key not in names:
                raise ConfigError(
                    f"unknown option {key!r}; valid: {', '.join(sorted(names))}",
                    (*cls.LOC, str(key)),
                )
        values = dict(data)
        for name, nested in cls.NESTED.items():
            if values.get(name) is not None:
                values[name] = nested.from_dict(values[name])
        return cls(**values)


@dataclass(frozen=True)
class OptimizerOptions(_Options):
    """sgd, momentum (nesterov optional) or adam, with their hyperparameters."""

    LOC: ClassVar[tuple[str, ...]] = ("optimizer",)
    name: str = "adam"
    learning_rate: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        _choice(self.name, OPTIMIZERS, (*self.LOC, "name"), "optimizer")
        _number(self.learning_rate, (*self.LOC, "learning_rate"), 0.0, 1e6, open_low=True)
        _number(self.momentum, (*self.LOC, "momentum"), 0.0, 1.0, open_high=True)
        _flag(self.nesterov, (*self.LOC, "nesterov"))
        _number(self.beta1, (*self.LOC, "beta1"), 0.0, 1.0, open_high=True)
        _number(self.beta2, (*self.LOC, "beta2"), 0.0, 1.0, open_high=True)
        _number(self.epsilon, (*self.LOC, "epsilon"), 0.0, 1.0, open_low=True)


@dataclass(frozen=True)
class ScheduleOptions(_Options):
    """Learning rate per epoch: constant; step (times factor every step_size epochs); cosine
    (from the optimizer's rate down to min_learning_rate over all epochs)."""

    LOC: ClassVar[tuple[str, ...]] = ("lr_schedule",)
    name: str = "constant"
    step_size: int = 10
    factor: float = 0.5
    min_learning_rate: float = 0.0

    def __post_init__(self) -> None:
        _choice(self.name, SCHEDULES, (*self.LOC, "name"), "schedule")
        _integer(self.step_size, (*self.LOC, "step_size"), 1, MAX_EPOCHS)
        _number(self.factor, (*self.LOC, "factor"), 0.0, 1.0, open_low=True)
        _number(self.min_learning_rate, (*self.LOC, "min_learning_rate"), 0.0, 1e6)


@dataclass(frozen=True)
class EarlyStoppingOptions(_Options):
    """Stop after ``patience`` epochs without an improvement larger than ``min_delta``."""

    LOC: ClassVar[tuple[str, ...]] = ("early_stopping",)
    patience: int = 10
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        _integer(self.patience, (*self.LOC, "patience"), 1, MAX_EPOCHS)
        _number(self.min_delta, (*self.LOC, "min_delta"), 0.0, 1e12)


@dataclass(frozen=True)
class TrainingOptions(_Options):
    """Everything about one training run except the network and the data."""

    NESTED: ClassVar[dict[str, type[_Options]]] = {
        "optimizer": OptimizerOptions,
        "lr_schedule": ScheduleOptions,
        "early_stopping": EarlyStoppingOptions,
    }
    epochs: int = 100
    batch_size: int = 32
    optimizer: OptimizerOptions = field(default_factory=OptimizerOptions)
    l2: float = 0.0
    clip_norm: float | None = None
    lr_schedule: ScheduleOptions = field(default_factory=ScheduleOptions)
    validation_split: float = 0.0
    early_stopping: EarlyStoppingOptions | None = None
    standardize: bool = True
    seed: int = 0
    shuffle: bool = True

    def __post_init__(self) -> None:
        _integer(self.epochs, ("epochs",), 1, MAX_EPOCHS)
        _integer(self.batch_size, ("batch_size",), 1, MAX_BATCH)
        for name, kind in self.NESTED.items():
            value = getattr(self, name)
            if not isinstance(value, kind) and not (name == "early_stopping" and value is None):
                raise ConfigError(f"must be {kind.__name__}", (name,))
        _number(self.l2, ("l2",), 0.0, 1e6)
        if self.clip_norm is not None:
            _number(self.clip_norm, ("clip_norm",), 0.0, 1e12, open_low=True)
        _number(self.validation_split, ("validation_split",), 0.0, 1.0, open_high=True)
        _flag(self.standardize, ("standardize",))
        _integer(self.seed, ("seed",), 0, 2**63 - 1)
        _flag(self.shuffle, ("shuffle",))
        if self.lr_schedule.min_learning_rate > self.optimizer.learning_rate:
            raise ConfigError(
                "must not exceed the optimizer's learning_rate",
                ("lr_schedule", "min_learning_rate"),
            )
