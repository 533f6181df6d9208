"""Weight initialisation schemes, keyed by name; biases always start at zero.

- ``he``: W ~ N(0, 2 / n[l-1]) (He / Kaiming normal), for the relu family.
- ``xavier``: W ~ U(-r, r), r = sqrt(6 / (n[l-1] + n[l])) (Glorot uniform).
- ``auto``: he for relu / leaky_relu layers, xavier for every other layer.

Draws come from ``numpy.random.default_rng(seed)`` in float64, layer by layer, and are
then cast, so a seed gives the same network (up to rounding) in float32 and float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.activations import RELU_FAMILY
from app.engine.errors import ConfigError

Array = npt.NDArray[np.floating[Any]]
Initializer = Callable[[np.random.Generator, int, int], npt.NDArray[np.float64]]


def he(rng: np.random.Generator, n_out: int, n_in: int) -> npt.NDArray[np.float64]:
    """(n_out, n_in) draws from N(0, 2 / n_in)."""
    scale = float(np.sqrt(2.0 / n_in))
    return rng.standard_normal((n_out, n_in)) * scale


def xavier(rng: np.random.Generator, n_out: int, n_in: int) -> npt.NDArray[np.float64]:
    """(n_out, n_in) draws from U(-r, r) with r = sqrt(6 / (n_in + n_out))."""
    limit = float(np.sqrt(6.0 / (n_in + n_out)))
    return rng.uniform(-limit, limit, size=(n_out, n_in))


INITIALIZERS: dict[str, Initializer] = {"he": he, "xavier": xavier}
CHOICES = ("auto", *INITIALIZERS)


def check(name: object) -> str:
    """``name`` if it is a valid scheme; ConfigError listing the valid ones otherwise."""
    if not isinstance(name, str) or name not in CHOICES:
        raise ConfigError(f"unknown init {name!r}; valid inits: {', '.join(CHOICES)}", ("init",))
    return name


def scheme_for(name: str, activation: str) -> str:
    """The concrete scheme a layer with ``activation`` gets under ``name``."""
    if name != "auto":
        return name
    return "he" if activation in RELU_FAMILY else "xavier"


def initialize(
    weights: Sequence[Array],
    biases: Sequence[Array],
    activations: Sequence[str],
    name: str,
    seed: int,
) -> None:
    """Fill W[l] (n[l], n[l-1]) and zero b[l] (n[l],) in place, reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    for w, b, activation in zip(weights, biases, activations, strict=True):
        draw = INITIALIZERS[scheme_for(name, activation)]
        w[...] = draw(rng, w.shape[0], w.shape[1])
        b[...] = 0.0
