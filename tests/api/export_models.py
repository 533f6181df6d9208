"""Models to export, and what predict answers for them (shared by the export tests).

Each model is imported with random weights (large enough that every unit's input takes
both signs) through ``POST /v1/models/import``, with or without standardisation.
"""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from app.storage import tables
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import make_network

N_FEATURES = 3
# Every hidden activation, each after a layer whose outputs take both signs (a relu after
# a sigmoid would see only positive inputs and pass for the identity).
HIDDEN = [
    {"units": 6, "activation": "tanh"},
    {"units": 5, "activation": "relu"},
    {"units": 5, "activation": "linear"},
    {"units": 4, "activation": "leaky_relu"},
    {"units": 4, "activation": "sigmoid"},
]


@dataclass(frozen=True)
class Head:
    """An output layer and loss, the task they make, and the classes it gets."""

    name: str
    units: int
    activation: str
    loss: str
    classes: list[Any] | None


HEADS = [
    Head("binary", 1, "sigmoid", "binary_crossentropy", ["no", "yes"]),
    Head("multiclass", 3, "softmax", "categorical_crossentropy", ["cat", "dog", "eel"]),
    Head("mse-sigmoid", 1, "sigmoid", "mse", None),
    Head("mse-softmax", 3, "softmax", "mse", None),
    Head("mse-tanh", 2, "tanh", "mse", None),
    Head("mse-relu", 2, "relu", "mse", None),
    Head("mse-leaky_relu", 2, "leaky_relu", "mse", None),
    Head("mse-linear", 1, "linear", "mse", None),
    Head("mse-linear-multi", 4, "linear", "mse", None),
]
COMBINATIONS = [
    pytest.param(head, standardize, id=f"{head.name}-{'std' if standardize else 'raw'}")
    for head in HEADS
    for standardize in (True, False)
]


def task_of(head: Head) -> str:
    if head.loss == "mse":
        return "regression"
    return "binary" if head.loss == "binary_crossentropy" else "multiclass"


def random_arrays(
    network: dict[str, Any], standardize: bool, seed: int, dtype: Any = np.float32
) -> dict[str, np.ndarray]:
    """W1.., b1.. (and x_mean, x_std) drawn at random, in ``dtype``."""
    rng = np.random.default_rng(seed)
    sizes = [network["input_size"], *(layer["units"] for layer in network["layers"])]
    arrays: dict[str, np.ndarray] = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
        arrays[f"W{i}"] = (rng.normal(size=(n_out, n_in)) * 2.0 / np.sqrt(n_in)).astype(dtype)
        arrays[f"b{i}"] = rng.normal(scale=0.5, size=n_out).astype(dtype)
    # Centre the output layer on the rows' spread: every class (and sign) is reached.
    last = len(sizes) - 1
    arrays[f"W{last}"] -= arrays[f"W{last}"].mean(axis=1, keepdims=True)
    arrays[f"b{last}"][...] = 0
    if standardize:
        arrays["x_mean"] = rng.normal(scale=5.0, size=sizes[0]).astype(dtype)
        arrays["x_std"] = rng.uniform(0.5, 4.0, size=sizes[0]).astype(dtype)
    return arrays


def import_random_model(
    client: ApiClient,
    layers: list[dict[str, Any]],
    *,
    loss: str,
    task: str,
    classes: list[Any] | None,
    standardize: bool,
    seed: int = 0,
    dtype: Any = np.float32,
) -> dict[str, Any]:
    """A model with random weights for a new network of ``layers``; the model's JSON."""
    network = make_network(client, input_size=N_FEATURES, layers=layers, loss=loss)
    engine = {k: network[k] for k in ("input_size", "layers", "loss", "init", "seed")}
    config = {
        "format": "backprop-mlp",
        "version": 1,
        "network": engine,
        "task": task,
        "classes": classes,
        "standardize": standardize,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **random_arrays(engine, standardize, seed, dtype))  # type: ignore[arg-type]
    response = client.post(
        "/v1/models/import",
        data={"network_id": network["id"], "config": json.dumps(config)},
        files={"file": ("w.npz", buffer.getvalue(), "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def import_head(client: ApiClient, head: Head, standardize: bool) -> dict[str, Any]:
    layers = [*HIDDEN, {"units": head.units, "activation": head.activation}]
    return import_random_model(
        client,
        layers,
        loss=head.loss,
        task=task_of(head),
        classes=head.classes,
        standardize=standardize,
    )


def random_rows(rows: int = 200, seed: int = 1, width: int = N_FEATURES) -> np.ndarray:
    """(rows, width) float32 inputs around the standardisation statistics' scale."""
    rng = np.random.default_rng(seed)
    return (rng.normal(scale=6.0, size=(rows, width))).astype(np.float32)


def predicted(client: ApiClient, model_id: str, x: np.ndarray) -> dict[str, Any]:
    """POST /predict's answer for x: outputs as a float64 array, labels or None."""
    response = client.post(f"/v1/models/{model_id}/predict", json={"x": x.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    return {"outputs": np.asarray(body["outputs"]), "labels": body.get("labels")}


def assert_close(actual: np.ndarray, expected: np.ndarray, rel: float) -> None:
    """|actual - expected| <= rel * max(1, |largest expected|), element by element."""
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    worst = float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max())
    assert worst <= rel * scale, (worst, scale)


def named_dataset(client: ApiClient, rows: int = 60, seed: int = 3) -> dict[str, Any]:
    """A CSV upload with feature names width, depth and string labels in / out: the rows
    are far from zero mean and unit variance, so standardisation matters."""
    rng = np.random.default_rng(seed)
    centred = rng.normal(size=(rows, 2)) * [1.0, 30.0]
    x = centred + np.array([5.0, -100.0])
    lines = ["width,depth,side"]
    lines += [
        f"{a!r},{b!r},{'in' if p * q > 0 else 'out'}"
        for (a, b), (p, q) in zip(x.tolist(), centred.tolist(), strict=True)
    ]
    response = client.post(
        "/v1/datasets/upload",
        data={"name": "shapes"},
        files={"file": ("shapes.csv", "\n".join(lines).encode(), "text/csv")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


BINARY_LAYERS = [{"units": 5, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]


def stored_binary_model(client: ApiClient, db: Database, classes: list[Any]) -> dict[str, Any]:
    """A binary model whose stored classes are ``classes``, which an import now refuses
    (booleans or floats mixed with integers), written as an import before those rules
    stored them; the model's JSON, read back."""
    model = import_random_model(
        client,
        BINARY_LAYERS,
        loss="binary_crossentropy",
        task="binary",
        classes=[0, 1],
        standardize=False,
    )
    config = {**model["config"], "classes": classes}
    with db.session() as session:
        session.execute(
            update(tables.Model).where(tables.Model.id == model["id"]).values(config=config)
        )
    return dict(client.get(f"/v1/models/{model['id']}").json())
