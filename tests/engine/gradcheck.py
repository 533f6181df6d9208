"""Helpers for the gradient checks: random architectures and central differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.activations import ACTIVATIONS
from app.engine.network import Network

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "linear"]
OUTPUT_PAIRS = [
    ("sigmoid", "binary_crossentropy"),
    ("softmax", "categorical_crossentropy"),
    *[(act, "mse") for act in [*HIDDEN, "softmax"]],
]
KINK_MARGIN = 1e-3  # |z| below this in a relu-family layer could straddle the kink
Array = npt.NDArray[np.floating[Any]]


def pre_activations(net: Network, x: Array) -> list[tuple[str, Array]]:
    """(activation, z[l]) for every layer, computed independently of the engine's passes."""
    out: list[tuple[str, Array]] = []
    a = x
    for w, b, act in zip(net.weights, net.biases, net.activations, strict=True):
        z = a @ w.T + b
        out.append((act, z))
        a = np.empty_like(z)
        ACTIVATIONS[act](z, a)
    return out


def kink_free(net: Network, x: Array) -> bool:
    return all(
        np.min(np.abs(z)) > KINK_MARGIN
        for act, z in pre_activations(net, x)
        if act in ("relu", "leaky_relu")
    )


def targets(rng: np.random.Generator, loss: str, m: int, k: int) -> Array:
    if loss == "binary_crossentropy":
        return (rng.random((m, k)) > 0.5).astype(np.float64)
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, m)]
    return rng.standard_normal((m, k))


def random_case(seed: int) -> tuple[Network, Array, Array]:
    """A random float64 network (depth 1-4, widths 1-16) with kink-free inputs and targets."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 5))
    out_act, loss = OUTPUT_PAIRS[int(rng.integers(len(OUTPUT_PAIRS)))]
    k = int(rng.integers(2 if out_act == "softmax" else 1, 17))
    layers: list[dict[str, Any]] = [
        {"units": int(rng.integers(1, 17)), "activation": str(rng.choice(HIDDEN))}
        for _ in range(depth - 1)
    ]
    layers.append({"units": k, "activation": out_act})
    net = Network(int(rng.integers(1, 17)), layers, loss=loss, seed=seed, dtype=np.float64)
    m = int(rng.integers(1, 9))
    for _ in range(200):
        x = rng.standard_normal((m, net.input_size))
        if kink_free(net, x):
            return net, x, targets(rng, loss, m, k)
        m = max(1, m - 1)
    raise AssertionError(f"no kink-free input for seed {seed}")


def numerical_gradient(net: Network, x: Array, y: Array, h: float = 1e-5) -> Array:
    """Central differences (L(θ+h) - L(θ-h)) / 2h of the mean loss, flat like net.params."""
    grad = np.zeros_like(net.params)
    params = net.params
    for i in range(params.size):
        old = params[i]
        params[i] = old + h
        plus = net.loss_value(x, y)
        params[i] = old - h
        minus = net.loss_value(x, y)
        params[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def relative_error(numerical: Array, analytic: Array) -> float:
    """‖n - a‖ / (‖n‖ + ‖a‖); 0 when both vanish (a dead layer)."""
    denominator = np.linalg.norm(numerical) + np.linalg.norm(analytic)
    if denominator < 1e-12:
        return float(np.linalg.norm(numerical - analytic))
    return float(np.linalg.norm(numerical - analytic) / denominator)
