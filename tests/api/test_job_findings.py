"""Per-layer statistics and findings through HTTP: stored on the job, typed in
GET /v1/jobs/{id}, carried by the event stream."""

from __future__ import annotations

import json
from typing import Any

from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import make_network, train
from tests.api.test_flow import events
from tests.weights import dead_layer_npz

RELU_NETWORK = {
    "name": "relu-net",
    "input_size": 2,
    "layers": [
        {"units": 8, "activation": "relu"},
        {"units": 8, "activation": "relu"},
        {"units": 1, "activation": "sigmoid"},
    ],
    "seed": 0,
}


def import_dead_model(client: ApiClient, network: dict[str, Any]) -> dict[str, Any]:
    """The network's fresh weights with a bias of -100 on every unit of layer 1."""
    response = client.post(
        "/v1/models/import",
        data={"network_id": network["id"]},
        files={"file": ("w.npz", dead_layer_npz(network), "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_dead_imported_layer_shows_in_the_job_and_its_stream(
    client: ApiClient, db: Database
) -> None:
    data = client.post(
        "/v1/datasets/generate", json={"kind": "moons", "n_samples": 200, "noise": 0.1}
    ).json()
    network = make_network(client, **RELU_NETWORK)
    model = import_dead_model(client, network)
    done = train(client, db, network, data, epochs=4, init_model_id=model["id"])

    layers = done["history"][-1]["layers"]
    assert [layer["dead_fraction"] for layer in layers] == [1.0, 1.0, None]
    assert layers[0]["dead_units"] == list(range(8))  # the last epoch is a snapshot
    assert sum(layers[0]["histogram"]["counts"]) == 16
    assert set(layers[2]) >= {"grad_norm", "update_ratio", "saturated_fraction"}
    assert "layers" not in done["metrics"]  # metrics stay the epoch's numbers
    assert [(f["kind"], f["layer"], f["epoch"]) for f in done["findings"]] == [
        ("dead_units", 1, 4),
        ("dead_units", 2, 4),
    ]
    dead = done["findings"]
    assert "negative bias" in dead[0]["message"]

    stream = events(client, done["id"])
    epochs = [data for name, data in stream if name == "epoch"]

    def stats(entry: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(x["grad_norm"], x["update_ratio"], x["dead_fraction"]) for x in entry["layers"]]

    assert [stats(e) for e in epochs] == [stats(e) for e in done["history"]]
    sent = [data["findings"] for name, data in stream if name == "findings"]
    assert sent[-1] == done["findings"]
    assert stream[-1][0] == "end"


def test_diagnostics_off_stores_no_layers(client: ApiClient, db: Database) -> None:
    data = client.post(
        "/v1/datasets/generate", json={"kind": "moons", "n_samples": 100, "noise": 0.1}
    ).json()
    network = make_network(client, **RELU_NETWORK)
    done = train(client, db, network, data, epochs=2, diagnostics=False)
    assert [entry["layers"] for entry in done["history"]] == [None, None]
    assert done["findings"] == []
    assert done["options"]["diagnostics"] is False


def test_the_schema_types_layer_statistics_and_findings(client: ApiClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    entry = schemas["HistoryEntry"]["properties"]["layers"]
    assert json.dumps(entry).count("#/components/schemas/LayerStats") == 1
    assert set(schemas["LayerStats"]["properties"]) >= {
        "weight_norm",
        "grad_norm",
        "update_ratio",
        "activation_mean",
        "activation_std",
        "dead_fraction",
        "saturated_fraction",
        "histogram",
        "dead_units",
    }
    assert "overfitting" in schemas["FindingKind"]["enum"]
    assert schemas["JobCreate"]["properties"]["diagnostics"]["default"] is True
