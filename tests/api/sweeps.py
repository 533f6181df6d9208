"""Helpers of the sweep tests: a small two-class dataset and sweep bodies on it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy import select

from app.config import Settings
from app.jobs.worker import Worker
from app.storage.database import Database
from app.storage.tables import Model as ModelRow
from tests.api.client import ApiClient

_rng = np.random.default_rng(5)
X = _rng.normal(size=(80, 2)).round(3)
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
N_TRAIN = 64  # 80 rows, validation_split 0.2

NETWORK: dict[str, Any] = {
    "input_size": 2,
    "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "seed": 1,
}


def make_data(client: ApiClient) -> str:
    body = {"name": "lines", "x": X.tolist(), "y": Y.tolist()}
    response = client.post("/v1/datasets", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def sweep_body(dataset_id: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "s",
        "dataset_id": dataset_id,
        "network": NETWORK,
        "job": {"epochs": 3, "batch_size": 16, "validation_split": 0.2, "seed": 2},
        "grid": {"job.optimizer.learning_rate": [0.01, 0.1]},
        "strategy": {"name": "grid"},
        "metric": "val_accuracy",
    }
    body.update(fields)
    return body


def create(client: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def trial_outcomes(client: ApiClient, db: Database, sweep_id: str) -> dict[int, dict[str, Any]]:
    """Per trial index: its score, epochs, history (without timings) and model weights."""
    sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert sweep["status"] == "succeeded", sweep
    out: dict[int, dict[str, Any]] = {}
    for trial in sweep["trials"]:
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        with db.read_session() as session:
            weights = session.scalar(
                select(ModelRow.weights_sha256).where(ModelRow.id == trial["model_id"])
            )
        timing = {"seconds", "samples_per_second"}
        out[trial["index"]] = {
            "score": trial["score"],
            "epochs_run": trial["epochs_run"],
            "history": [{k: v for k, v in e.items() if k not in timing} for e in job["history"]],
            "weights": weights,
        }
    return out


def work(db: Database, pack_trials: int, worker_id: str = "sweeps") -> None:
    """Run one worker (in this process) until the queue is empty: every checkpoint saved,
    trials trained together by ``pack_trials``."""
    settings = Settings(
        database_url=db.url, checkpoint_seconds=0, poll_seconds=0.05, pack_trials=pack_trials
    )
    Worker(db, settings, worker_id).run(burst=True)


def sweep_events(client: ApiClient, sweep_id: str, last: str | None = None) -> list[dict[str, Any]]:
    """The stream's events as ``{"event", "id", "data"}`` (a finished sweep's stream ends)."""
    headers = {"Last-Event-ID": last} if last is not None else {}
    response = client.get(f"/v1/sweeps/{sweep_id}/events", headers=headers)
    assert response.status_code == 200, response.text
    parsed = []
    for block in response.text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":")
        )
        if fields:
            parsed.append(
                {
                    "event": fields["event"],
                    "id": fields.get("id"),
                    "data": json.loads(fields["data"]),
                }
            )
    return parsed
