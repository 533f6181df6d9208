"""Networks and job submission: engine validation mapped to 422 with body locations."""

from __future__ import annotations

from typing import Any

import pytest

from app.storage.database import Database
from app.storage.tables import Job, Network
from tests.api.client import ApiClient
from tests.api.conftest import XOR_NETWORK, import_model, make_dataset, make_network


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["detail"][0])


def test_network_create_read_list_delete(client: ApiClient) -> None:
    network = make_network(client)
    assert network["parameter_count"] == 8 * 3 + 1 * 9
    assert network["output_size"] == 1 and network["loss"]
    assert client.get(f"/v1/networks/{network['id']}").json() == network
    assert client.get("/v1/networks").json()["items"] == [network]
    assert client.delete(f"/v1/networks/{network['id']}").status_code == 204
    assert client.get(f"/v1/networks/{network['id']}").status_code == 404


BAD_NETWORKS: list[tuple[str, dict[str, Any], list[Any]]] = [
    (
        "unknown activation",
        {"layers": [{"units": 2, "activation": "wiggle"}]},
        ["body", "layers", 0, "activation"],
    ),
    ("unknown loss", {"loss": "hinge-ish"}, ["body", "loss"]),
    ("unknown init", {"init": "zeros-ish"}, ["body", "init"]),
    ("no layers", {"layers": []}, ["body", "layers"]),
    (
        "zero units",
        {"layers": [{"units": 0, "activation": "relu"}]},
        ["body", "layers", 0, "units"],
    ),
    ("zero inputs", {"input_size": 0}, ["body", "input_size"]),
    (
        "string units",
        {"layers": [{"units": "many", "activation": "relu"}]},
        ["body", "layers", 0, "units"],
    ),
]


@pytest.mark.parametrize(("case", "patch", "loc"), BAD_NETWORKS, ids=[c[0] for c in BAD_NETWORKS])
def test_bad_networks(
    client: ApiClient, db: Database, case: str, patch: dict[str, Any], loc: list[Any]
) -> None:
    error = _error(client.post("/v1/networks", json={**XOR_NETWORK, **patch}), 422)
    assert error["loc"][: len(loc)] == loc, error
    with db.read_session() as session:
        assert session.query(Network).count() == 0


def test_job_defaults_and_read(client: ApiClient) -> None:
    dataset = client.post("/v1/datasets/generate", json={"kind": "xor"}).json()
    network = make_network(client)
    response = client.post(
        "/v1/jobs", json={"network_id": network["id"], "dataset_id": dataset["id"]}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["epochs"] == 100 and job["epoch"] == 0
    assert job["options"]["optimizer"]["name"] == "adam"
    assert job["model_id"] is None and job["history"] == []
    assert client.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]
    assert [j["id"] for j in client.get("/v1/jobs?status=queued").json()["items"]] == [job["id"]]
    assert client.get("/v1/jobs?status=running").json()["items"] == []
    assert _error(client.get("/v1/jobs?status=bogus"), 422)["loc"] == ["query", "status"]


def _submit(client: ApiClient, **body: Any) -> Any:
    return client.post("/v1/jobs", json=body)


def test_bad_jobs_fail_at_submit(client: ApiClient, db: Database) -> None:
    xor = client.post("/v1/datasets/generate", json={"kind": "xor"}).json()
    blobs3 = client.post("/v1/datasets/generate", json={"kind": "blobs", "classes": 3}).json()
    strings = make_dataset(client, y=["a", "b", "a", "b"])
    regression = make_dataset(client, y=[0.5, 1.5, 2.5, 3.5])
    wide = make_dataset(client, x=[[0, 0, 0]] * 4)
    binary = make_network(client)
    softmax2 = make_network(client, layers=[{"units": 2, "activation": "softmax"}])
    linear = make_network(client, layers=[{"units": 1, "activation": "linear"}])
    other = make_network(
        client, layers=[{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
    )
    init = import_model(client, other)
    ok = {"network_id": binary["id"], "dataset_id": xor["id"]}
    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({**ok, "dataset_id": wide["id"]}, ["body", "dataset_id"]),
        ({**ok, "dataset_id": blobs3["id"]}, ["body", "dataset_id"]),
        ({**ok, "dataset_id": regression["id"]}, ["body", "dataset_id"]),
        ({**ok, "network_id": softmax2["id"], "dataset_id": blobs3["id"]}, ["body", "dataset_id"]),
        ({**ok, "network_id": linear["id"], "dataset_id": strings["id"]}, ["body", "dataset_id"]),
        ({**ok, "init_model_id": init["id"]}, ["body", "init_model_id"]),
        ({**ok, "epochs": 0}, ["body", "epochs"]),
        ({**ok, "batch_size": -1}, ["body", "batch_size"]),
        (
            {**ok, "optimizer": {"name": "adam", "learning_rate": 0}},
            ["body", "optimizer", "learning_rate"],
        ),
        ({**ok, "optimizer": {"name": "lbfgs-ish"}}, ["body", "optimizer", "name"]),
        ({**ok, "lr_schedule": {"name": "wobbly"}}, ["body", "lr_schedule", "name"]),
        ({**ok, "validation_split": 1.5}, ["body", "validation_split"]),
        ({**ok, "optimizer": {"momentum": 1.0}}, ["body", "optimizer", "momentum"]),
        ({"dataset_id": xor["id"]}, ["body", "network_id"]),
    ]
    for body, loc in cases:
        error = _error(_submit(client, **body), 422)
        assert error["loc"][: len(loc)] == loc, (body, error)
    for body, loc in (
        ({**ok, "network_id": "net_0000000000000000"}, ["body", "network_id"]),
        ({**ok, "init_model_id": "mdl_nope"}, ["body", "init_model_id"]),
    ):
        assert _error(_submit(client, **body), 404)["loc"] == loc
    with db.read_session() as session:
        assert session.query(Job).count() == 0
    fitting = [
        ok,
        {"network_id": softmax2["id"], "dataset_id": strings["id"]},
        {"network_id": linear["id"], "dataset_id": regression["id"]},
    ]
    for body in fitting:
        assert _submit(client, **body).status_code == 202, body


def test_cancel_queued_and_finished(client: ApiClient) -> None:
    dataset = client.post("/v1/datasets/generate", json={"kind": "xor"}).json()
    network = make_network(client)
    job = _submit(client, network_id=network["id"], dataset_id=dataset["id"]).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", json={"keep_model": True})
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert _error(again, 409)["loc"] == ["path", "job_id"]
