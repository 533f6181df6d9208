"""A model's outputs over many rows, in blocks, and their scores against a dataset's labels:
what an evaluation computes, in the request or in a worker.

The forward pass runs :data:`BLOCK_ROWS` rows at a time, so its activations stay bounded
whatever the number of rows; only the outputs (rows, output_size) are kept, which the AUC
needs whole. Rows whose outputs overflow raise :class:`NonFiniteOutputs` naming the first
one; labels that do not fit the model raise :class:`DataError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import evaluation, labels
from app.engine.errors import DataError
from app.engine.model import Model

BLOCK_ROWS = 4096  # rows per forward pass
SCATTER_POINTS = 500  # (actual, predicted) pairs kept for a regression model's plot


class NonFiniteOutputs(DataError):
    """The model's outputs overflow (NaN or inf) for ``row`` (0-based, in the dataset)."""

    def __init__(self, row: int) -> None:
        super().__init__(f"the model's outputs overflow for row {row} of the dataset")
        self.row = row


def forward_in_blocks(
    model: Model, x: np.ndarray, block_rows: int = BLOCK_ROWS, *, first_row: int = 0
) -> Any:
    """The model's outputs (n, output_size) for x (n, input_size), ``block_rows`` rows at
    a time; NonFiniteOutputs naming the first row whose outputs overflow (counted from
    ``first_row``: where x starts in the dataset)."""
    dtype = model.network.dtype
    if x.shape[0] <= block_rows:  # one block: its outputs as they come, no copy
        return _forward_block(model, x, first_row)
    outputs = np.empty((x.shape[0], model.network.output_size), dtype=dtype)
    for start in range(0, x.shape[0], block_rows):
        block = x[start : start + block_rows]
        outputs[start : start + block.shape[0]] = _forward_block(model, block, first_row + start)
    return outputs


def _forward_block(model: Model, x: np.ndarray, first_row: int) -> Any:
    """The outputs (k, output_size) of rows x (k, input_size) in one pass; NonFiniteOutputs
    naming the first row whose outputs overflow (x's rows count from ``first_row``)."""
    block = np.ascontiguousarray(x, dtype=model.network.dtype)
    with np.errstate(all="ignore"):
        out = model.predict_checked(block)
    if not np.isfinite(out).all():
        raise NonFiniteOutputs(first_row + int(np.argwhere(~np.isfinite(out))[0][0]))
    return out


def _targets(y: npt.NDArray[Any], width: int) -> np.ndarray:
    """Regression targets (n, width) float64 from y (n,) or (n, t); DataError otherwise."""
    if y.dtype.kind not in "biuf":
        raise DataError(f"y holds {y.dtype} values, but a regression model needs numbers")
    column = y.reshape(-1, 1) if y.ndim == 1 else y
    if column.shape[1] != width:
        raise DataError(
            f"y has {column.shape[1]} target column(s) but the model has {width} output(s)"
        )
    return column.astype(np.float64)


def score(model: Model, outputs: np.ndarray, y: npt.NDArray[Any]) -> dict[str, Any]:
    """The metrics of ``outputs`` (n, output_size) against the dataset's labels ``y``
    (DataError when they do not fit the model)."""
    if model.task == "regression":
        actual = _targets(y, outputs.shape[1])
        metrics = evaluation.regression_metrics(actual, outputs)
        metrics["points"] = evaluation.sample_pairs(actual, outputs, SCATTER_POINTS)
        return metrics
    return evaluation.classifier_metrics(_class_codes(model, y), outputs, model.classes or [])


def _class_codes(model: Model, y: npt.NDArray[Any]) -> np.ndarray:
    """(n,) indices into the classifier's classes of labels ``y`` (n,) or (n, 1), or of
    rows of class probabilities (n, k) for a k-class softmax model, in unit order as
    training takes them: each row's most probable class (the first of a tie); DataError
    naming the labels it never saw."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1:
        return evaluation.class_codes(y, model.classes or [], name="the dataset")
    k = len(model.classes or [])
    if model.task == "multiclass" and y.shape[1] == k:
        probs = labels.probability_rows(y, "the dataset's y")
        codes: np.ndarray = np.argmax(probs, axis=1).astype(np.intp)
        return codes
    raise DataError(
        f"y has {y.shape[1]} columns; evaluating a classifier needs one class label per row"
        + (f", or rows of {k} class probabilities" if model.task == "multiclass" else "")
    )


def check_labels(model: Model, y: npt.NDArray[Any]) -> None:
    """DataError unless the labels ``y`` fit the model (what :func:`score` would refuse,
    checked before the outputs are computed)."""
    if model.task == "regression":
        _targets(y, model.network.output_size)
    else:
        _class_codes(model, y)
