"""Per-epoch metrics from logits, outputs and encoded targets, all (m, k).

- every task: ``loss`` (the loss's own mean, without the L2 penalty);
- classifiers: ``accuracy``, the share of rows whose predicted label is right (p > 0.5
  for one sigmoid unit, argmax otherwise — the same rule as ``Model.labels``);
- regression: ``mae`` (mean |a - y| over all elements) and ``r2`` (coefficient of
  determination per output column, averaged over columns; a constant column scores 1 if
  predicted exactly and 0 otherwise).

``LabelScores`` gives a softmax classifier's loss and accuracy from its logits and the
class numbers of one-hot targets: the same values as ``evaluate``, in fewer passes over
the logits (one argmax serves the accuracy and the log-sum-exp's row maximum) and without
allocating, for the epoch ends of a training run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import losses

Array = npt.NDArray[np.floating[Any]]


def accuracy(a: Array, y: Array) -> float:
    """Share of rows classified right."""
    if a.shape[1] == 1:
        return float(np.mean((a[:, 0] > 0.5) == (y[:, 0] > 0.5)))
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(y, axis=1)))


def mae(a: Array, y: Array) -> float:
    """Mean absolute error over all elements."""
    return float(np.mean(np.abs(a - y)))


def r2(a: Array, y: Array) -> float:
    """Mean over output columns of 1 - Σ(y - a)² / Σ(y - ȳ)²."""
    wide_y, wide_a = y.astype(np.float64), a.astype(np.float64)
    residual = np.sum((wide_y - wide_a) ** 2, axis=0)
    total = np.sum((wide_y - wide_y.mean(axis=0)) ** 2, axis=0)
    safe_total = np.where(total > 0, total, 1.0)
    scores = np.where(total > 0, 1.0 - residual / safe_total, np.where(residual > 0, 0.0, 1.0))
    return float(np.mean(scores))


def in_precision(value: float, dtype: np.dtype[Any]) -> float:
    """``value``, computed in ``dtype``, as the float of its shortest decimal in that
    precision: a float32 loss shows as 0.25331 in JSON, not 0.2533099949359894."""
    return float(str(dtype.type(value)))


def evaluate(task: str, loss: str, z: Array, a: Array, y: Array) -> dict[str, float]:
    """{"loss", "accuracy"} for classifiers or {"loss", "mae", "r2"} for regression.

    The loss and mae are means in the arrays' dtype, given in its precision; accuracy and
    r2 are computed in float64."""
    dtype = np.result_type(z, a, y)
    result = {"loss": in_precision(losses.LOSSES[loss].value(z, a, y), dtype)}
    if task == "regression":
        result["mae"] = in_precision(mae(a, y), dtype)
        result["r2"] = r2(a, y)
    else:
        result["accuracy"] = accuracy(a, y)
    return result


def one_hot_codes(y: Array) -> npt.NDArray[np.intp] | None:
    """The class number of each row of y (m, k) when every row is one-hot, else None
    (rows of class probabilities)."""
    codes = y.argmax(axis=1)
    # Each row's largest value is 1 and there are m non-zeros: one per row.
    ones = y[np.arange(y.shape[0]), codes] == 1
    return codes if ones.all() and np.count_nonzero(y) == y.shape[0] else None


class LabelScores:
    """``evaluate``'s {"loss", "accuracy"} of softmax logits z (m, k) trained with
    categorical cross-entropy on one-hot targets, from their class numbers (m,), with
    the scratch buffers for m rows made once.

    For one-hot y the cross-entropy's Σ_j y_ij = 1 and Σ_j y_ij·z_ij = z[i, c_i], so the
    loss is mean_i(max_i + log Σ_j e^(z_ij - max_i) - z[i, c_i]), each step computed as
    ``losses.categorical_crossentropy`` computes it: the same float. Logits holding -inf
    (whose 0·(-inf) makes that loss NaN) or a non-finite result go through ``evaluate``.
    """

    def __init__(self, m: int, k: int, dtype: np.dtype[Any]) -> None:
        self.columns = np.empty(m, dtype=np.intp)  # argmax, then its flat positions
        self.positions = np.empty(m, dtype=np.intp)  # flat positions of the labels
        self.hits = np.empty(m, dtype=bool)
        self.top = np.empty(m, dtype=dtype)
        self.picked = np.empty(m, dtype=dtype)
        self.per_row = np.empty(m, dtype=dtype)
        self.shifted = np.empty((m, k), dtype=dtype)
        self.starts = np.arange(0, m * k, k, dtype=np.intp)
        self.ones = np.ones(k, dtype=dtype)

    def __call__(
        self, z: Array, codes: npt.NDArray[np.intp], y: Array, a: Array | None = None
    ) -> dict[str, float]:
        """Scores of C-contiguous logits z (m, k) for class numbers ``codes`` (m,) of the
        one-hot targets y (m, k) (read only on the fallback path). The accuracy is that
        of argmax(a) when the outputs a (m, k) are given (the rule of ``Model.labels``;
        softmax's rounding can tie two close logits), else of argmax(z)."""
        flat, columns, top, per_row = z.reshape(-1), self.columns, self.top, self.per_row
        (z if a is None else a).argmax(axis=1, out=columns)
        np.equal(columns, codes, out=self.hits)
        right = np.count_nonzero(self.hits)
        if a is not None:
            z.argmax(axis=1, out=columns)
        np.add(columns, self.starts, out=columns)
        flat.take(columns, out=top)  # max_i = z[i, argmax_i]
        np.subtract(z, top.reshape(-1, 1), out=self.shifted)
        np.exp(self.shifted, out=self.shifted)
        np.dot(self.shifted, self.ones, out=per_row)  # Σ_j e^(z_ij - max_i)
        np.log(per_row, out=per_row)
        np.add(top, per_row, out=per_row)  # log-sum-exp
        np.add(codes, self.starts, out=self.positions)
        flat.take(self.positions, out=self.picked)
        np.subtract(per_row, self.picked, out=per_row)  # - log softmax(z)[i, c_i]
        # np.mean's arithmetic without its Python overhead: the sum in the dtype, divided
        # by the count in float64, rounded back to the dtype.
        loss = float(z.dtype.type(float(np.add.reduce(per_row)) / per_row.shape[0]))
        if not math.isfinite(loss) or np.minimum.reduce(flat) == -np.inf:
            return evaluate("multiclass", "categorical_crossentropy", z, z if a is None else a, y)
        return {"loss": in_precision(loss, z.dtype), "accuracy": right / z.shape[0]}
