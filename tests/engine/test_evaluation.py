"""app/engine/evaluation.py against scikit-learn's values on the same predictions
(evaluation_reference.json, made by make_evaluation_reference.py), and its edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.engine import evaluation
from app.engine.errors import DataError

REFERENCE = json.loads(Path(__file__).with_name("evaluation_reference.json").read_text())
CLASSIFIERS = [name for name, case in REFERENCE.items() if case["kind"] == "classifier"]
REGRESSIONS = [name for name, case in REFERENCE.items() if case["kind"] == "regression"]
TOL = 1e-6


def close(ours: Any, theirs: Any) -> None:
    np.testing.assert_allclose(np.asarray(ours, dtype=float), theirs, rtol=0, atol=TOL)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_metrics_equal_scikit_learn(name: str) -> None:
    case = REFERENCE[name]
    ref = case["reference"]
    outputs = np.asarray(case["outputs"], dtype=case["dtype"])
    true = np.asarray(case["true"], dtype=np.intp)
    k = max(2, outputs.shape[1])
    classes = [f"c{i}" for i in range(k)]
    got = evaluation.classifier_metrics(true, outputs, classes)

    assert got["task"] == ("binary" if outputs.shape[1] == 1 else "multiclass")
    assert got["n_samples"] == true.size and got["classes"] == classes
    for metric in ("accuracy", "log_loss", "roc_auc"):
        close(got[metric], ref[metric])
    assert got["confusion_matrix"] == ref["confusion_matrix"]
    assert [c["label"] for c in got["per_class"]] == classes
    for metric in ("precision", "recall", "f1"):
        close([c[metric] for c in got["per_class"]], ref[metric])
        close(got["macro"][metric], ref["macro"][metric])
        close(got["weighted"][metric], ref["weighted"][metric])
    assert [c["support"] for c in got["per_class"]] == ref["support"]
    if ref["roc_curve"] is None:
        assert "roc_curve" not in got
    else:
        close(got["roc_curve"]["fpr"], ref["roc_curve"]["fpr"])
        close(got["roc_curve"]["tpr"], ref["roc_curve"]["tpr"])


def test_the_reference_cases_cover_ties_clipping_and_zero_division() -> None:
    binary = np.asarray(REFERENCE["binary_float64"]["outputs"])[:, 0]
    assert np.unique(binary).size < binary.size / 3  # many tied scores
    assert binary.min() == 0.0 and binary.max() == 1.0  # log(0) would be infinite
    multi = REFERENCE["multiclass_float64"]["reference"]
    assert 0.0 in multi["precision"]  # a class never predicted


@pytest.mark.parametrize("name", REGRESSIONS)
def test_regression_metrics_equal_scikit_learn(name: str) -> None:
    case = REFERENCE[name]
    ref = case["reference"]
    got = evaluation.regression_metrics(np.asarray(case["y"]), np.asarray(case["pred"]))
    assert got["task"] == "regression" and got["n_samples"] == len(case["y"])
    for metric in ("mse", "rmse", "mae", "r2"):
        close(got[metric], ref[metric])
        close([t[metric] for t in got["per_target"]], ref[f"{metric}_per_target"])
    assert [t["target"] for t in got["per_target"]] == list(range(len(case["y"][0])))


def test_auc_of_ranks_counts_ties_as_half() -> None:
    positive = np.array([True, False, True, False])
    # Pairs (pos, neg): (0.5, 0.5) tie -> 1/2, (0.5, 0.1) -> 1, (0.9, 0.5) -> 1, (0.9, 0.1) -> 1.
    scores = np.array([0.5, 0.5, 0.9, 0.1])
    assert evaluation.binary_auc(positive, scores) == pytest.approx(3.5 / 4)
    assert evaluation.binary_auc(np.ones(3, dtype=bool), np.arange(3.0)) is None


def test_auc_is_undefined_when_a_class_has_no_rows() -> None:
    true = np.array([0, 1, 0, 1])
    proba = np.full((4, 3), 1 / 3)
    assert evaluation.roc_auc(true, proba) is None
    got = evaluation.classifier_metrics(np.zeros(3, dtype=np.intp), np.full((3, 1), 0.2), [0, 1])
    assert got["roc_auc"] is None and got["roc_curve"] is None


def test_roc_curve_is_thinned_keeping_both_ends() -> None:
    rng = np.random.default_rng(0)
    positive = rng.random(5000) < 0.3
    fpr, tpr = evaluation.roc_curve(positive, rng.random(5000), max_points=200) or ((), ())
    assert len(fpr) == len(tpr) <= 200
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_class_codes_name_every_unseen_label() -> None:
    codes = evaluation.class_codes(np.array(["b", "a", "b"]), ["a", "b"])
    assert codes.tolist() == [1, 0, 1]
    with pytest.raises(DataError) as caught:
        evaluation.class_codes(np.array(["a", "z", "q", "a"]), ["a", "b"])
    assert "'q', 'z'" in caught.value.message and "2 label(s)" in caught.value.message


def test_sample_pairs_caps_the_scatter() -> None:
    y = np.arange(1000.0).reshape(-1, 1)
    pairs = evaluation.sample_pairs(y, y + 1, max_points=500)
    assert len(pairs["actual"]) == len(pairs["predicted"]) == 500
    assert all(p[0] == a[0] + 1 for a, p in zip(pairs["actual"], pairs["predicted"], strict=True))
    assert len(evaluation.sample_pairs(y[:10], y[:10], max_points=500)["actual"]) == 10


def test_regression_scores_past_float64_are_refused_not_inf() -> None:
    """A target whose squared errors overflow, and targets each finite whose average over
    targets is not (r2 of about -1.2e308 each), raise ScoresOverflow: no inf, no NaN."""
    with pytest.raises(evaluation.ScoresOverflow, match=r"target\(s\) 0\b"):
        evaluation.regression_metrics(np.array([[1e200], [0.0]]), np.zeros((2, 1)))
    # r2 = 1 - residual / total: total = 2c², residual = 2 - 2c·p... ≈ 2 with p = 1.
    c = float(np.sqrt(1 / 1.2e308))
    y = np.array([[c, c], [-c, -c]])
    per_target = evaluation.regression_scores(y, np.ones_like(y))["r2"]
    assert np.isfinite(per_target).all() and (per_target < -1e308).all()
    with pytest.raises(evaluation.ScoresOverflow, match="the targets together"):
        evaluation.regression_metrics(y, np.ones_like(y))
