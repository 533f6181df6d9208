"""A sweep's trials as jobs: GET /v1/jobs shows their sweep and trial index (null for a
job of its own) and filters by sweep; the model a trial made carries both on its card."""

from __future__ import annotations

from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import make_dataset, make_network, run_worker, submit
from tests.api.sweeps import create, make_data, sweep_body


def test_jobs_show_and_filter_by_their_sweep(
    client: ApiClient, bob: ApiClient, db: Database
) -> None:
    data = make_data(client)
    sweep = create(client, sweep_body(data, grid={"job.batch_size": [8, 16, 32]}))
    other = create(client, sweep_body(data))
    alone = submit(client, make_network(client), make_dataset(client), epochs=1)
    assert alone["sweep_id"] is None and alone["trial_index"] is None

    listed = client.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()
    assert listed["total"] == 3
    by_job = {item["id"]: item for item in listed["items"]}
    for trial in sweep["trials"]:
        job = by_job[trial["job_id"]]
        assert job["sweep_id"] == sweep["id"] and job["trial_index"] == trial["index"]
        one = client.get(f"/v1/jobs/{trial['job_id']}").json()
        assert one["sweep_id"] == sweep["id"] and one["trial_index"] == trial["index"]
    every = client.get("/v1/jobs").json()
    assert every["total"] == 3 + 2 + 1
    assert {item["sweep_id"] for item in every["items"]} == {sweep["id"], other["id"], None}
    assert client.get("/v1/jobs", params={"sweep_id": "swp_none"}).json()["total"] == 0
    assert bob.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["total"] == 0


def test_a_trial_model_card_names_its_sweep_and_trial(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    sweep = create(client, sweep_body(data))
    run_worker(db)
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    for trial in done["trials"]:
        model = client.get(f"/v1/models/{trial['model_id']}").json()
        lineage = model["card"]["lineage"]
        assert lineage["sweep_id"] == sweep["id"] and lineage["trial_index"] == trial["index"]
        assert lineage["job_id"] == trial["job_id"]
        text = client.get(f"/v1/models/{trial['model_id']}/card").text
        assert f"- Sweep: `{sweep['id']}`, trial {trial['index']}" in text
