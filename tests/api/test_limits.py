"""Every limit: accepted at the limit, refused one over it, naming the setting and value."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from starlette.types import Message

from tests.api.conftest import (
    XOR_NETWORK,
    Keys,
    MakeClient,
    auth,
    import_model,
    make_dataset,
    make_network,
)


def _refusal(response: Any, status: int, setting: str, value: int) -> None:
    assert response.status_code == status, response.text
    msg = response.json()["detail"][0]["msg"]
    assert f"{setting}={value}" in msg, msg


def test_body_size_json_and_multipart(make_client: MakeClient, keys: Keys) -> None:
    limit = 300
    client = make_client(keys.alice, max_body_bytes=limit)
    body = {"name": "n", "x": [[0, 0], [1, 1]], "y": [0, 1]}
    raw = json.dumps(body).encode()
    exact = raw[:-1] + b" " * (limit - len(raw)) + b"}"
    assert len(exact) == limit
    headers = {"content-type": "application/json"}
    assert client.post("/v1/datasets", content=exact, headers=headers).status_code == 201
    over = client.post("/v1/datasets", content=exact + b" ", headers=headers)
    _refusal(over, 413, "BACKPROP_MAX_BODY_BYTES", limit)
    # Uploads stream to disk and have their own, larger limit.
    csv = b"a,y\n" + b"1,0\n" * 200
    upload = client.post("/v1/datasets/upload", files={"file": ("d.csv", csv, "text/csv")})
    assert upload.status_code == 201, upload.text
    small = make_client(keys.alice, max_upload_bytes=limit)
    upload = small.post("/v1/datasets/upload", files={"file": ("d.csv", csv, "text/csv")})
    _refusal(upload, 413, "BACKPROP_MAX_UPLOAD_BYTES", limit)


def test_body_size_counted_without_content_length(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(keys.alice, max_body_bytes=300)

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "n", "x": [[0, 0]], "y": [0], "pad": "'
        for _ in range(100):
            yield b"xxxxxxxxxx"
        yield b'"}'

    response = client.post(
        "/v1/datasets", content=chunks(), headers={"content-type": "application/json"}
    )
    _refusal(response, 413, "BACKPROP_MAX_BODY_BYTES", 300)


def test_body_size_with_a_lying_content_length(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(max_body_bytes=300)
    app = client.app
    body = b'{"name": "n", "x": [[0, 0]], "y": [0], "pad": "' + b"x" * 1000 + b'"}'
    sent: list[Message] = []

    async def call() -> None:
        parts = [body[i : i + 100] for i in range(0, len(body), 100)]

        async def receive() -> Message:
            chunk = parts.pop(0) if parts else b""
            return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/datasets",
            "raw_path": b"",
            "root_path": "",
            "query_string": b"",
            "server": ("test", 80),
            "client": ("test", 1),
            "state": {},
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"20"),
                *[(k.lower().encode(), v.encode()) for k, v in auth(keys.alice).items()],
            ],
        }
        await app(scope, receive, send)

    asyncio.run(call())
    assert sent[0]["status"] == 413
    assert b"BACKPROP_MAX_BODY_BYTES=300" in sent[1]["body"]


def test_dataset_cells(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(keys.alice, max_dataset_cells=8)
    make_dataset(client)  # 4 x 2
    over = client.post("/v1/datasets", json={"name": "n", "x": [[0, 0, 0]] * 3, "y": [0] * 3})
    _refusal(over, 413, "BACKPROP_MAX_DATASET_CELLS", 8)
    assert (
        client.post("/v1/datasets/generate", json={"kind": "xor", "n_samples": 4}).status_code
        == 201
    )
    over = client.post("/v1/datasets/generate", json={"kind": "xor", "n_samples": 5})
    _refusal(over, 413, "BACKPROP_MAX_DATASET_CELLS", 8)
    csv = b"a,b,y\n" + b"1,2,0\n" * 4
    ok = client.post("/v1/datasets/upload", files={"file": ("d.csv", csv, "text/csv")})
    assert ok.status_code == 201, ok.text
    over = client.post(
        "/v1/datasets/upload", files={"file": ("d.csv", csv + b"1,2,0\n", "text/csv")}
    )
    _refusal(over, 413, "BACKPROP_MAX_DATASET_CELLS", 8)


def test_parameter_count(make_client: MakeClient, keys: Keys) -> None:
    make_network(make_client(keys.alice, max_parameters=33))  # 8*3 + 1*9
    over = make_client(keys.alice, max_parameters=32).post("/v1/networks", json=XOR_NETWORK)
    _refusal(over, 422, "BACKPROP_MAX_PARAMETERS", 32)


def test_epochs_times_samples(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(keys.alice, max_job_sample_epochs=40)
    body = {"network_id": make_network(client)["id"], "dataset_id": make_dataset(client)["id"]}
    assert client.post("/v1/jobs", json={**body, "epochs": 10}).status_code == 202
    over = client.post("/v1/jobs", json={**body, "epochs": 11})
    _refusal(over, 422, "BACKPROP_MAX_JOB_SAMPLE_EPOCHS", 40)
    assert over.json()["detail"][0]["loc"] == ["body", "epochs"]


def test_predict_rows(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(keys.alice, max_predict_rows=4)
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    assert client.post(url, json={"x": [[0, 0]] * 4}).status_code == 200
    _refusal(client.post(url, json={"x": [[0, 0]] * 5}), 413, "BACKPROP_MAX_PREDICT_ROWS", 4)


def test_active_jobs_per_owner(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(keys.alice, max_active_jobs=2)
    body = {
        "network_id": make_network(client)["id"],
        "dataset_id": make_dataset(client)["id"],
        "epochs": 1,
    }
    first = client.post("/v1/jobs", json=body).json()
    assert client.post("/v1/jobs", json=body).status_code == 202
    over = client.post("/v1/jobs", json=body)
    _refusal(over, 429, "BACKPROP_MAX_ACTIVE_JOBS", 2)
    assert int(over.headers["retry-after"]) > 0
    # Another owner has their own allowance.
    other = make_client(keys.bob, max_active_jobs=2)
    theirs = {"network_id": make_network(other)["id"], "dataset_id": make_dataset(other)["id"]}
    assert other.post("/v1/jobs", json=theirs).status_code == 202
    assert client.post(f"/v1/jobs/{first['id']}/cancel").status_code == 202
    assert client.post("/v1/jobs", json=body).status_code == 202
