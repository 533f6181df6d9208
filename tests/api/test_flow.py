"""End to end through HTTP: data -> network -> job (worker in burst mode) -> events -> predict."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import numpy as np

from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import import_model, make_network, run_worker, submit, train


def events(client: ApiClient, job_id: str, **headers: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of the job's SSE stream, read to its end."""
    found: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert name is not None
                found.append((name, json.loads(line.removeprefix("data: "))))
    return found


def test_xor_end_to_end(client: ApiClient, db: Database) -> None:
    train_set = client.post(
        "/v1/datasets/generate", json={"kind": "xor", "n_samples": 200, "noise": 0.05}
    ).json()
    corners = client.post(
        "/v1/datasets/generate", json={"kind": "xor", "n_samples": 4, "noise": 0}
    ).json()
    network = make_network(client, name="xor")
    done = train(
        client,
        db,
        network,
        train_set,
        epochs=150,
        batch_size=16,
        validation_split=0.2,
        optimizer={"name": "adam", "learning_rate": 0.05},
    )
    assert done["model_id"] and done["epoch"] == len(done["history"]) > 0
    assert done["started_at"] and done["finished_at"] and done["samples_per_second"] > 0
    stream = events(client, done["id"])
    epochs = [data["epoch"] for name, data in stream if name == "epoch"]
    assert epochs == list(range(1, done["epoch"] + 1))
    assert stream[-1] == (
        "end",
        {"status": "succeeded", "model_id": done["model_id"], "error": None},
    )
    assert all(name == "epoch" for name, _ in stream[:-1])
    resumed = events(client, done["id"], **{"Last-Event-ID": str(done["epoch"] - 2)})
    assert [d["epoch"] for n, d in resumed if n == "epoch"] == epochs[-2:]
    rows = client.get(f"/v1/datasets/{corners['id']}/data").json()
    predicted = client.post(f"/v1/models/{done['model_id']}/predict", json={"x": rows["x"]})
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["labels"] == rows["y"]
    model = client.get(f"/v1/models/{done['model_id']}").json()
    assert model["job_id"] == done["id"] and model["classes"] == [0, 1]
    # A second job starts from the trained model's weights.
    train(client, db, network, train_set, epochs=1, init_model_id=done["model_id"])


def test_csv_string_labels_come_back(client: ApiClient, db: Database) -> None:
    lines = ["size,weight,kind"]
    for i in range(40):
        small = i % 2 == 0
        lines.append(
            f"{1 + i % 3 if small else 8 + i % 3},{2 if small else 9},"
            f"{'mouse' if small else 'horse'}"
        )
    upload = client.post(
        "/v1/datasets/upload",
        data={"name": "animals"},
        files={"file": ("a.csv", "\n".join(lines).encode(), "text/csv")},
    )
    assert upload.status_code == 201, upload.text
    network = make_network(
        client,
        name="animals",
        layers=[{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "softmax"}],
    )
    done = train(
        client,
        db,
        network,
        upload.json(),
        epochs=60,
        validation_split=0,
        optimizer={"name": "adam", "learning_rate": 0.05},
    )
    predicted = client.post(
        f"/v1/models/{done['model_id']}/predict", json={"x": [[1, 2], [9, 9]]}
    ).json()
    assert predicted["labels"] == ["mouse", "horse"]


def test_cancelled_job_ends_its_stream(client: ApiClient) -> None:
    dataset = client.post("/v1/datasets/generate", json={"kind": "moons"}).json()
    network = make_network(client, name="n", layers=[{"units": 1, "activation": "sigmoid"}])
    job = submit(client, network, dataset)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert events(client, job["id"]) == [
        ("end", {"status": "cancelled", "model_id": None, "error": None})
    ]


def test_stream_follows_a_job_while_it_runs(client: ApiClient, db: Database) -> None:
    dataset = client.post("/v1/datasets/generate", json={"kind": "moons", "n_samples": 100}).json()
    network = make_network(client, name="n", layers=[{"units": 1, "activation": "sigmoid"}])
    job = submit(client, network, dataset, epochs=40, batch_size=8)
    # The stream opens on a queued job; the worker starts a little later in a thread.
    worker = threading.Timer(0.5, run_worker, args=(db,))
    worker.start()
    try:
        stream = events(client, job["id"])
    finally:
        worker.join()
    assert [data["epoch"] for _, data in stream[:-1]] == list(range(1, 41))
    assert all(name == "epoch" and "loss" in data for name, data in stream[:-1])
    model_id = client.get(f"/v1/jobs/{job['id']}").json()["model_id"]
    assert stream[-1] == ("end", {"status": "succeeded", "model_id": model_id, "error": None})


def test_import_then_fine_tune_one_epoch_then_export(client: ApiClient, db: Database) -> None:
    """Weights brought from elsewhere: import -> a one-epoch job from them -> export; the
    export has the primer's layout, moved by training, and imports back to the same model."""
    data = client.post(
        "/v1/datasets/generate", json={"kind": "xor", "n_samples": 64, "noise": 0.05}
    ).json()
    network = make_network(client, name="fine-tune")
    imported = import_model(client, network, None)
    start = np.load(
        io.BytesIO(client.get(f"/v1/models/{imported['id']}/weights").content),
        allow_pickle=False,
    )
    done = train(
        client, db, network, data, epochs=1, standardize=False, init_model_id=imported["id"]
    )
    exported = client.get(f"/v1/models/{done['model_id']}/weights").content
    tuned = np.load(io.BytesIO(exported), allow_pickle=False)
    for name in start.files:  # same shapes (n[l], n[l-1]) and (n[l],), new values
        assert tuned[name].shape == start[name].shape
    assert any(not np.array_equal(tuned[n], start[n]) for n in start.files)
    model = client.get(f"/v1/models/{done['model_id']}").json()
    again = client.post(
        "/v1/models/import",
        data={"network_id": network["id"], "config": json.dumps(model["config"])},
        files={"file": ("t.npz", exported, "application/octet-stream")},
    )
    assert again.status_code == 201, again.text
    x = {"x": [[0, 0], [0, 1], [1, 0], [1, 1]]}
    first = client.post(f"/v1/models/{done['model_id']}/predict", json=x).json()
    assert client.post(f"/v1/models/{again.json()['id']}/predict", json=x).json() == first
