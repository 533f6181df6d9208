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
MAX_LABEL_CHARS = 1000  # a string class label's longest (the API's Label type)


def fits_int64(label: int) -> bool:
    """Whether an integer label fits the int64 arrays integer labels are stored in."""
    return -(2**63) <= label < 2**63


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


def label_kind(arr: npt.NDArray[Any], name: str = "y") -> str:
    """categorical (1-D int / bool / str), continuous (1-D floats) or multi_output (2-D)."""
    if arr.ndim == 2:
        return "multi_output"
    if np.issubdtype(arr.dtype, np.floating):
        return "continuous"
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool or arr.dtype.kind == "U":
        return "categorical"
    raise DataError(f"labels of dtype {arr.dtype} are not supported", (name,))


def describe_labels(y: Any, name: str = "y") -> tuple[str, list[Any] | None]:
    """(label_kind, sorted distinct labels for categorical labels, else None)."""
    arr = as_label_array(y, name)
    kind = label_kind(arr, name)
    return kind, np.unique(arr).tolist() if kind == "categorical" else None


def text_label_problem(label: str) -> str | None:
    """Why a string cannot be a class label, or None: over MAX_LABEL_CHARS characters (the
    API reads no longer one back), or a NUL (NumPy's strings drop a trailing one, merging
    "a\\x00" into "a")."""
    if len(label) > MAX_LABEL_CHARS:
        return f"has {len(label)} characters; a label has at most {MAX_LABEL_CHARS}"
    if "\x00" in label:
        return "holds a NUL character"
    return None


def untrainable_output(task: str, output_size: int) -> str | None:
    """Why an output layer cannot be trained from labels at all, or None: binary
    cross-entropy over several sigmoid units (multi-label) has no label format here."""
    if task == "binary" and output_size != 1:
        return (
            f"binary_crossentropy over {output_size} sigmoid units (multi-label) cannot be "
            "trained from labels; use 1 sigmoid unit for two classes or softmax with one unit "
            "per class"
        )
    return None


def check_fit(
    task: str,
    output_size: int,
    *,
    kind: str,
    n_targets: int,
    classes: list[Any] | None,
    text: bool,
    name: str = "y",
) -> None:
    """DataError unless labels described this way can train an output layer for ``task``.

    The one statement of the rules, used by ``encode`` on arrays and by the service that
    checks a stored dataset at submit. kind: as ``label_kind``; n_targets: label columns;
    classes: the label map (fixed by a model, or the labels' distinct values) for
    categorical labels; text: the labels are strings.
    """
    if task == "regression":
        if text:
            raise DataError(f"{name} holds strings, but regression (mse) needs numbers", (name,))
        if n_targets != output_size:
            raise DataError(
                f"{name} has {n_targets} target column(s) but the output layer "
                f"has {output_size} unit(s)",
                (name,),
            )
        return
    if task == "multiclass" and kind == "multi_output" and n_targets == output_size > 1:
        return  # rows of class probabilities, one column per softmax unit
    if kind != "categorical" or classes is None:
        raise DataError(
            f"{name} must hold class labels (integers, booleans or strings) for a {task} "
            f"classifier, not {kind} values",
            (name,),
        )
    wanted = 2 if task == "binary" else output_size
    if len(classes) != wanted:
        layer = "one sigmoid unit (binary)" if task == "binary" else f"{output_size} softmax units"
        raise DataError(
            f"{name} has {len(classes)} distinct label(s) {classes[:10]} but the output "
            f"layer, {layer}, needs exactly {wanted}; change the output layer to match the "
            "classes",
            (name,),
        )


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
    is fitted from y. DataError for targets that do not fit the task or the output layer
    (``check_fit``'s rules).
    """
    arr = as_label_array(y, name)
    if task != "regression" and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # a column of class labels
    kind = label_kind(arr, name)
    n_targets = 1 if arr.ndim == 1 else arr.shape[1]
    codes, found = None, None
    if task != "regression" and kind == "categorical":
        codes, found = _codes(arr, classes, name)
    check_fit(
        task,
        output_size,
        kind=kind,
        n_targets=n_targets,
        classes=found,
        text=arr.dtype.kind == "U",
        name=name,
    )
    if task == "regression":
        column = arr.reshape(-1, 1) if arr.ndim == 1 else arr
        with np.errstate(over="ignore"):  # an overflow shows up as inf below
            targets = np.ascontiguousarray(column, dtype=dtype)
        if not np.isfinite(targets).all():  # finite in float64, not in the network's dtype
            row = int(np.argwhere(~np.isfinite(targets))[0][0])
            raise DataError(
                f"{name}[{row}] is beyond the range of the network's {np.dtype(dtype).name} "
                f"({np.abs(column[row]).max():.3g}); rescale the targets",
                (name, row),
            )
        return targets, None
    if codes is None:
        return _probability_rows(arr, dtype, classes, name)
    if task == "binary":
        return codes.astype(dtype).reshape(-1, 1), found
    onehot = np.zeros((codes.size, output_size), dtype=dtype)
    onehot[np.arange(codes.size), codes] = 1.0
    return onehot, found


def _probability_rows(
    arr: npt.NDArray[Any], dtype: np.dtype[Any], classes: list[Any] | None, name: str
) -> tuple[Array, list[Any]]:
    probs = probability_rows(arr, name)
    return np.ascontiguousarray(probs, dtype=dtype), list(
        range(arr.shape[1])
    ) if classes is None else classes


def probability_rows(arr: npt.NDArray[Any], name: str = "y") -> npt.NDArray[np.float64]:
    """(m, k) rows of class probabilities (one per softmax unit) as float64; DataError
    unless each is >= 0 and sums to 1."""
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        raise DataError(
            f"{name} as a 2-D array must hold class probabilities, got {arr.dtype}", (name,)
        )
    probs = np.asarray(arr, dtype=np.float64)
    if (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
        raise DataError(f"{name} rows must be class probabilities (>= 0, summing to 1)", (name,))
    return probs


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
