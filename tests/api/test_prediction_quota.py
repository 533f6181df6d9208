"""Prediction outputs count toward BACKPROP_MAX_OWNER_BYTES: a run whose estimated outputs
(rows x outputs x 4 bytes + the .npy header) do not fit is refused with 413; the estimate
is reserved while the run is queued or running and replaced by the blob's size once it
succeeds; a run whose real outputs no longer fit ends failed naming the setting; DELETE
/v1/predictions/{id} (409 while active) frees the bytes and gc removes the blob."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.config import Settings
from app.storage.blobs import open_blob_store
from app.storage.database import Database
from app.storage.gc import collect_garbage
from app.storage.tables import Job
from app.storage.usage import stored_bytes
from tests.api.conftest import Keys, MakeClient
from tests.api.test_predictions import ROWS, _dataset, _model, _submit, work

OUTPUT_BYTES = 128 + ROWS * 3 * 4  # a 3-class float32 model's outputs over ROWS rows


def _owner_bytes(db: Database, run_id: str) -> int:
    with db.read_session() as session:
        owner_id = session.scalar(select(Job.owner_id).where(Job.id == run_id))
        assert owner_id is not None
        return stored_bytes(session, owner_id)


def _result_bytes(db: Database, run_id: str) -> int | None:
    with db.read_session() as session:
        return session.scalar(select(Job.result_bytes).where(Job.id == run_id))


def test_outputs_are_reserved_counted_and_freed_by_delete(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    client = make_client(keys.alice)
    model, dataset = _model(client, "multiclass"), _dataset(client)
    run = _submit(client, model["id"], dataset["id"])
    reserved = _owner_bytes(db, run["id"])
    assert _result_bytes(db, run["id"]) == OUTPUT_BYTES  # the estimate, while queued

    refused = client.delete(f"/v1/predictions/{run['id']}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"][0]["loc"] == ["path", "prediction_id"]

    # A second run would not fit beside the first's reservation.
    tight = make_client(keys.alice, max_owner_bytes=reserved + OUTPUT_BYTES - 1)
    response = tight.post(
        f"/v1/models/{model['id']}/predictions", json={"dataset_id": dataset["id"]}
    )
    assert response.status_code == 413, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "dataset_id"]
    assert f"BACKPROP_MAX_OWNER_BYTES={reserved + OUTPUT_BYTES - 1}" in error["msg"]

    work(db)
    done = client.get(f"/v1/predictions/{run['id']}").json()
    assert done["status"] == "succeeded"
    blob = client.get(f"/v1/predictions/{run['id']}/download").content
    assert _result_bytes(db, run["id"]) == len(blob) == OUTPUT_BYTES  # the blob's size
    assert _owner_bytes(db, run["id"]) == reserved

    with db.read_session() as session:
        sha = session.scalar(select(Job.result_sha256).where(Job.id == run["id"]))
    assert sha is not None
    assert client.delete(f"/v1/predictions/{run['id']}").status_code == 204
    assert client.get(f"/v1/predictions/{run['id']}").status_code == 404
    assert client.delete(f"/v1/predictions/{run['id']}").status_code == 404
    again = tight.post(f"/v1/models/{model['id']}/predictions", json={"dataset_id": dataset["id"]})
    assert again.status_code == 202, again.text  # the deleted run's bytes are free

    blobs = open_blob_store(Settings(database_url=db.url))
    assert blobs.exists(sha)
    later = datetime.now(UTC) + timedelta(hours=2)
    report = collect_garbage(db, blobs, grace_seconds=3600, now=later)
    assert (sha, OUTPUT_BYTES) in report.removed and not blobs.exists(sha)


def test_a_run_whose_outputs_no_longer_fit_fails_naming_the_setting(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    client = make_client(keys.alice)
    model, dataset = _model(client, "multiclass"), _dataset(client)
    run = _submit(client, model["id"], dataset["id"])
    others = _owner_bytes(db, run["id"]) - OUTPUT_BYTES
    limit = others + OUTPUT_BYTES - 1  # lowered after the submit: the outputs are 1 byte over
    work(db, max_owner_bytes=limit)
    done = client.get(f"/v1/predictions/{run['id']}").json()
    assert done["status"] == "failed", done
    assert f"BACKPROP_MAX_OWNER_BYTES={limit}" in done["error"]
    assert str(OUTPUT_BYTES) in done["error"]
    assert client.get(f"/v1/predictions/{run['id']}/download").status_code == 409
    assert _result_bytes(db, run["id"]) is None and _owner_bytes(db, run["id"]) == others
    assert client.delete(f"/v1/predictions/{run['id']}").status_code == 204


def test_other_owners_runs_are_not_theirs_to_delete(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    client, bob = make_client(keys.alice), make_client(keys.bob)
    run = _submit(client, _model(client, "binary")["id"], _dataset(client)["id"])
    work(db)
    response = bob.delete(f"/v1/predictions/{run['id']}")
    assert response.status_code == 404
    assert client.get(f"/v1/predictions/{run['id']}").json()["status"] == "succeeded"
