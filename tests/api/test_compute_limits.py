"""Compute bounded by settings: predict in row blocks under BACKPROP_MAX_ACTIVATION_BYTES,
layer width (BACKPROP_MAX_LAYER_UNITS), a job's cost (BACKPROP_MAX_JOB_COST) and training
time (BACKPROP_MAX_JOB_SECONDS)."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import Settings
from app.engine.model import Model as EngineModel
from app.engine.network import Network as EngineNetwork
from app.jobs.worker import Worker
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import (
    XOR_NETWORK,
    Keys,
    MakeClient,
    make_dataset,
    make_network,
    submit,
)
from tests.weights import engine_config, export_npz


def _model(width: int) -> EngineModel:
    layers = [{"units": width, "activation": "relu"}, {"units": 3, "activation": "softmax"}]
    network = EngineNetwork(4, layers, loss="categorical_crossentropy", seed=1)
    return EngineModel(network, "multiclass", classes=["a", "b", "c"])


@pytest.mark.parametrize("limit", [1, 4 * 3 * 50 * 7, 10**9])
def test_blocked_forward_pass_gives_the_same_outputs(limit: int) -> None:
    model = _model(50)
    x = np.random.default_rng(0).normal(size=(101, 4)).astype(np.float32)
    whole = model.predict_checked(x)
    # Equal up to BLAS rounding (a one-row block may take a different kernel).
    np.testing.assert_allclose(model.predict_checked(x, limit), whole, rtol=1e-5, atol=1e-6)
    assert whole.shape == (101, 3)


def test_block_rows_keep_activations_under_the_limit() -> None:
    model = _model(1000)  # widest layer 1000 units, float32: 3 x 4,000 bytes per row
    assert model.block_rows(12_000 * 7) == 7
    assert model.block_rows(12_000 * 7 + 11_999) == 7
    assert model.block_rows(1) == 1  # one row at a time, never zero


def test_layer_wider_than_the_limit_is_refused(make_client: MakeClient, keys: Keys) -> None:
    wide_ok = make_client(keys.alice)
    network = make_network(
        wide_ok, layers=[{"units": 64, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]
    )
    narrow = make_client(keys.alice, max_layer_units=32)
    body = {
        **XOR_NETWORK,
        "layers": [{"units": 33, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
    }
    response = narrow.post("/v1/networks", json=body)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "layers", 0, "units"]
    assert "BACKPROP_MAX_LAYER_UNITS=32" in error["msg"]
    response = narrow.post("/v1/networks", json={**XOR_NETWORK, "input_size": 40})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "input_size"]
    response = narrow.post(
        "/v1/models/import",
        data={"network_id": network["id"]},
        files={"file": ("w.npz", export_npz(engine_config(network)), "application/octet-stream")},
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "network_id", "layers", 0, "units"]
    assert "BACKPROP_MAX_LAYER_UNITS=32" in error["msg"]


def test_job_cost_over_the_limit_is_413(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(keys.alice, max_job_cost=4 * 33 * 100)  # xor-net: 33 parameters
    network, dataset = make_network(client), make_dataset(client)
    submit(client, network, dataset, epochs=100)
    body = {"network_id": network["id"], "dataset_id": dataset["id"], "epochs": 101}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 413, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "epochs"]
    assert "13332" in error["msg"] and "BACKPROP_MAX_JOB_COST=13200" in error["msg"]


def test_job_over_its_time_limit_fails_and_keeps_its_best_model(
    client: ApiClient, db: Database
) -> None:
    network, dataset = make_network(client), make_dataset(client)
    job = submit(client, network, dataset, epochs=1_000_000, batch_size=1)
    settings = Settings(
        database_url=db.url, checkpoint_seconds=0, poll_seconds=0.05, max_job_seconds=0.5
    )
    Worker(db, settings, "test-worker").run(burst=True)
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "failed"
    assert "BACKPROP_MAX_JOB_SECONDS=0.5" in done["error"]
    assert 0 < done["epoch"] < 1_000_000
    assert done["model_id"] is not None
    model = client.get(f"/v1/models/{done['model_id']}")
    assert model.status_code == 200
    predict = client.post(f"/v1/models/{done['model_id']}/predict", json={"x": [[0, 1]]})
    assert predict.status_code == 200, predict.text
