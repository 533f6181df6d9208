"""Issue 5: every object belongs to its owner; a foreign id is answered like a missing one."""

from __future__ import annotations

from typing import Any

from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient, auth, import_model, make_network
from tests.api.openapi_ops import Operation, operations

OBJECT_PARAMS = {
    "dataset_id": "datasets",
    "network_id": "networks",
    "job_id": "jobs",
    "model_id": "models",
    "prediction_id": "predictions",
    "evaluation_id": "evaluations",
}
ID_PARAMS = {**OBJECT_PARAMS, "sweep_id": "sweeps"}  # a sweep's trials are jobs of their own
# evaluations are listed per model
LISTED = {name: resource for name, resource in OBJECT_PARAMS.items() if name != "evaluation_id"}


def _objects(client: ApiClient, key: str) -> dict[str, str]:
    """One object of each kind for ``key``'s owner; job stays queued (no worker here)."""
    client.headers.update(auth(key))
    try:
        dataset = client.post("/v1/datasets/generate", json={"kind": "xor", "n_samples": 40})
        assert dataset.status_code == 201, dataset.text
        network = make_network(client)
        model = import_model(client, network)
        job = client.post(
            "/v1/jobs",
            json={"network_id": network["id"], "dataset_id": dataset.json()["id"], "epochs": 5},
        )
        assert job.status_code == 202, job.text
        on_it = {"dataset_id": dataset.json()["id"]}
        run = client.post(f"/v1/models/{model['id']}/predictions", json=on_it)
        assert run.status_code == 202, run.text
        evaluation = client.post(f"/v1/models/{model['id']}/evaluate", json=on_it)
        assert evaluation.status_code == 201, evaluation.text
    finally:
        del client.headers["Authorization"]
    return {
        "dataset_id": dataset.json()["id"],
        "network_id": network["id"],
        "job_id": job.json()["id"],
        "model_id": model["id"],
        "prediction_id": run.json()["id"],
        "evaluation_id": evaluation.json()["id"],
    }


def _with_sweep(client: ApiClient, key: str, ids: dict[str, str]) -> dict[str, str]:
    """``ids`` and a queued one-trial sweep on its dataset."""
    body = {
        "name": "s",
        "dataset_id": ids["dataset_id"],
        "network": {"input_size": 2, "layers": [{"units": 1, "activation": "sigmoid"}]},
        "job": {"epochs": 5},
        "grid": {"job.optimizer.learning_rate": [0.1]},
        "strategy": {"name": "grid"},
    }
    sweep = client.post("/v1/sweeps", json=body, headers=auth(key))
    assert sweep.status_code == 202, sweep.text
    return {**ids, "sweep_id": sweep.json()["id"]}


def _missing(ids: dict[str, str]) -> dict[str, str]:
    return {name: value.split("_")[0] + "_" + "0" * 16 for name, value in ids.items()}


def _body(op: Operation) -> dict[str, Any] | None:
    """The operation's documented example body (so that a required field is present and
    the answer is about the id), else ``{}``; None when it takes no JSON body."""
    content = op.spec.get("requestBody", {}).get("content", {})
    media = content.get("application/json", {})
    schema = media.get("schema")
    if schema is None:
        return None
    if media.get("examples"):
        return dict(next(iter(media["examples"].values()))["value"])
    if "$ref" in schema:
        return {}
    examples = schema.get("examples") or [{}]
    return dict(examples[0])


def _call(client: ApiClient, op: Operation, ids: dict[str, str], key: str) -> Any:
    body = _body(op)
    kwargs: dict[str, Any] = {"headers": auth(key)}
    if body is not None:
        kwargs["json"] = body
    return client.request(op.method.upper(), op.url(ids), **kwargs)


def test_foreign_ids_are_answered_like_missing_ones(make_client: MakeClient, keys: Keys) -> None:
    client = make_client()
    mine = _with_sweep(client, keys.alice, _objects(client, keys.alice))
    theirs = _with_sweep(client, keys.bob, _objects(client, keys.bob))
    # Warm alice's model into the cache so bob's predict meets the cached path too.
    warm = client.post(
        f"/v1/models/{mine['model_id']}/predict", json={"x": [[0, 0]]}, headers=auth(keys.alice)
    )
    assert warm.status_code == 200, warm.text
    id_ops = [op for op in operations(client.app) if op.path_params]
    assert {p for op in id_ops for p in op.path_params} == set(ID_PARAMS)
    for key, foreign in ((keys.bob, mine), (keys.alice, theirs)):
        for op in id_ops:
            missing = _call(client, op, _missing(foreign), key)
            answer = _call(client, op, foreign, key)
            assert answer.status_code == 404, f"{op}: {answer.status_code} {answer.text}"
            assert answer.json() == missing.json(), str(op)
    # Nothing was deleted or cancelled by the foreign calls.
    for key, ids in ((keys.alice, mine), (keys.bob, theirs)):
        for name, resource in ID_PARAMS.items():
            response = client.get(f"/v1/{resource}/{ids[name]}", headers=auth(key))
            assert response.status_code == 200, (name, response.text)
        job = client.get(f"/v1/jobs/{ids['job_id']}", headers=auth(key)).json()
        assert job["status"] == "queued" and not job["cancel_requested"]


def test_lists_are_disjoint(make_client: MakeClient, keys: Keys) -> None:
    client = make_client()
    mine, theirs = _objects(client, keys.alice), _objects(client, keys.bob)
    for resource in LISTED.values():
        seen = {}
        for key in (keys.alice, keys.bob):
            page = client.get(f"/v1/{resource}", headers=auth(key)).json()
            seen[key] = {item["id"] for item in page["items"]}
            assert page["total"] == len(seen[key]) == 1
        assert not seen[keys.alice] & seen[keys.bob]
    filtered = client.get(f"/v1/models?network_id={mine['network_id']}", headers=auth(keys.bob))
    assert filtered.json()["items"] == []
    assert theirs["model_id"] not in client.get("/v1/models", headers=auth(keys.alice)).text


def test_ids_inside_bodies_are_owner_checked(make_client: MakeClient, keys: Keys) -> None:
    client = make_client()
    mine, theirs = _objects(client, keys.alice), _objects(client, keys.bob)
    cases = {
        "network_id": {"network_id": theirs["network_id"], "dataset_id": mine["dataset_id"]},
        "dataset_id": {"network_id": mine["network_id"], "dataset_id": theirs["dataset_id"]},
        "init_model_id": {
            "network_id": mine["network_id"],
            "dataset_id": mine["dataset_id"],
            "init_model_id": theirs["model_id"],
        },
    }
    for field, body in cases.items():
        response = client.post("/v1/jobs", json=body, headers=auth(keys.alice))
        assert response.status_code == 404, response.text
        assert response.json()["detail"][0]["loc"] == ["body", field]
    imported = client.post(
        "/v1/models/import",
        data={"network_id": theirs["network_id"]},
        files={"file": ("w.npz", b"PK", "application/octet-stream")},
        headers=auth(keys.alice),
    )
    assert imported.status_code == 404
    assert imported.json()["detail"][0]["loc"] == ["body", "network_id"]
