"""Losses, in a table keyed by name.

With m samples and k output units (z, a, y all (m, k)):

- ``binary_crossentropy``: L = -(1/(m·k)) Σ [y log a + (1 - y) log(1 - a)], sigmoid outputs.
- ``categorical_crossentropy``: L = -(1/m) Σ_i Σ_j y_ij log a_ij, softmax outputs, each
  row of y a probability vector (one-hot for labels).
- ``mse``: L = (1/(m·k)) Σ (a - y)², no ½ (the Keras / PyTorch convention), any output.

Every loss has an output delta of the form (a - y)·s: for the two cross-entropies paired
with their activation it is dL/dz itself (the fused delta, see ``Loss.fused_activation``),
for mse it is dL/da = 2(a - y)/(m·k), still to be multiplied by g'(z). ``delta_scale``
gives s, so the 1/m of the primer's dW = (1/m) dZ·a_prevᵀ is already inside the delta.

Values are computed from the logits z where that is more stable: log a and log(1 - a)
would be log(0) once a sigmoid or softmax saturates, while the log-sum-exp forms below
stay finite and exact for any finite z.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.activations import row_max, row_sum
from app.engine.errors import ConfigError

Array = npt.NDArray[np.floating[Any]]


def binary_crossentropy(z: Array, a: Array, y: Array) -> float:
    """Mean BCE from logits: max(z, 0) - z·y + log(1 + e^-|z|), which equals
    -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)) without ever forming log(0)."""
    per_element = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return float(np.mean(per_element))


def categorical_crossentropy(z: Array, a: Array, y: Array) -> float:
    """Mean over rows of -Σ y log softmax(z) = logsumexp(z)·Σ y - Σ y·z (a is not used)."""
    top = row_max(z)
    log_sum_exp = top + np.log(row_sum(np.exp(z - top)))
    per_row = log_sum_exp[:, 0] * row_sum(y)[:, 0] - np.einsum("ij,ij->i", y, z)
    return float(np.mean(per_row))


def mse(z: Array, a: Array, y: Array) -> float:
    """Mean of (a - y)² over all elements."""
    diff = a - y
    return float(np.mean(diff * diff))


@dataclass(frozen=True)
class Loss:
    """A loss: its value, the scale of its output delta, and what it may sit on."""

    name: str
    value: Callable[[Array, Array, Array], float]  # (z, a, y) -> mean loss
    delta_scale: Callable[[int, int], float]  # (m, k) -> s in delta = (a - y)·s
    fused_activation: str | None  # with this output activation, (a - y)·s is dL/dz
    output_activations: frozenset[str] | None  # None: any output activation
    task: str  # what training with this loss means: binary / multiclass / regression


LOSSES: dict[str, Loss] = {
    "binary_crossentropy": Loss(
        name="binary_crossentropy",
        value=binary_crossentropy,
        delta_scale=lambda m, k: 1.0 / (m * k),
        fused_activation="sigmoid",
        output_activations=frozenset({"sigmoid"}),
        task="binary",
    ),
    "categorical_crossentropy": Loss(
        name="categorical_crossentropy",
        value=categorical_crossentropy,
        delta_scale=lambda m, k: 1.0 / m,
        fused_activation="softmax",
        output_activations=frozenset({"softmax"}),
        task="multiclass",
    ),
    "mse": Loss(
        name="mse",
        value=mse,
        delta_scale=lambda m, k: 2.0 / (m * k),
        fused_activation=None,
        output_activations=None,
        task="regression",
    ),
}

# The loss used when none is given: it follows the output activation.
DEFAULT_LOSS = {"sigmoid": "binary_crossentropy", "softmax": "categorical_crossentropy"}
FALLBACK_LOSS = "mse"


def get(name: str, loc: tuple[str | int, ...] = ("loss",)) -> Loss:
    """The loss called ``name``; ConfigError listing the valid names if there is none."""
    if not isinstance(name, str) or name not in LOSSES:
        valid = ", ".join(LOSSES)
        raise ConfigError(f"unknown loss {name!r}; valid losses: {valid}", loc)
    return LOSSES[name]
