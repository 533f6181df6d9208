"""Activation functions g and their derivatives, in tables keyed by name.

``ACTIVATIONS[name](z, out)`` writes a = g(z) into ``out`` (which may be ``z`` itself).
``DERIVATIVES[name](a, da, out)`` writes dZ = dA * g'(z) into ``out``, computing g'
from the layer's *output* a = g(z), which the forward pass keeps anyway; ``out`` must not
alias ``a`` or ``da``. All arrays are (m, n) float32 or float64; nothing allocates an
array of that size, so the training loop can hand in preallocated buffers.

Everything is overflow-free for any finite z: sigmoid is computed as
0.5 + 0.5·tanh(z/2) (tanh saturates instead of overflowing like exp(-z) does), and
softmax subtracts the row maximum before exponentiating.

Constants are passed to ufuncs as 0-d arrays of the array's dtype: a Python float costs
about a microsecond per call to convert, which is a fifth of a training step on a small
network.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.errors import ConfigError

Array = npt.NDArray[np.floating[Any]]

LEAKY_SLOPE = 0.01


def _constants(value: float) -> dict[np.dtype[Any], Array]:
    return {np.dtype(t): np.array(value, dtype=t) for t in (np.float32, np.float64)}


_ZERO = _constants(0.0)
_HALF = _constants(0.5)
_ONE = _constants(1.0)
_SLOPE = _constants(LEAKY_SLOPE)
_ONE_MINUS_SLOPE = _constants(1.0 - LEAKY_SLOPE)


# --- forward: a = g(z) -------------------------------------------------------------


def sigmoid(z: Array, out: Array) -> None:
    """a = 1 / (1 + e^-z), evaluated as 0.5 + 0.5·tanh(z/2) so that no exp overflows."""
    half = _HALF[out.dtype]
    np.multiply(z, half, out=out)
    np.tanh(out, out=out)
    np.multiply(out, half, out=out)
    np.add(out, half, out=out)


def tanh(z: Array, out: Array) -> None:
    """a = tanh(z)."""
    np.tanh(z, out=out)


def relu(z: Array, out: Array) -> None:
    """a = max(z, 0)."""
    np.maximum(z, _ZERO[out.dtype], out=out)


def leaky_relu(z: Array, out: Array) -> None:
    """a = z for z > 0, 0.01·z otherwise (max(z, 0.01·z) as the slope is below 1)."""
    if out is z:
        np.maximum(z, np.multiply(z, _SLOPE[out.dtype]), out=out)
    else:
        np.multiply(z, _SLOPE[out.dtype], out=out)
        np.maximum(z, out, out=out)


@functools.lru_cache(maxsize=64)
def _row_starts(m: int, k: int) -> npt.NDArray[np.intp]:
    """Flat positions of the rows of a C-contiguous (m, k) array: 0, k, 2k, ... (m,)."""
    starts = np.arange(0, m * k, k, dtype=np.intp)
    starts.flags.writeable = False
    return starts


@functools.lru_cache(maxsize=8)
def _ones(k: int, dtype: np.dtype[Any]) -> Array:
    """A read-only vector of k ones, made once rather than at every row sum."""
    ones = np.ones(k, dtype=dtype)
    ones.flags.writeable = False
    return ones


def take_rows(z: Array, columns: npt.NDArray[np.intp]) -> Array:
    """z[i, columns[i]] for each row i of a C-contiguous z (m, k), as (m,); ``columns``
    is overwritten with the flat positions."""
    columns += _row_starts(*z.shape)
    return z.reshape(-1).take(columns)


def row_max(z: Array) -> Array:
    """max over each row of z (m, k), as (m, 1) (NaN for a row that holds one).

    NumPy's row-wise max reduction loops per row, which is slow for many short rows;
    ``argmax`` has a fast loop per row, so below 1024 rows the max is read back at the
    argmax (3-4x faster for 32-1150 rows of 10); above it a pass per column is faster.
    """
    m, k = z.shape
    if m >= 1024 and k <= 32:
        top = z[:, :1].copy()
        for j in range(1, k):
            np.maximum(top, z[:, j : j + 1], out=top)
        return top
    if z.flags.c_contiguous:
        return take_rows(z, z.argmax(axis=1)).reshape(m, 1)
    return np.maximum.reduce(z, axis=1, keepdims=True)


def row_sum(z: Array) -> Array:
    """Σ over each row of z (m, k), as (m, 1): one matrix-vector product with ones."""
    sums: Array = np.dot(z, _ones(z.shape[1], z.dtype))
    return sums.reshape(-1, 1)


def softmax(z: Array, out: Array) -> None:
    """a_i = e^(z_i - max z) / sum_j e^(z_j - max z), row by row (the max keeps exp <= 1)."""
    if z.shape[0] == 1 and z.flags.c_contiguous and out.flags.c_contiguous:
        # One row (a single prediction): scalar reductions and scalar broadcasts over the
        # flat row cost half as much as the (1, 1)-column ones below (~6 µs against 12).
        flat_z, flat_out = z.reshape(-1), out.reshape(-1)
        np.subtract(flat_z, np.maximum.reduce(flat_z), out=flat_out)
        np.exp(flat_out, out=flat_out)
        np.divide(flat_out, np.add.reduce(flat_out), out=flat_out)
        return
    np.subtract(z, row_max(z), out=out)
    np.exp(out, out=out)
    np.divide(out, row_sum(out), out=out)


def linear(z: Array, out: Array) -> None:
    """a = z."""
    if out is not z:
        np.copyto(out, z)


# --- backward: dZ = dA * g'(z), with g' written in terms of a = g(z) ----------------


def sigmoid_derivative(a: Array, da: Array, out: Array) -> None:
    """g'(z) = a (1 - a)."""
    np.subtract(_ONE[out.dtype], a, out=out)
    np.multiply(out, a, out=out)
    np.multiply(out, da, out=out)


