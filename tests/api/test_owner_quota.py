"""Per-owner storage quota (BACKPROP_MAX_OWNER_BYTES): datasets, imported models and the
model a job will store count; 413 naming the setting; other owners are not affected."""

from __future__ import annotations

from sqlalchemy import select

from app.storage.database import Database
from app.storage.tables import Dataset
from app.storage.usage import stored_bytes
from tests.api.conftest import Keys, MakeClient, make_dataset, make_network


def test_datasets_over_the_quota_are_refused(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    first = make_dataset(make_client(keys.alice))
    with db.read_session() as session:
        owner_id = session.scalar(select(Dataset.owner_id).where(Dataset.id == first["id"]))
        assert owner_id is not None
        one = stored_bytes(session, owner_id)
    assert one > 0
    limit = 2 * one + one // 2  # room for two such datasets, not three
    alice = make_client(keys.alice, max_owner_bytes=limit)
    bob = make_client(keys.bob, max_owner_bytes=limit)
    second = make_dataset(alice)
    payload = {"name": "d", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]}
    response = alice.post("/v1/datasets", json=payload)
    assert response.status_code == 413, response.text
    (error,) = response.json()["detail"]
    assert f"BACKPROP_MAX_OWNER_BYTES={limit}" in error["msg"] and error["loc"] == ["body"]
    assert str(3 * one) in error["msg"]
    make_dataset(bob)  # bob's bytes are his own
    network = make_network(alice)
    job = {"network_id": network["id"], "dataset_id": first["id"], "epochs": 1}
    assert alice.post("/v1/jobs", json=job).status_code == 202  # 33 params: 132 bytes fit
    assert alice.delete(f"/v1/datasets/{second['id']}").status_code == 204
    assert alice.post("/v1/datasets", json=payload).status_code == 201  # room again


def test_a_job_needs_room_for_its_model(make_client: MakeClient, keys: Keys) -> None:
    alice = make_client(keys.alice, max_owner_bytes=10**9)
    dataset = make_dataset(alice)
    network = make_network(alice, layers=[{"units": 1000, "activation": "relu"}, XOR_OUT])
    tight = make_client(keys.alice, max_owner_bytes=10_000)
    job = {"network_id": network["id"], "dataset_id": dataset["id"], "epochs": 1}
    response = tight.post("/v1/jobs", json=job)
    assert response.status_code == 413, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "network_id"]
    assert "BACKPROP_MAX_OWNER_BYTES=10000" in error["msg"]


XOR_OUT = {"units": 1, "activation": "sigmoid"}
