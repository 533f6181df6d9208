"""Feature checks and standardisation.

Standardisation maps each feature to zero mean and unit variance with statistics fitted
on the training split only: x' = (x - x_mean) / x_std, x_mean and x_std of shape (n[0],).
A constant feature (std 0) gets std 1, so it maps to 0 instead of dividing by zero. The
statistics are stored with the model and applied again at prediction.

Training never makes a standardised copy of the data: rows are gathered a block or a
batch at a time into a reused buffer (``gather``) and standardised there, so x itself
may be a read-only memory map of a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.errors import DataError

Array = npt.NDArray[np.floating[Any]]
Index = npt.NDArray[np.intp]
FIT_BLOCK_ELEMENTS = 1 << 20  # values widened to float64 at a time by Standardizer.fit (8 MiB)


def check_features(
    x: npt.ArrayLike, input_size: int, dtype: np.dtype[Any], name: str = "x"
) -> Array:
    """x as a C-contiguous (m, input_size) array of ``dtype``; DataError naming the first
    offending row / column for NaN or infinite values, wrong shapes or non-numbers."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{name} must be an array of numbers, got dtype {arr.dtype}", (name,))
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} must be real numbers, got dtype {arr.dtype}", (name,))
    if arr.ndim != 2 or arr.shape[1] != input_size:
        raise DataError(f"{name} must have shape (m, {input_size}), got {arr.shape}", (name,))
    if arr.shape[0] == 0:
        raise DataError(f"{name} has no rows", (name,))
    with np.errstate(over="ignore"):  # a float64 -> float32 overflow shows up as inf below
        out = np.ascontiguousarray(arr, dtype=dtype)
    # In blocks of rows: a mask of all of x would be a quarter of x's size again.
    rows = block_rows(input_size)
    for start in range(0, out.shape[0], rows):
        finite = np.isfinite(out[start : start + rows])
        if not finite.all():
            row, col = (int(i) for i in np.argwhere(~finite)[0])
            row += start
            raise DataError(f"{name}[{row}][{col}] is not a finite number", (name, row, col))
    return out


def block_rows(n: int) -> int:
    """Rows of n features per block when x is processed a block at a time (8 MiB as
    float64)."""
    return max(1, FIT_BLOCK_ELEMENTS // max(1, n))


def gather(x: Array, rows: Index | slice, out: Array, standardizer: Standardizer | None) -> Array:
    """x[rows] (k, n[0]) written into out[:k] and standardised there; returns out[:k].

    ``rows`` is an index array (any valid row numbers: ``np.take`` with mode="clip" writes
    straight into ``out``) or a slice. x is only read; out has x's dtype and is
    C-contiguous with at least k rows.
    """
    if isinstance(rows, slice):
        block = x[rows]
        dest = out[: block.shape[0]]
        dest[...] = block
    else:
        dest = out[: rows.shape[0]]
        np.take(x, rows, axis=0, out=dest, mode="clip")
    if standardizer is not None:
        standardizer.transform(dest, out=dest)
    return dest


@dataclass(frozen=True)
class Standardizer:
    """Per-feature statistics: mean (n[0],), std (n[0],), both in the network dtype."""

    mean: Array
    std: Array

    @classmethod
    def fit(cls, x: Array, rows: Index | None = None) -> Standardizer:
        """Statistics of the rows ``rows`` of x (m, n[0]) (all of them when None; an
        index array of row numbers otherwise), accumulated in float64 then cast to x's
        dtype.

        Two passes (the mean, then the squared deviations from it, as ``np.std`` does)
        over blocks of rows: only one block at a time is gathered and widened to float64,
        never all of x (a copy of x would double a worker's peak memory on large
        datasets; x may be a read-only memory map).
        """
        n = x.shape[1]
        m = x.shape[0] if rows is None else rows.shape[0]
        size = min(block_rows(n), m)
        narrow = np.empty((size, n), dtype=x.dtype)
        wide = np.empty((size, n), dtype=np.float64)

        def blocks() -> Iterator[Array]:
            for start in range(0, m, size):
                if rows is None:
                    yield x[start : start + size]
                else:
                    yield gather(x, rows[start : start + size], narrow, None)

        total = np.zeros(n, dtype=np.float64)
        for block in blocks():
            total += block.sum(axis=0, dtype=np.float64)
        mean = total / m
        squares = np.zeros(n, dtype=np.float64)
        for block in blocks():
            deviation = wide[: block.shape[0]]
            deviation[...] = block
            deviation -= mean
            squares += np.einsum("ij,ij->j", deviation, deviation)
        std = np.sqrt(squares / m)
        std[~(std > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0
        return cls(mean=mean.astype(x.dtype), std=std.astype(x.dtype))

    def transform(self, x: Array, out: Array | None = None) -> Array:
        """(x - mean) / std of x's dtype, (m, n[0]): a new array, or ``out`` (which may be
        x itself, to standardise an array the caller owns in place)."""
        result = np.subtract(x, self.mean, out=out, dtype=x.dtype)
        np.divide(result, self.std, out=result)
        return result
