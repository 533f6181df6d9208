"""Turn client-sent arrays into the stored dtypes, refusing what the engine cannot use.

Features become float32 ``(n, d)``, checked by the engine's one feature check; labels
become a 1-D int64 / float64 / bool / unicode array or a 2-D float64 array. Each refusal
names where it is (``loc``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.errors import DataError, InputWidthError
from app.engine.preprocessing import check_features
from app.services import jsoncodec
from app.services.errors import Invalid, Loc


def feature_matrix(
    x: Any, loc: Loc, *, width: int | None = None, whole_error_type: str | None = None
) -> np.ndarray:
    """Rows of real numbers -> float32 ``(n, d)``, ``d == width`` when given: the engine's
    :func:`~app.engine.preprocessing.check_features`, its refusal answered with a 422 at
    ``loc`` followed by where in x (row, or row and column). A wrong width is a
    ``shape_mismatch``; ``whole_error_type`` is the type of a refusal of x as a whole
    (not 2-D numbers, no rows), ``value_error`` when None."""
    try:
        return check_features(x, width, np.float32, loc=())
    except InputWidthError as exc:
        raise Invalid(exc.message, loc, error_type="shape_mismatch") from None
    except DataError as exc:
        error_type = None if exc.loc else whole_error_type
        raise Invalid(exc.message, (*loc, *exc.loc), error_type=error_type) from None


def _scalar_kind(value: Any) -> str:
    # bool before int: bool is an int subclass in Python.
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def label_array(y: Any, loc: Loc) -> np.ndarray:
    """Labels -> 1-D int64/float64/bool/unicode, or 2-D float64 for multi-output regression."""
    if isinstance(y, np.ndarray):
        return _label_ndarray(y, loc)
    values: Sequence[Any] = y
    if len(values) == 0:
        raise Invalid("no labels", loc)
    if isinstance(values[0], list | tuple):
        return _label_ndarray(np.asarray(_rectangular_rows(values, loc), dtype=np.float64), loc)
    kinds = {_scalar_kind(v) for v in values}
    if kinds == {"int", "float"}:
        kinds = {"float"}
    if len(kinds) != 1 or kinds - {"bool", "int", "float", "str"}:
        first = _scalar_kind(values[0])
        index = next(i for i, v in enumerate(values) if _scalar_kind(v) != first)
        raise Invalid(
            f"labels must all be of one type (got {sorted(kinds)}); label {index} differs "
            f"from label 0",
            (*loc, index),
        )
    dtypes: dict[str, type[np.generic]] = {
        "bool": np.bool_,
        "int": np.int64,
        "float": np.float64,
        "str": np.str_,
    }
    try:
        array: np.ndarray = np.asarray(values, dtype=dtypes[kinds.pop()])
    except (OverflowError, ValueError) as exc:
        raise Invalid(f"labels cannot be stored: {exc}", loc) from None
    return _label_ndarray(array, loc)


def _rectangular_rows(values: Sequence[Any], loc: Loc) -> Sequence[Any]:
    width = len(values[0])
    for i, row in enumerate(values):
        if not isinstance(row, list | tuple) or len(row) != width:
            raise Invalid(f"label row {i} does not have {width} values", (*loc, i))
    return values


def check_label_layout(
    dtype: np.dtype[Any], shape: tuple[int, ...], loc: Loc, *, max_itemsize: int | None = None
) -> None:
    """Labels are numbers, booleans or strings, (n,); or numbers, (n, k) with k >= 1.

    Needs only the dtype and shape, so an upload's ``y.npy`` is refused by its header
    before its data is read (``max_itemsize`` bounds what that read may hold per label);
    :func:`label_array` applies the same rule to every array it converts."""
    if dtype.kind not in "biufU" or (max_itemsize is not None and dtype.itemsize > max_itemsize):
        raise Invalid(f"labels must be numbers, booleans or strings, got dtype {dtype}", loc)
    if len(shape) not in (1, 2):
        raise Invalid(f"labels must be 1-D or 2-D, got shape {shape}", loc)
    if len(shape) == 2 and (dtype.kind == "U" or shape[1] == 0):
        raise Invalid("2-D labels must be numbers (multi-output regression)", loc)


def _label_ndarray(y: np.ndarray, loc: Loc) -> np.ndarray:
    check_label_layout(y.dtype, y.shape, loc)
    kind = y.dtype.kind
    if y.ndim == 2:
        y = y.astype(np.float64)
    elif kind in "iu":
        if kind == "u" and y.size and int(y.max()) > np.iinfo(np.int64).max:
            raise Invalid("integer labels must fit in int64", loc)
        y = y.astype(np.int64)
    elif kind == "f":
        y = y.astype(np.float64)
    if y.shape[0] == 0:
        raise Invalid("no labels", loc)
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        index = int(np.argwhere(~np.isfinite(y))[0][0])
        raise Invalid("labels must be finite (no NaN or inf)", (*loc, index))
    return y


BLOCK_BYTES = 8 * 1024**2  # a block's float64 copy: at most this much, whatever the width


def block_rows(row_items: int) -> int:
    """Rows per block when a row holds ``row_items`` values of up to 8 bytes (at least 1).

    Counted in bytes, not rows: 65,536 rows of MNIST's 784 features were a 411 MB float64
    block, twice over with its squared deviations (an API peak of 1 GB on a 188 MB upload).
    """
    return max(1, BLOCK_BYTES // (8 * max(1, row_items)))


def row_blocks(x: np.ndarray) -> Iterator[np.ndarray]:
    """``x`` (n, ...) in blocks of rows of at most :data:`BLOCK_BYTES` in float64."""
    rows = block_rows(int(np.prod(x.shape[1:], dtype=np.int64)))
    for start in range(0, x.shape[0], rows):
        yield x[start : start + rows]


def npy_row_blocks(path: Path, x: np.ndarray) -> Iterator[np.ndarray]:
    """The data of the ``.npy`` file at ``path`` in blocks of rows, *read* rather than
    memory-mapped (every page of a map that is touched counts in the process's RSS until
    it is unmapped). ``x`` is the file's memory map (``np.load(path, mmap_mode="r")``,
    C order), used for its dtype, shape and data offset only."""
    assert isinstance(x, np.memmap) and x.flags.c_contiguous
    width = int(np.prod(x.shape[1:], dtype=np.int64))
    rows = block_rows(width)
    with path.open("rb") as handle:
        handle.seek(x.offset)
        for start in range(0, x.shape[0], rows):
            count = min(rows, x.shape[0] - start)
            block = np.fromfile(handle, dtype=x.dtype, count=count * width)
            if block.size != count * width:
                raise ValueError(f"{path} ends before its {x.shape[0]} rows")
            yield block.reshape(count, *x.shape[1:])


def feature_stats(
    x: np.ndarray, blocks: Iterable[np.ndarray] | None = None
) -> dict[str, list[float]]:
    """Per-feature mean / std / min / max of ``x`` (n, d), computed in float64 over blocks
    of :data:`BLOCK_BYTES` (``blocks`` when given: x's rows in order, e.g. read from its
    file; so x is never copied whole) and given in the data's own precision (float32:
    shortest decimals, 6.8 and not 6.800000190734863)."""
    count = 0
    mean = m2 = low = high = np.zeros(0)
    for rows in row_blocks(x) if blocks is None else blocks:
        block = rows.astype(np.float64)
        n, block_mean = block.shape[0], block.mean(axis=0)
        block_m2 = ((block - block_mean) ** 2).sum(axis=0)
        if count == 0:
            mean, m2, low, high = block_mean, block_m2, block.min(axis=0), block.max(axis=0)
        else:  # Chan et al.'s pairwise update of the mean and the sum of squared deviations
            delta = block_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + block_m2 + delta**2 * (count * n / total)
            low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
        count += n
    precision = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    columns = {"mean": mean, "std": np.sqrt(m2 / count), "min": low, "max": high}
    return {name: jsoncodec.plain(values.astype(precision)) for name, values in columns.items()}


class ContentHash:
    """SHA-256 of arrays, each fed as its dtype and shape then its rows in C order, in
    blocks (the same digest as the whole arrays' bytes)."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def begin(self, array: np.ndarray) -> None:
        self._digest.update(f"{array.dtype.str}{array.shape}".encode())

    def update(self, block: np.ndarray) -> None:
        # A C-contiguous block is hashed through the buffer protocol: no copy.
        self._digest.update(np.ascontiguousarray(block).data)

    def passing(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``blocks`` unchanged, each hashed on its way."""
        for block in blocks:
            self.update(block)
            yield block

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
