"""Targets: user labels <-> the arrays the loss compares outputs with.

The task follows the loss: binary_crossentropy on one sigmoid unit is ``binary``,
categorical_crossentropy on k softmax units is ``multiclass``, mse is ``regression``.

- binary: labels of any JSON scalar type (int, str, bool, float); the two distinct labels,
  sorted, are ``classes`` = [negative, positive] and map to targets 0 and 1.
- multiclass: labels as above, sorted into ``classes`` (one per softmax unit, in unit
  order) and one-hot encoded; or y already (m, k) probability rows, classes = [0..k-1].
- regression: real targets, (m,) for one output unit or (m, k) for k outputs.

Encoded targets are (m, k) arrays of the network dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import losses
from app.engine.errors import ConfigError, DataError

Array = npt.NDArray[np.floating[Any]]
TASKS = ("binary", "multiclass", "regression")


def task_of(loss: str) -> str:
    """binary / multiclass / regression for a network trained with ``loss``."""
    return losses.LOSSES[loss].task


def as_label_array(y: Any, name: str = "y") -> npt.NDArray[Any]:
    """y as an array; refuses Python lists that mix strings with numbers or hold nulls,
    which NumPy would otherwise silently turn into strings."""
    if isinstance(y, list | tuple):
        flat = [v for row in y for v in (row if isinstance(row, list | tuple) else [row])]
        if any(v is None for v in flat):
            raise DataError(f"{name} contains null; every label needs a value", (name,))
        has_str = any(isinstance(v, str) for v in flat)
        if has_str and not all(isinstance(v, str) for v in flat):
            raise DataError(
                f"{name} mixes strings and numbers; use one type for all labels", (name,)
            )
    arr = np.asarray(y)
    if arr.dtype == object:
        raise DataError(f"{name} must hold numbers, booleans or strings, not objects", (name,))
    if arr.ndim == 0 or arr.ndim > 2 or arr.size == 0:
        raise DataError(
            f"{name} must be a non-empty (m,) or (m, k) array, got shape {arr.shape}", (name,)
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} must be real numbers, got dtype {arr.dtype}", (name,))
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{name}[{row}] is not a finite number", (name, row))
    return arr


def _label_column(y: npt.NDArray[Any], name: str) -> npt.NDArray[Any]:
    if y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{name} must be one label per row, shape (m,), got {y.shape}", (name,))
    return y


def _codes(
    labels: npt.NDArray[Any], classes: list[Any] | None, name: str
) -> tuple[npt.NDArray[np.intp], list[Any]]:
    """Class index per row, and the classes (sorted unique labels unless given)."""
    unique, inverse = np.unique(labels, return_inverse=True)
    found = unique.tolist()
    if classes is None:
        return inverse.reshape(-1), found
    lookup = {value: index for index, value in enumerate(classes)}
    missing = [value for value in found if value not in lookup]
    if missing:
        raise DataError(
            f"{name} has label {missing[0]!r}, which is not one of the classes {classes}", (name,)
        )
    return np.asarray([lookup[value] for value in found], dtype=np.intp)[
        inverse.reshape(-1)
    ], classes


def encode(
    y: Any,
    task: str,
    output_size: int,
    dtype: np.dtype[Any],
    classes: list[Any] | None = None,
    name: str = "y",
) -> tuple[Array, list[Any] | None]:
    """(targets (m, output_size) of ``dtype``, classes) for raw targets ``y``.

    ``classes`` fixes the label order (a model being fine-tuned or resumed); otherwise it
    is fitted from y. DataError for targets that do not fit the task or the output layer.
    """
    arr = as_label_array(y, name)
    if task == "regression":
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise DataError(
                f"{name} must be numbers for regression (mse), got {arr.dtype}", (name,)
            )
        column = arr.reshape(-1, 1) if arr.ndim == 1 else arr
        if column.shape[1] != output_size:
            raise DataError(
                f"{name} has {column.shape[1]} target column(s) but the output layer "
                f"has {output_size} unit(s)",
                (name,),
            )
        return np.ascontiguousarray(column, dtype=dtype), None
    if task == "multiclass" and arr.ndim == 2 and arr.shape[1] == output_size and output_size > 1:
        return _probability_rows(arr, dtype, classes, name)
    codes, found = _codes(_label_column(arr, name), classes, name)
    wanted = 2 if task == "binary" else output_size
    if len(found) != wanted:
        layer = "one sigmoid unit (binary)" if task == "binary" else f"{output_size} softmax units"
        raise DataError(
            f"{name} has {len(found)} distinct label(s) {found[:10]} but the output layer, "
            f"{layer}, needs exactly {wanted}; change the output layer to match the classes",
            (name,),
        )
    if task == "binary":
        return codes.astype(dtype).reshape(-1, 1), found
    onehot = np.zeros((codes.size, output_size), dtype=dtype)
    onehot[np.arange(codes.size), codes] = 1.0
    return onehot, found


def _probability_rows(
    arr: npt.NDArray[Any], dtype: np.dtype[Any], classes: list[Any] | None, name: str
) -> tuple[Array, list[Any]]:
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(
            f"{name} as a 2-D array must hold class probabilities, got {arr.dtype}", (name,)
        )
    probs = np.asarray(arr, dtype=np.float64)
    if (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
        raise DataError(f"{name} rows must be class probabilities (>= 0, summing to 1)", (name,))
    return np.ascontiguousarray(probs, dtype=dtype), list(
        range(arr.shape[1])
    ) if classes is None else classes


def decode(outputs: npt.NDArray[Any], task: str, classes: list[Any] | None) -> list[Any]:
    """Original labels for classifier outputs (m, k): p > 0.5 for binary, argmax otherwise."""
    if task == "regression" or classes is None:
        raise ConfigError("a regression model has outputs, not labels", ("task",))
    out = np.asarray(outputs)
    if task == "binary":
        picks = (out.reshape(out.shape[0], -1)[:, 0] > 0.5).astype(np.intp)
    else:
        picks = np.argmax(out, axis=1)
    return [classes[int(i)] for i in picks]
