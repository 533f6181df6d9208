"""Per-epoch metrics from logits, outputs and encoded targets, all (m, k).

- every task: ``loss`` (the loss's own mean, without the L2 penalty);
- classifiers: ``accuracy``, the share of rows whose predicted label is right (p > 0.5
  for one sigmoid unit, argmax otherwise — the same rule as ``Model.labels``);
- regression: ``mae`` (mean |a - y| over all elements) and ``r2`` (coefficient of
  determination per output column, averaged over columns; a constant column scores 1 if
  predicted exactly and 0 otherwise).
"""

from __future__ import annotations

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
