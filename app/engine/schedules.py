"""Learning-rate schedules: the rate for each epoch, keyed by name.

With base rate r, floor r_min = min_learning_rate, epoch e = 0, 1, ... of E epochs:

- ``constant``: r.
- ``step``: max(r_min, r·factor^⌊e / step_size⌋).
- ``cosine``: r_min + (r - r_min)·(1 + cos(π·e / E)) / 2, from r at the first epoch
  towards r_min at the last.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from app.engine.errors import ConfigError


class ScheduleParameters(Protocol):
    """What a schedule reads of its options (``app.engine.options.ScheduleParameters``)."""

    @property
    def factor(self) -> float: ...
    @property
    def step_size(self) -> int: ...
    @property
    def min_learning_rate(self) -> float: ...


Schedule = Callable[[float, int, int, ScheduleParameters], float]


def constant(rate: float, epoch: int, epochs: int, options: ScheduleParameters) -> float:
    """The base rate, every epoch."""
    return rate


def step(rate: float, epoch: int, epochs: int, options: ScheduleParameters) -> float:
    """The base rate times factor once every step_size epochs, floored."""
    decayed = rate * options.factor ** (epoch // options.step_size)
    return max(options.min_learning_rate, decayed)


def cosine(rate: float, epoch: int, epochs: int, options: ScheduleParameters) -> float:
    """Half a cosine from the base rate down towards the floor."""
    low = options.min_learning_rate
    return low + (rate - low) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


SCHEDULES: dict[str, Schedule] = {"constant": constant, "step": step, "cosine": cosine}


def get(name: str) -> Schedule:
    """The schedule called ``name``; ConfigError listing the valid names if none."""
    if name not in SCHEDULES:
        valid = ", ".join(SCHEDULES)
        raise ConfigError(
            f"unknown schedule {name!r}; valid schedules: {valid}", ("lr_schedule", "name")
        )
    return SCHEDULES[name]