def tanh_derivative(a: Array, da: Array, out: Array) -> None:
    """g'(z) = 1 - a²."""
    np.multiply(a, a, out=out)
    np.subtract(_ONE[out.dtype], out, out=out)
    np.multiply(out, da, out=out)


def relu_derivative(a: Array, da: Array, out: Array) -> None:
    """g'(z) = 1 for z > 0 else 0; a >= 0, so sign(a) is exactly that 0/1 mask."""
    np.sign(a, out=out)
    np.multiply(out, da, out=out)


def leaky_relu_derivative(a: Array, da: Array, out: Array) -> None:
    """g'(z) = 1 for z > 0 else 0.01 (a has the sign of z)."""
    np.greater(a, _ZERO[out.dtype], out=out)  # 1.0 / 0.0
    np.multiply(out, _ONE_MINUS_SLOPE[out.dtype], out=out)
    np.add(out, _SLOPE[out.dtype], out=out)
    np.multiply(out, da, out=out)


def softmax_derivative(a: Array, da: Array, out: Array) -> None:
    """dZ = a ⊙ (dA - Σ_j dA_j a_j): the softmax Jacobian-vector product, row by row.

    Only needed for softmax with a loss other than categorical cross-entropy (mse); with
    cross-entropy the output layer uses the fused delta a - y instead.
    """
    np.multiply(da, a, out=out)
    row_dot = np.add.reduce(out, axis=1, keepdims=True)
    np.subtract(da, row_dot, out=out)
    np.multiply(out, a, out=out)


def linear_derivative(a: Array, da: Array, out: Array) -> None:
    """g'(z) = 1."""
    np.copyto(out, da)


Forward = Callable[[Array, Array], None]
Derivative = Callable[[Array, Array, Array], None]

ACTIVATIONS: dict[str, Forward] = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "softmax": softmax,
    "linear": linear,
}

DERIVATIVES: dict[str, Derivative] = {
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
    "softmax": softmax_derivative,
    "linear": linear_derivative,
}

# Activations whose He initialisation keeps the forward variance (init="auto").
RELU_FAMILY = frozenset({"relu", "leaky_relu"})


def get(name: str, loc: tuple[str | int, ...] = ("activation",)) -> tuple[Forward, Derivative]:
    """The (forward, derivative) pair for ``name``; ConfigError listing valid names if unknown."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        valid = ", ".join(ACTIVATIONS)
        raise ConfigError(f"unknown activation {name!r}; valid activations: {valid}", loc)
    return ACTIVATIONS[name], DERIVATIVES[name]
