"""Regenerate ``evaluation_reference.json``: scikit-learn's metrics on fixed predictions,
so that tests/engine/test_evaluation.py checks app/engine/evaluation.py without
scikit-learn installed (not collected by pytest: its name does not start with test_).

How the stored file was made (2026-12-01): scikit-learn 1.9.1 and numpy 2.4.6 on Python
3.11, in the project's virtual environment (scikit-learn is in the ``bench`` extra):

    pip install 'scikit-learn>=1.4'
    python tests/engine/make_evaluation_reference.py

Each case stores its inputs (so the test does not depend on a random generator) and the
values scikit-learn computes from them. Classifier inputs: ``true`` (n,) class indices
and ``outputs`` (n, 1) sigmoid probabilities or (n, k) softmax rows, in ``dtype``;
probabilities are drawn coarse so that tied scores occur (the AUC's tie rule) and some
are exactly 0 or 1 (log loss clipping). Regression: ``y`` and ``pred`` (n, t).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20261201
OUT = Path(__file__).with_name("evaluation_reference.json")


def _binary(rng: np.random.Generator, n: int, dtype: str) -> dict[str, Any]:
    true = rng.integers(0, 2, n)
    # Scores that lean toward the truth, on a 0.1 grid (ties), clipped into [0, 1].
    p = np.clip(np.round(0.5 + 0.35 * (2 * true - 1) + rng.normal(0, 0.3, n), 1), 0, 1)
    return {"kind": "classifier", "dtype": dtype, "true": true, "outputs": p.reshape(-1, 1)}


def _multiclass(rng: np.random.Generator, n: int, k: int, dtype: str) -> dict[str, Any]:
    true = rng.integers(0, k, n)
    logits = rng.integers(-2, 3, (n, k)).astype(np.float64)  # integer logits: tied rows
    logits[np.arange(n), true] += rng.integers(0, 3, n)
    logits[:, k - 1] -= 8.0  # the last class is hardly ever predicted (zero division)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba = (e / e.sum(axis=1, keepdims=True)).astype(dtype)
    return {"kind": "classifier", "dtype": dtype, "true": true, "outputs": proba}


def _regression(rng: np.random.Generator, n: int, t: int) -> dict[str, Any]:
    y = rng.normal(0, 2, (n, t))
    pred = y + rng.normal(0, 0.7, (n, t))
    if t > 1:
        y[:, 1] = 3.0  # a constant target: r2 is 0 unless predicted exactly
    return {"kind": "regression", "dtype": "float64", "y": y, "pred": pred}


def _or_none(compute: Any) -> Any:
    try:
        return compute()
    except ValueError:  # scikit-learn refuses an undefined AUC
        return None


def _classifier_reference(case: dict[str, Any]) -> dict[str, Any]:
    from sklearn import metrics

    true = case["true"]
    outputs = np.asarray(case["outputs"], dtype=case["dtype"])
    k = max(2, outputs.shape[1])
    labels = list(range(k))
    if outputs.shape[1] == 1:
        scores, predicted = outputs[:, 0], (outputs[:, 0] > 0.5).astype(int)
        auc = _or_none(lambda: metrics.roc_auc_score(true, scores))
        fpr, tpr, _ = metrics.roc_curve(true, scores, drop_intermediate=False)
        curve: dict[str, Any] | None = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    else:
        scores, predicted = outputs, np.argmax(outputs, axis=1)
        auc = _or_none(
            lambda: metrics.roc_auc_score(
                true, scores, multi_class="ovr", average="macro", labels=labels
            )
        )
        curve = None
    per = metrics.precision_recall_fscore_support(
        true, predicted, labels=labels, average=None, zero_division=0
    )

    def average(kind: str) -> dict[str, float]:
        p, r, f, _ = metrics.precision_recall_fscore_support(
            true, predicted, labels=labels, average=kind, zero_division=0
        )
        return {"precision": float(p), "recall": float(r), "f1": float(f)}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 rows sum to 1 only within float32
        loss = metrics.log_loss(true, scores, labels=labels)
    return {
        "accuracy": metrics.accuracy_score(true, predicted),
        "log_loss": loss,
        "roc_auc": auc,
        "roc_curve": curve,
        "confusion_matrix": metrics.confusion_matrix(true, predicted, labels=labels).tolist(),
        "precision": per[0].tolist(),
        "recall": per[1].tolist(),
        "f1": per[2].tolist(),
        "support": per[3].tolist(),
        "macro": average("macro"),
        "weighted": average("weighted"),
    }


def _regression_reference(case: dict[str, Any]) -> dict[str, Any]:
    from sklearn import metrics

    y, pred = case["y"], case["pred"]
    functions = {
        "mse": metrics.mean_squared_error,
        "rmse": metrics.root_mean_squared_error,
        "mae": metrics.mean_absolute_error,
        "r2": metrics.r2_score,
    }
    result: dict[str, Any] = {}
    for name, function in functions.items():
        result[name] = float(function(y, pred))  # multioutput="uniform_average"
        result[f"{name}_per_target"] = function(y, pred, multioutput="raw_values").tolist()
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).tolist() if value.dtype.kind == "f" else value.tolist()
    return value


def main() -> None:
    rng = np.random.default_rng(SEED)
    cases = {
        "binary_float64": _binary(rng, 60, "float64"),
        "binary_float32": _binary(rng, 45, "float32"),
        "multiclass_float64": _multiclass(rng, 90, 4, "float64"),
        "multiclass_float32": _multiclass(rng, 70, 3, "float32"),
        "regression_one_target": _regression(rng, 50, 1),
        "regression_three_targets": _regression(rng, 40, 3),
    }
    stored = {}
    for name, case in cases.items():
        if case["kind"] == "classifier":
            case["outputs"] = np.asarray(case["outputs"], dtype=case["dtype"])
            reference = _classifier_reference(case)
        else:
            reference = _regression_reference(case)
        stored[name] = {key: _plain(value) for key, value in case.items()}
        stored[name]["reference"] = reference
    OUT.write_text(json.dumps(stored) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
