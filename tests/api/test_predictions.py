"""Batch predictions (/v1/models/{id}/predictions, /v1/predictions): a worker scores a
stored dataset in chunks; its npy and CSV downloads equal POST predict on the same rows."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest

from app.config import Settings
from app.jobs.worker import Worker
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import MakeClient, import_model, make_dataset, make_network

RNG = np.random.default_rng(11)
ROWS = 211  # not a multiple of the chunk: the last chunk is short
X = RNG.normal(0, 2, (ROWS, 3)).round(4).tolist()
CHUNK = 64


def work(db: Database, **fields: Any) -> None:
    """Run the queue empty in this process, chunks of :data:`CHUNK` rows, a stored output
    piece after every chunk."""
    settings = Settings(
        database_url=db.url,
        checkpoint_seconds=0,
        poll_seconds=0.05,
        prediction_chunk_rows=CHUNK,
        **fields,
    )
    Worker(db, settings, "test-worker").run(burst=True)


def _model(client: ApiClient, task: str) -> dict[str, Any]:
    """A 3-input model: multiclass (3 classes), binary or 2-output regression."""
    layers = {
        "multiclass": [{"units": 6, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
        "binary": [{"units": 6, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
        "regression": [{"units": 6, "activation": "tanh"}, {"units": 2, "activation": "linear"}],
    }[task]
    loss = {
        "multiclass": "categorical_crossentropy",
        "binary": "binary_crossentropy",
        "regression": "mse",
    }[task]
    network = make_network(client, input_size=3, layers=layers, loss=loss, seed=5)
    classes = {"multiclass": ["cat", "dog", "eel"], "binary": [0, 1], "regression": None}[task]
    config = {"format": "backprop-mlp", "version": 1, "task": task, "classes": classes}
    return import_model(client, network, {**config, "standardize": False})


def _dataset(client: ApiClient, rows: list[list[float]] = X) -> dict[str, Any]:
    return make_dataset(client, x=rows, y=[i % 3 for i in range(len(rows))])


def _submit(client: ApiClient, model_id: str, dataset_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/models/{model_id}/predictions", json={"dataset_id": dataset_id})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _run(client: ApiClient, db: Database, model: dict[str, Any]) -> dict[str, Any]:
    run = _submit(client, model["id"], _dataset(client)["id"])
    assert run["status"] == "queued" and run["rows_total"] == ROWS and run["rows_done"] == 0
    assert run["id"].startswith("pred_") and run["download"] is None
    work(db)
    done = client.get(f"/v1/predictions/{run['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    return dict(done)


def _predict(client: ApiClient, model_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/models/{model_id}/predict", json={"x": X})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _download(client: ApiClient, run_id: str, fmt: str) -> bytes:
    response = client.get(f"/v1/predictions/{run_id}/download", params={"format": fmt})
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("task", ["multiclass", "binary", "regression"])
def test_outputs_and_labels_equal_predict_on_the_same_rows(
    client: ApiClient, db: Database, task: str
) -> None:
    model = _model(client, task)
    done = _run(client, db, model)
    answer = _predict(client, model["id"])
    expected = np.asarray(answer["outputs"], dtype=np.float32)

    assert done["rows_done"] == ROWS and done["rows_per_second"] > 0
    assert done["finished_at"] is not None and done["model_id"] == model["id"]
    npy_bytes = _download(client, done["id"], "npy")
    npy = np.load(io.BytesIO(npy_bytes), allow_pickle=False)
    assert npy.dtype == np.float32 and npy.shape == expected.shape
    assert np.array_equal(npy, expected)  # bit for bit, across 4 chunks

    lines = list(csv.reader(io.StringIO(_download(client, done["id"], "csv").decode())))
    width = expected.shape[1]
    header, rows = lines[0], lines[1:]
    assert header[:width] == [f"output_{j}" for j in range(width)] and len(rows) == ROWS
    values = np.asarray([row[:width] for row in rows], dtype=np.float64).astype(np.float32)
    assert np.array_equal(values, expected)  # 9 significant digits read back exactly
    if task == "regression":
        assert len(header) == width and "labels" not in answer
    else:
        assert header[-1] == "label"
        assert [row[-1] for row in rows] == [str(label) for label in answer["labels"]]

    # Once the model is deleted the outputs stay downloadable; the CSV's labels do not.
    assert client.delete(f"/v1/models/{model['id']}").status_code == 204
    orphan = client.get(f"/v1/predictions/{done['id']}").json()
    assert orphan["model_id"] is None and orphan["status"] == "succeeded"
    assert _download(client, done["id"], "npy") == npy_bytes
    gone = client.get(f"/v1/predictions/{done['id']}/download", params={"format": "csv"})
    assert gone.status_code == 409 and gone.json()["detail"][0]["type"] == "model_deleted"


def test_a_dataset_of_the_wrong_width_or_a_foreign_id_is_refused(
    client: ApiClient, bob: ApiClient
) -> None:
    model = _model(client, "binary")
    narrow = make_dataset(client)  # 2 features, the model takes 3
    response = client.post(
        f"/v1/models/{model['id']}/predictions", json={"dataset_id": narrow["id"]}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "dataset_id"]
    assert "2 features but the model takes 3" in response.json()["detail"][0]["msg"]

    missing = client.post(f"/v1/models/{model['id']}/predictions", json={"dataset_id": "ds_x"})
    assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == [
        "body",
        "dataset_id",
    ]
    bobs = _dataset(bob)
    foreign = client.post(f"/v1/models/{model['id']}/predictions", json={"dataset_id": bobs["id"]})
    assert foreign.status_code == 404
    no_model = client.post("/v1/models/mdl_nope/predictions", json={"dataset_id": narrow["id"]})
    assert no_model.status_code == 404
    assert no_model.json()["detail"][0]["loc"] == ["path", "model_id"]

    run = _submit(client, model["id"], _dataset(client)["id"])
    for method, path in [
        ("get", f"/v1/predictions/{run['id']}"),
        ("post", f"/v1/predictions/{run['id']}/cancel"),
        ("get", f"/v1/predictions/{run['id']}/download"),
    ]:
        answer = bob.request(method, path)
        assert answer.status_code == 404, path
        assert answer.json()["detail"][0]["loc"] == ["path", "prediction_id"]
        assert answer.json()["detail"][0]["msg"].startswith("prediction run"), answer.text
    missing = client.get("/v1/predictions/job_0000000000000000").json()["detail"][0]
    assert missing["msg"].startswith("prediction run"), missing  # not "job not found"
    assert bob.get("/v1/predictions").json()["total"] == 0
    assert client.get("/v1/predictions").json()["total"] == 1


def test_cancel_and_downloads_before_success(client: ApiClient, db: Database) -> None:
    model = _model(client, "multiclass")
    run = _submit(client, model["id"], _dataset(client)["id"])
    early = client.get(f"/v1/predictions/{run['id']}/download", params={"format": "csv"})
    assert early.status_code == 409 and early.json()["detail"][0]["type"] == "not_finished"
    # The model is in use by the queued run: it cannot be deleted under it.
    assert client.delete(f"/v1/models/{model['id']}").status_code == 409

    cancelled = client.post(f"/v1/predictions/{run['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/v1/predictions/{run['id']}/cancel")
    assert again.status_code == 409
    work(db)  # nothing to run
    assert client.get(f"/v1/predictions/{run['id']}").json()["rows_done"] == 0
    bad = client.get(f"/v1/predictions/{run['id']}/download", params={"format": "xls"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "format"]


def test_runs_share_the_queue_not_the_jobs_api(
    make_client: MakeClient, db: Database, keys: Any
) -> None:
    client = make_client(keys.alice, max_active_jobs=1)
    model = _model(client, "binary")
    dataset = _dataset(client)
    run = _submit(client, model["id"], dataset["id"])
    # A run holds a worker: it counts toward BACKPROP_MAX_ACTIVE_JOBS.
    refused = client.post(
        f"/v1/models/{model['id']}/predictions", json={"dataset_id": dataset["id"]}
    )
    assert refused.status_code == 429
    assert client.get("/v1/jobs").json()["total"] == 0
    assert client.get(f"/v1/jobs/{run['id']}").status_code == 404
    assert client.post(f"/v1/jobs/{run['id']}/cancel").status_code == 404
    listed = client.get("/v1/predictions", params={"model_id": model["id"]}).json()
    assert [item["id"] for item in listed["items"]] == [run["id"]]
    assert client.get("/v1/predictions", params={"model_id": "mdl_other"}).json()["total"] == 0
    work(db)
    assert client.get("/v1/predictions", params={"status": "succeeded"}).json()["total"] == 1
