"""Job and model lists: light items (no per-epoch history) and filters by network and
dataset, within the caller's own objects."""

from __future__ import annotations

from typing import Any

from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import import_model, make_network, run_worker, submit


def _ids(client: ApiClient, path: str) -> set[str]:
    page = client.get(path)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == len(body["items"])
    return {item["id"] for item in body["items"]}


def _trained(client: ApiClient, db: Database) -> dict[str, Any]:
    """Two datasets x two networks, one finished job (and model) per pair, plus a model
    imported for the first network (it has no dataset)."""
    datasets = [
        client.post("/v1/datasets/generate", json={"kind": "xor", "n_samples": 40}).json()
        for _ in range(2)
    ]
    networks = [make_network(client), make_network(client, name="other")]
    jobs = {
        (n, d): submit(client, networks[n], datasets[d], epochs=3, batch_size=8)["id"]
        for n in range(2)
        for d in range(2)
    }
    imported = import_model(client, networks[0])
    run_worker(db)
    models = {
        pair: client.get(f"/v1/jobs/{job_id}").json()["model_id"] for pair, job_id in jobs.items()
    }
    assert all(models.values())
    return {
        "datasets": [d["id"] for d in datasets],
        "networks": [n["id"] for n in networks],
        "jobs": jobs,
        "models": models,
        "imported": imported["id"],
    }


def test_job_lists_carry_the_latest_metrics_but_no_history(client: ApiClient, db: Database) -> None:
    made = _trained(client, db)
    items = client.get("/v1/jobs").json()["items"]
    assert len(items) == 4
    summary_fields = set(client.app.openapi()["components"]["schemas"]["JobSummary"]["properties"])
    for item in items:
        assert set(item) == summary_fields and "history" not in item
        full = client.get(f"/v1/jobs/{item['id']}").json()
        assert full["epoch"] == len(full["history"]) == 3
        # Lists leave out what grows with the run: the history and the findings.
        assert item == {k: v for k, v in full.items() if k not in ("history", "findings")}
        # The metrics are the last entry's numbers; its per-layer statistics stay there.
        assert item["metrics"] == {k: v for k, v in full["history"][-1].items() if k != "layers"}
    assert {item["id"] for item in items} == set(made["jobs"].values())


def test_jobs_filter_by_network_and_dataset(client: ApiClient, db: Database) -> None:
    made = _trained(client, db)
    jobs, (net0, net1), (ds0, ds1) = made["jobs"], made["networks"], made["datasets"]
    assert _ids(client, f"/v1/jobs?network_id={net0}") == {jobs[0, 0], jobs[0, 1]}
    assert _ids(client, f"/v1/jobs?dataset_id={ds1}") == {jobs[0, 1], jobs[1, 1]}
    assert _ids(client, f"/v1/jobs?network_id={net1}&dataset_id={ds0}") == {jobs[1, 0]}
    assert _ids(client, f"/v1/jobs?dataset_id={ds0}&status=succeeded") == {
        jobs[0, 0],
        jobs[1, 0],
    }
    assert _ids(client, f"/v1/jobs?dataset_id={ds0}&status=queued") == set()
    assert _ids(client, "/v1/jobs?network_id=net_0000000000000000") == set()
    page = client.get(f"/v1/jobs?network_id={net0}&limit=1&offset=1").json()
    assert (len(page["items"]), page["total"]) == (1, 2)


def test_models_filter_by_dataset_through_their_jobs(client: ApiClient, db: Database) -> None:
    made = _trained(client, db)
    models, (net0, _), (ds0, ds1) = made["models"], made["networks"], made["datasets"]
    assert _ids(client, f"/v1/models?dataset_id={ds0}") == {models[0, 0], models[1, 0]}
    assert _ids(client, f"/v1/models?dataset_id={ds1}&network_id={net0}") == {models[0, 1]}
    assert _ids(client, f"/v1/models?network_id={net0}") == {
        models[0, 0],
        models[0, 1],
        made["imported"],  # imported: in its network's list, in no dataset's
    }
    assert _ids(client, "/v1/models?dataset_id=ds_0000000000000000") == set()


def test_filters_by_another_owner_s_ids_find_nothing(
    client: ApiClient, bob: ApiClient, db: Database
) -> None:
    made = _trained(client, db)
    (net0, _), (ds0, _) = made["networks"], made["datasets"]
    theirs = submit(
        bob,
        make_network(bob),
        bob.post("/v1/datasets/generate", json={"kind": "xor", "n_samples": 40}).json(),
        epochs=2,
    )
    run_worker(db)
    for path in (
        f"/v1/jobs?network_id={net0}",
        f"/v1/jobs?dataset_id={ds0}",
        f"/v1/models?dataset_id={ds0}",
        f"/v1/models?network_id={net0}",
    ):
        assert _ids(bob, path) == set(), path
    bobs_dataset = bob.get(f"/v1/jobs/{theirs['id']}").json()["dataset_id"]
    assert _ids(client, f"/v1/jobs?dataset_id={bobs_dataset}") == set()
    assert _ids(client, f"/v1/models?dataset_id={bobs_dataset}") == set()
    assert _ids(bob, f"/v1/models?dataset_id={bobs_dataset}") != set()


def test_filter_values_are_checked(client: ApiClient) -> None:
    for path in ("/v1/jobs", "/v1/models"):
        response = client.get(f"{path}?dataset_id={'x' * 65}")
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "dataset_id"]


def test_page_numbers_are_plain_digits(client: ApiClient) -> None:
    for value in ("5.0", "+5", " 5", "5_0", "²", "five", "-1"):
        for query in (f"limit={value}", f"offset={value}"):
            response = client.get(f"/v1/networks?{query}")
            assert response.status_code == 422, (query, response.text)
            error = response.json()["detail"][0]
            assert error["loc"] == ["query", query.split("=")[0]], error
    page = client.get("/v1/networks?limit=05&offset=0").json()
    assert (page["limit"], page["offset"]) == (5, 0)
    dataset = client.post("/v1/datasets/generate", json={"kind": "xor"}).json()
    rows = client.get(f"/v1/datasets/{dataset['id']}/data?limit=2.0")
    assert rows.status_code == 422 and rows.json()["detail"][0]["loc"] == ["query", "limit"]


def test_a_query_parameter_given_twice_is_refused(client: ApiClient) -> None:
    """Every query parameter takes one value: a repeated one is a 422 naming it (not the
    last value silently, which would read ?status=a&status=b as a filter on b alone)."""
    for query in ("status=queued&status=running", "limit=1&offset=0&limit=2", "x=1&x=1"):
        for path in ("/v1/jobs", "/v1/networks"):
            response = client.get(f"{path}?{query}")
            assert response.status_code == 422, (path, query, response.text)
            (error,) = response.json()["detail"]
            name = query.split("=")[0] if not query.startswith("limit=1&") else "limit"
            assert error["loc"] == ["query", name], error
            assert error["type"] == "duplicate_parameter" and "2 times" in error["msg"], error
    assert client.get("/v1/jobs?status=queued&limit=5&offset=0").status_code == 200
    assert client.get("/v1/jobs?limit=5&").status_code == 200
