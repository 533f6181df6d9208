"""The submit-time check (services.fit, on a dataset's stored metadata) refuses exactly
the label arrays the engine's encode refuses when the job trains: one set of rules.

Only what metadata cannot show is left to training: whether 2-D rows for softmax units
really are probabilities (>= 0, summing to 1), so every 2-D case here holds such rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.engine import labels
from app.engine.errors import DataError
from app.engine.network import Network
from app.services.errors import Invalid
from app.services.fit import DATASET_LOC, check_labels_fit
from app.storage.tables import Dataset

LABELS: dict[str, Any] = {
    "two ints": np.array([0, 1, 0, 1]),
    "three ints": np.array([0, 1, 2, 0]),
    "two strings": np.array(["a", "b", "a", "b"]),
    "booleans": np.array([True, False, True, False]),
    "floats": np.array([0.5, 1.5, 2.5, 3.5]),
    "zero-one floats": np.array([0.0, 1.0, 0.0, 1.0]),
    "probability rows": np.array([[0.2, 0.8], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
    "three columns": np.full((4, 3), 1 / 3),
}
OUTPUTS = [(1, "sigmoid"), (2, "softmax"), (3, "softmax"), (1, "linear"), (2, "linear")]


def _dataset(y: Any) -> Dataset:
    kind, classes = labels.describe_labels(y)
    targets = 1 if y.ndim == 1 else y.shape[1]
    return Dataset(n_features=2, n_targets=targets, label_kind=kind, classes=classes)


@pytest.mark.parametrize("units_activation", OUTPUTS, ids=[f"{u} {a}" for u, a in OUTPUTS])
@pytest.mark.parametrize("case", list(LABELS))
def test_submit_refuses_what_training_would(case: str, units_activation: tuple[int, str]) -> None:
    units, activation = units_activation
    network = Network(2, [{"units": units, "activation": activation}])
    y = LABELS[case]
    try:
        labels.encode(y, labels.task_of(network.loss), units, np.dtype(np.float32))
        trains = True
    except DataError:
        trains = False
    try:
        check_labels_fit(network.get_config(), _dataset(y))
        submits = True
    except Invalid as exc:
        assert exc.loc == DATASET_LOC
        submits = False
    assert submits == trains
