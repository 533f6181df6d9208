"""Feature checks and standardisation.

:func:`check_features` is the one check of "rows of real numbers, 2-D, finite, of the
right width": the engine's own inputs and its callers' (rows parsed from JSON, arrays
read from .npy or npz files) all go through it.

Standardisation maps each feature to zero mean and unit variance with statistics fitted
on the training split only: x' = (x - x_mean) / x_std, x_mean and x_std of shape (n[0],).
A constant feature (std 0) gets std 1, so it maps to 0 instead of dividing by zero. The
statistics are stored with the model and applied again at prediction.

Training never makes a standardised copy of large data: rows are gathered a block or a
batch at a time into a reused buffer (``gather``) and standardised there, so x itself
may be a read-only memory map of a file. Only training rows of at most
``epochrows.STAGE_BYTES`` are standardised once per run into a copy of their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.errors import DataError, InputWidthError

Array = npt.NDArray[np.floating[Any]]
Loc = tuple[str | int, ...]
Index = npt.NDArray[np.intp]
FIT_BLOCK_ELEMENTS = 1 << 20  # values widened to float64 at a time by Standardizer.fit (8 MiB)
_ROW_TYPES = (list, tuple, np.ndarray)
_NUMBER_TYPES = (int, float, np.integer, np.floating)


def check_features(
    x: Any, input_size: int | None, dtype: npt.DTypeLike, loc: Loc = ("x",)
) -> Array:
    """x as a C-contiguous (m, input_size) array of ``dtype``, m >= 1.

    ``x``: an array of integers or floats, or a sequence of equal-length rows of numbers
    (a parsed JSON body; converted through float64). ``input_size`` None: any width >= 1.
    Refusals are DataErrors at ``loc`` followed by where: ``(*loc, i)`` for row i of a
    sequence (ragged, empty, not a list), ``(*loc, i, j)`` for a value that is not a
    number or not finite in ``dtype`` (NaN, inf, or an overflow of it), ``loc`` for x as
    a whole (not 2-D numbers, no rows); an InputWidthError at ``loc`` for another width.
    """
    if isinstance(x, np.ndarray):
        arr = x
        if arr.dtype.kind not in "iuf":
            raise DataError(
                f"features must hold real numbers (integers or floats), got dtype {arr.dtype}",
                loc,
            )
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise DataError(
                "features must be 2-D (rows, features) with at least one row and one "
                f"feature, got shape {arr.shape}",
                loc,
            )
    else:
        arr = _rows_array(x, loc)
    if input_size is not None and arr.shape[1] != input_size:
        raise InputWidthError(
            f"rows have {arr.shape[1]} values, the network takes {input_size}", loc
        )
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow shows up as inf below
        out: Array = np.ascontiguousarray(arr, dtype=dtype)
    # In blocks of rows: a mask of all of x would be a quarter of x's size again.
    rows = block_rows(out.shape[1])
    for start in range(0, out.shape[0], rows):
        finite = np.isfinite(out[start : start + rows])
        if not finite.all():
            row, col = (int(i) for i in np.argwhere(~finite)[0])
            row += start
            raise DataError(
                f"values must be finite {out.dtype} numbers (no NaN, inf or overflow); "
                f"row {row}, column {col} is not",
                (*loc, row, col),
            )
    return out


def _rows_array(rows: Any, loc: Loc) -> npt.NDArray[np.float64]:
    """A sequence of rows as a (m, n) float64 array, m and n >= 1; DataError naming the
    first row or value at fault otherwise."""
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise _first_bad_row(rows, loc) from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise _first_bad_row(rows, loc)
    return arr


def _first_bad_row(rows: Any, loc: Loc) -> DataError:
    """Why ``rows`` is not a rectangular, non-empty sequence of rows of numbers, and where."""
    if not isinstance(rows, Sequence | np.ndarray) or isinstance(rows, str) or len(rows) == 0:
        return DataError("features must be a non-empty list of rows", loc)
    width = len(rows[0]) if isinstance(rows[0], _ROW_TYPES) else -1
    for i, row in enumerate(rows):
        if not isinstance(row, _ROW_TYPES) or len(row) == 0:
            return DataError("each row must be a non-empty list of numbers", (*loc, i))
        if len(row) != width:
            return DataError(f"row {i} has {len(row)} values, row 0 has {width}", (*loc, i))
        for j, value in enumerate(row):
            if not isinstance(value, _NUMBER_TYPES):
                return DataError(
                    f"values must be numbers, got {type(value).__name__}", (*loc, i, j)
                )
            if isinstance(value, int) and _overflows(value):
                return DataError(
                    f"row {i}, column {j} holds an integer too large for a float64",
                    (*loc, i, j),
                )
    return DataError("the rows hold a number too large for a float64", loc)


def _overflows(value: int) -> bool:
    """Whether an integer is beyond float64's range (float() would raise)."""
    try:
        float(value)
    except OverflowError:
        return True
    return False


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
