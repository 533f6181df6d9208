"""Metrics of a model's predictions on labelled data, as ``sklearn.metrics`` defines them,
in NumPy alone (tests/engine/evaluation_reference.json holds scikit-learn's values).

Classifiers take ``true`` (n,) class indices into the model's ``classes`` and ``proba``
(n, k) class probabilities (a binary model's one sigmoid unit p becomes [1 - p, p]);
regression takes ``y`` and ``pred``, both (n, t) floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.errors import DataError

Floats = npt.NDArray[np.floating[Any]]
Ints = npt.NDArray[np.integer[Any]]
ROC_POINTS = 200  # at most this many (fpr, tpr) points of a binary model's ROC curve


def class_codes(labels: npt.NDArray[Any], classes: Sequence[Any], name: str = "y") -> Ints:
    """(n,) index into ``classes`` of each label in ``labels`` (n,); DataError naming every
    label that is not one of the classes."""
    unique, inverse = np.unique(labels, return_inverse=True)
    lookup = {value: index for index, value in enumerate(classes)}
    found = unique.tolist()
    unseen = [value for value in found if value not in lookup]
    if unseen:
        shown = ", ".join(repr(v) for v in unseen[:20]) + (" ..." if len(unseen) > 20 else "")
        raise DataError(
            f"{name} has {len(unseen)} label(s) the model never saw: {shown}; "
            f"its classes are {list(classes)}",
            (name,),
        )
    codes = np.asarray([lookup[value] for value in found], dtype=np.intp)
    return codes[inverse.reshape(-1)]


def class_probabilities(outputs: Floats) -> Floats:
    """(n, k) probabilities from a classifier's outputs, in their dtype: (n, 1) sigmoid p
    becomes [1 - p, p]."""
    return np.hstack([1 - outputs, outputs]) if outputs.shape[1] == 1 else outputs


def predicted_codes(outputs: Floats) -> Ints:
    """(n,) predicted class index: p > 0.5 for one sigmoid unit, argmax otherwise (the
    rule of ``Model.labels``)."""
    picks: Ints
    if outputs.shape[1] == 1:
        picks = (outputs[:, 0] > 0.5).astype(np.intp)
    else:
        picks = np.argmax(outputs, axis=1).astype(np.intp)
    return picks


def confusion_matrix(true: Ints, pred: Ints, k: int) -> Ints:
    """(k, k) counts: row = true class, column = predicted class."""
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    return counts


def precision_recall_f1(cm: Ints) -> tuple[Floats, Floats, Floats, Ints]:
    """Per class (k,): precision, recall, f1 and support from a confusion matrix; a ratio
    with a zero denominator is 0 (scikit-learn's zero_division default)."""
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return precision, recall, f1, support


def log_loss(true: Ints, proba: Floats) -> float:
    """Mean -log p(true class) of ``proba`` (n, k). As scikit-learn (1.9): probabilities
    clipped to [eps, 1 - eps] with eps the machine epsilon of their dtype (float32 for a
    float32 model), not renormalised; the logs and their mean are taken in float64."""
    eps = np.finfo(proba.dtype).eps
    clipped = np.clip(proba, eps, 1 - eps)
    picked = clipped[np.arange(true.size), true].astype(np.float64)
    return float(-np.mean(np.log(picked)))


def _average_ranks(scores: Floats) -> Floats:
    """1-based ranks of ``scores`` (n,), tied scores sharing the mean of their ranks."""
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]  # each run of ties is [start, end)
    mean_rank = (starts + 1 + ends) / 2.0  # mean of start+1 .. end
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def binary_auc(positive: npt.NDArray[np.bool_], scores: Floats) -> float | None:
    """Area under the ROC curve of ``scores`` (n,) for ``positive`` (n,): the Mann-Whitney
    U / (n_pos n_neg) with average ranks for ties, which equals the trapezoidal area that
    scikit-learn's roc_auc_score computes; None when only one class is present."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = float(_average_ranks(scores.astype(np.float64))[positive].sum())
    u = rank_sum - n_pos * (n_pos + 1) / 2.0  # pairs (pos, neg) ordered right, ties half
    return u / (n_pos * n_neg)


def roc_auc(true: Ints, proba: Floats) -> float | None:
    """Binary: AUC of class 1's probability; multiclass: the mean of each class's
    one-vs-rest AUC (scikit-learn's multi_class="ovr", average="macro"). None when a
    class has no rows or every row (the AUC is undefined)."""
    k = proba.shape[1]
    if k == 2:
        return binary_auc(true == 1, proba[:, 1])
    per_class = [binary_auc(true == c, proba[:, c]) for c in range(k)]
    if any(auc is None for auc in per_class):
        return None
    return float(np.mean([auc for auc in per_class if auc is not None]))


def roc_curve(
    positive: npt.NDArray[np.bool_], scores: Floats, max_points: int = ROC_POINTS
) -> tuple[Floats, Floats] | None:
    """(fpr, tpr), each (p,) with p <= max_points, from (0, 0) to (1, 1): one point per
    distinct score used as the threshold (score >= threshold is positive), evenly thinned
    to ``max_points`` keeping both ends. None when only one class is present."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-scores.astype(np.float64), kind="mergesort")
    ordered, hits = scores[order], positive[order]
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]
    tps = np.cumsum(hits)[last_of_tie]
    fps = np.cumsum(~hits)[last_of_tie]
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    if fpr.size > max_points:
        keep = np.unique(np.linspace(0, fpr.size - 1, max_points).round().astype(np.intp))
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr, tpr


