"""float32 values reach JSON as the shortest decimal that reads back to the same float32:
6.8, not 6.800000190734863 — predict outputs, job metrics and history, dataset stats and
rows. Numbers are read from the response text as the decimals it holds."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from app.engine.network import Network as EngineNetwork
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import import_model, make_dataset, make_network, train

X = [[6.8, 0.1], [-1.3, 2.2], [0.7, -0.9], [3.3, 1.1]]


def decimals(text: str) -> Any:
    """The JSON document with every non-integer number kept as its decimal string."""
    return json.loads(text, parse_float=str)


def assert_shortest_float32(token: str) -> None:
    assert isinstance(token, str), token
    shortest = str(np.float32(token))
    assert float(token) == float(shortest), f"{token} is not the shortest float32 {shortest}"
    assert len(token) <= len(shortest) + 4, token  # 1e-05 may be spelled 0.00001


def test_predict_outputs_are_shortest_float32(client: ApiClient) -> None:
    network = make_network(client)
    model = import_model(client, network)
    response = client.post(f"/v1/models/{model['id']}/predict", json={"x": X})
    assert response.status_code == 200, response.text
    tokens = decimals(response.text)["outputs"]
    engine = EngineNetwork.from_config(
        {k: network[k] for k in ("input_size", "layers", "loss", "init", "seed")}
    )
    expected = engine.forward(np.asarray(X, dtype=np.float32))
    assert expected.dtype == np.float32
    for row, expected_row in zip(tokens, expected, strict=True):
        for token, value in zip(row, expected_row, strict=True):
            assert_shortest_float32(token)
            assert np.float32(token) == value  # the same float32, exactly


def test_job_metrics_and_history_are_shortest_float32(client: ApiClient, db: Database) -> None:
    dataset = make_dataset(client, x=X, y=[0, 1, 1, 0])
    job = train(client, db, make_network(client), dataset, epochs=3, validation_split=0.25)
    body = decimals(client.get(f"/v1/jobs/{job['id']}").text)
    entries = [body["metrics"], *body["history"]]
    model = decimals(client.get(f"/v1/models/{job['model_id']}").text)
    entries.append(model["metrics"])
    for entry in entries:
        for name in ("loss", "val_loss"):
            assert_shortest_float32(entry[name])


def test_regression_mae_is_shortest_float32(client: ApiClient, db: Database) -> None:
    dataset = make_dataset(client, x=X, y=[0.5, 1.7, -2.1, 3.3])
    regression = make_network(
        client, layers=[{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "linear"}]
    )
    job = train(client, db, regression, dataset, epochs=2)
    for entry in decimals(client.get(f"/v1/jobs/{job['id']}").text)["history"]:
        assert_shortest_float32(entry["loss"])
        assert_shortest_float32(entry["mae"])


def test_dataset_stats_and_rows_are_shortest_float32(client: ApiClient) -> None:
    dataset = make_dataset(client, x=X, y=[0, 1, 1, 0])
    stats = decimals(client.get(f"/v1/datasets/{dataset['id']}").text)["stats"]
    assert stats["max"] == ["6.8", "2.2"]
    assert stats["min"] == ["-1.3", "-0.9"]
    for name in ("mean", "std"):
        for token in stats[name]:
            assert_shortest_float32(token)
    assert stats["mean"][0] == str(np.float32(np.mean(np.asarray(X, dtype=np.float32)[:, 0])))
    rows = decimals(client.get(f"/v1/datasets/{dataset['id']}/data").text)
    assert rows["x"] == [[str(v) for v in row] for row in X]
