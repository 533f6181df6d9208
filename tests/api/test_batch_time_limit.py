"""BACKPROP_MAX_JOB_SECONDS applies to prediction runs and worker-side evaluations too:
past it the run ends ``failed`` naming the setting, with no partial download and no
output pieces left referenced."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from app.storage.database import Database
from app.storage.tables import Job
from tests.api.conftest import Keys, MakeClient, make_dataset
from tests.api.test_evaluations import _binary_model
from tests.api.test_predictions import ROWS, _dataset, _model, _submit, work

# Far below one chunk's work: the first check past the start ends the run.
TINY = 1e-9


def _row(db: Database, job_id: str) -> Job:
    with db.read_session() as session:
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        session.expunge(job)
        return job


def test_a_prediction_run_past_the_time_limit_fails_naming_the_setting(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    client = make_client(keys.alice)
    model = _model(client, "multiclass")
    run = _submit(client, model["id"], _dataset(client)["id"])
    work(db, max_job_seconds=TINY)
    done = client.get(f"/v1/predictions/{run['id']}").json()
    assert done["status"] == "failed", done
    assert f"BACKPROP_MAX_JOB_SECONDS={TINY:g}" in done["error"]
    assert done["rows_done"] < ROWS and done["download"] is None
    download = client.get(f"/v1/predictions/{run['id']}/download")
    assert download.status_code == 409, download.text
    row = _row(db, run["id"])
    assert row.output_parts is None and row.result_sha256 is None

    # The same run under the default limit succeeds: the limit, not the data, failed it.
    again = _submit(client, model["id"], _dataset(client)["id"])
    work(db)
    assert client.get(f"/v1/predictions/{again['id']}").json()["status"] == "succeeded"


def test_a_worker_side_evaluation_past_the_time_limit_fails(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    queued = make_client(keys.alice, sync_evaluation_rows=10)
    model = _binary_model(queued)
    rows = np.random.default_rng(3).normal(0, 1, (300, 2)).round(3).tolist()
    dataset = make_dataset(queued, x=rows, y=["yes" if a > 0 else "no" for a, _ in rows])
    response = queued.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert response.status_code == 202, response.text
    pending: dict[str, Any] = response.json()
    work(db, max_job_seconds=TINY)
    done = queued.get(f"/v1/evaluations/{pending['id']}").json()
    assert done["status"] == "failed", done
    assert f"BACKPROP_MAX_JOB_SECONDS={TINY:g}" in done["error"]
    assert "accuracy" not in done