def classifier_metrics(true: Ints, outputs: Floats, classes: Sequence[Any]) -> dict[str, Any]:
    """Every classifier metric of ``outputs`` (n, 1 or k) against ``true`` (n,) indices
    into ``classes``, as plain JSON values (see the API's ClassifierEvaluation)."""
    k = len(classes)
    proba = class_probabilities(outputs)
    cm = confusion_matrix(true, predicted_codes(outputs), k)
    precision, recall, f1, support = precision_recall_f1(cm)
    n = int(true.size)
    weights = support / n

    def average(weighting: Floats) -> dict[str, float]:
        return {
            "precision": float(precision @ weighting),
            "recall": float(recall @ weighting),
            "f1": float(f1 @ weighting),
        }

    result: dict[str, Any] = {
        "task": "binary" if outputs.shape[1] == 1 else "multiclass",
        "n_samples": n,
        "classes": list(classes),
        "accuracy": float(np.trace(cm) / n),
        "log_loss": log_loss(true, proba),
        "roc_auc": roc_auc(true, proba),
        "confusion_matrix": cm.tolist(),
        "per_class": [
            {
                "label": label,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(classes)
        ],
        "macro": average(np.full(k, 1.0 / k)),
        "weighted": average(weights),
    }
    if outputs.shape[1] == 1:
        curve = roc_curve(true == 1, proba[:, 1])
        result["roc_curve"] = (
            None
            if curve is None
            else {
                "fpr": curve[0].tolist(),
                "tpr": curve[1].tolist(),
            }
        )
    return result


class ScoresOverflow(DataError):
    """A regression score is not a finite float64 (errors whose squares overflow)."""


def regression_scores(y: Floats, pred: Floats) -> dict[str, Floats]:
    """Per target (t,): mse, rmse, mae and r2 of ``pred`` against ``y``, both (n, t). A
    target that never varies scores r2 1 when predicted exactly, else 0 (scikit-learn's
    force_finite)."""
    wide_y, wide_p = y.astype(np.float64), pred.astype(np.float64)
    error = wide_y - wide_p
    mse = np.mean(error**2, axis=0)
    residual = np.sum(error**2, axis=0)
    total = np.sum((wide_y - wide_y.mean(axis=0)) ** 2, axis=0)
    safe_total = np.where(total > 0, total, 1.0)
    r2 = np.where(total > 0, 1.0 - residual / safe_total, np.where(residual > 0, 0.0, 1.0))
    return {"mse": mse, "rmse": np.sqrt(mse), "mae": np.mean(np.abs(error), axis=0), "r2": r2}


def regression_metrics(y: Floats, pred: Floats) -> dict[str, Any]:
    """mse, rmse, mae, r2 averaged uniformly over targets (rmse: the mean of each target's
    rmse, as scikit-learn's root_mean_squared_error), and ``per_target``."""
    if y.shape != pred.shape:
        raise DataError(f"y has shape {y.shape} but the predictions {pred.shape}", ("y",))
    names = ("mse", "rmse", "mae", "r2")
    with np.errstate(over="ignore", invalid="ignore"):
        scores = regression_scores(y, pred)
        means = {name: float(np.mean(scores[name])) for name in names}  # may overflow too
    broken = sorted({j for name in names for j in np.flatnonzero(~np.isfinite(scores[name]))})
    if broken or not all(math.isfinite(value) for value in means.values()):
        # squares (or their average over targets) past float64's range: no score to give,
        # rather than a null or an inf
        which = (
            "target(s) "
            + ", ".join(str(j) for j in broken[:10])
            + (" ..." if len(broken) > 10 else "")
            if broken
            else "the targets together"
        )
        raise ScoresOverflow(
            f"the scores of {which} are too large to score in float64: the errors' squares, "
            "or r2's ratio of them to the targets' variance, overflow (largest |y| "
            f"{float(np.max(np.abs(y))):.3g}, largest |prediction| "
            f"{float(np.max(np.abs(pred))):.3g}); rescale the targets",
            ("y",),
        )
    return {
        "task": "regression",
        "n_samples": int(y.shape[0]),
        **means,
        "per_target": [
            {"target": j, **{name: float(scores[name][j]) for name in names}}
            for j in range(y.shape[1])
        ],
    }


def sample_pairs(y: Floats, pred: Floats, max_points: int, seed: int = 0) -> dict[str, Any]:
    """Up to ``max_points`` rows of (actual, predicted), both (p, t), drawn without
    replacement (all rows, in order, when there are few): the regression scatter plot."""
    n = y.shape[0]
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    return {
        "actual": y[rows].astype(np.float64).tolist(),
        "predicted": pred[rows].astype(np.float64).tolist(),
    }
