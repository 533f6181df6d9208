"""HEAD on every resource answers as GET would, without the body (app/api/head_requests.py)."""

from __future__ import annotations

from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient


def _network(client: ApiClient) -> dict:
    body = {"name": "n", "input_size": 2, "layers": [{"units": 1, "activation": "sigmoid"}]}
    response = client.post("/v1/networks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_head_of_a_resource_has_gets_status_and_headers_and_no_body(client: ApiClient) -> None:
    network = _network(client)
    for path in ("/v1/networks", f"/v1/networks/{network['id']}", "/healthz", "/openapi.json"):
        got = client.get(path)
        head = client.request("HEAD", path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["content-length"] == got.headers["content-length"], path


def test_head_refusals_are_gets_without_their_body(
    client: ApiClient, make_client: MakeClient
) -> None:
    missing = client.request("HEAD", "/v1/networks/nope")
    assert (missing.status_code, missing.content) == (404, b"")
    post_only = client.request("HEAD", "/v1/networks/nope/whatever")
    assert post_only.status_code == client.get("/v1/networks/nope/whatever").status_code
    anonymous = make_client(None).request("HEAD", "/v1/networks")
    assert (anonymous.status_code, anonymous.content) == (401, b"")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


def test_head_of_a_method_not_allowed_names_the_allowed_ones(client: ApiClient) -> None:
    response = client.request("HEAD", "/v1/jobs/nope/cancel")
    assert response.status_code == 405 and response.content == b""
    assert "POST" in response.headers["allow"]


def test_head_of_an_event_stream_answers_at_once_and_frees_its_slot(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    alice = make_client(keys.alice, max_streams_per_owner=1)
    network = _network(alice)
    data = alice.post("/v1/datasets", json={"name": "d", "x": [[0, 1], [1, 0]], "y": [0, 1]})
    job = alice.post(
        "/v1/jobs",
        json={"network_id": network["id"], "dataset_id": data.json()["id"], "epochs": 5},
    ).json()
    # Queued, no worker: a GET would wait for an event that never comes (the test would
    # time out); a HEAD ends with the headers.
    for _ in range(3):  # one slot: each HEAD's is freed
        head = alice.request("HEAD", f"/v1/jobs/{job['id']}/events")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/event-stream")


def test_head_requests_are_counted_by_their_route(client: ApiClient) -> None:
    network = _network(client)
    client.request("HEAD", f"/v1/networks/{network['id']}")
    metrics = client.get("/metrics").text
    assert 'method="HEAD",route="/v1/networks/{network_id}",status="200"' in metrics
