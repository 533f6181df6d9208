"""The parameter update after backward: L2 penalty, gradient clipping, optimizer step.

With the flat gradient g of the mean data loss (laid out like ``Network.params``):

1. L2 (l2 > 0): g_W += l2·W for every weight matrix — the gradient of the penalty
   (l2 / 2)·Σ_l ‖W[l]‖²_F; biases are not penalised. The weights are the first
   ``weight_count`` entries of the flat vector, so this is one slice, not L slices.
2. Clipping (clip_norm = c): if ‖g‖₂ > c, g ← g·c/‖g‖₂ (one global norm over all layers,
   penalty included).
3. The optimizer's step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.network import Network
from app.engine.optimizers import Optimizer

Array = npt.NDArray[np.floating[Any]]


class NonFiniteGradient(ArithmeticError):
    """The gradient norm is NaN or infinite (only computed when clipping)."""


def make_update(
    network: Network, grads: Array, optimizer: Optimizer, l2: float, clip_norm: float | None
) -> Callable[[], None]:
    """A no-argument function applying steps 1-3 to ``network.params`` from ``grads``.

    Without penalty and clipping it is the optimizer's step itself (no Python in between).
    """
    params, step = network.params, optimizer.step
    if not l2 and clip_norm is None:
        return functools.partial(step, params, grads)
    weights = params[: network.weight_count]
    d_weights = grads[: network.weight_count]
    decay = np.empty_like(weights)
    l2_array = np.array(l2, dtype=params.dtype)

    def update() -> None:
        if l2:
            np.multiply(weights, l2_array, out=decay)
            np.add(d_weights, decay, out=d_weights)  # g_W += l2·W
        if clip_norm is not None:
            norm = math.sqrt(float(np.dot(grads, grads)))
            if not math.isfinite(norm):
                raise NonFiniteGradient
            if norm > clip_norm:
                np.multiply(grads, clip_norm / norm, out=grads)
        step(params, grads)

    return update
