"""Input that used to answer 500: Unicode digits in Last-Event-ID, a config nested
100,000 deep, and MemoryError / RecursionError anywhere in a route (4xx/503, JSON body)."""

from __future__ import annotations

import pytest

from app.api import networks as networks_api
from app.services.jsoncodec import nesting_depth
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import XOR_NETWORK, make_dataset, make_network, train
from tests.weights import engine_config, export_npz


def test_last_event_id_of_unicode_digits_replays_everything(
    client: ApiClient, db: Database
) -> None:
    network, dataset = make_network(client), make_dataset(client)
    job = train(client, db, network, dataset, epochs=3)
    # '²³' in latin-1, as HTTP carries it: str.isdigit() is true of it, int() refuses it.
    for value in ("²³".encode("latin-1"), b"\xd9\xa3", b"3"):
        response = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": value})
        assert response.status_code == 200, response.text
        ids = [line for line in response.text.splitlines() if line.startswith("id: ")]
        assert ids == ([] if value == b"3" else ["id: 1", "id: 2", "id: 3"])


def test_last_event_id_past_any_integer_column_resumes_past_the_end(
    client: ApiClient, db: Database
) -> None:
    """An id over PostgreSQL's integer (2**31) or SQLite's (2**63) is past every event,
    as a smaller one past the last is: the stream answers, with no epoch replayed."""
    network, dataset = make_network(client), make_dataset(client)
    job = train(client, db, network, dataset, epochs=3)
    for value in ("2147483648", "9223372036854775808", "9" * 20):
        response = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": value})
        assert response.status_code == 200, response.text
        assert [line for line in response.text.splitlines() if line.startswith("id: ")] == []
        assert "event: end" in response.text, response.text


def test_nesting_depth_is_counted_outside_strings() -> None:
    assert nesting_depth(b"1") == 0
    assert nesting_depth(r'[1, {"a": "[[[\"[", "b": [[]]}]') == 4
    assert nesting_depth("[" * 100_000) == 100_000


def test_import_config_nested_100000_deep_is_422(client: ApiClient) -> None:
    network = make_network(client)
    deep = '{"network": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(
        "/v1/models/import",
        data={"network_id": network["id"], "config": deep},
        files={"file": ("w.npz", export_npz(engine_config(network)), "application/octet-stream")},
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "config"] and error["type"] == "json_too_deep"
    assert "100001 levels" in error["msg"]
    assert client.get(f"/v1/networks/{network['id']}").status_code == 200


@pytest.mark.parametrize(
    ("raised", "status", "error_type"),
    [(MemoryError, 503, "out_of_memory"), (RecursionError, 422, "too_deep")],
)
def test_memory_and_recursion_errors_are_json_refusals(
    client: ApiClient,
    monkeypatch: pytest.MonkeyPatch,
    raised: type[Exception],
    status: int,
    error_type: str,
) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise raised()

    monkeypatch.setattr(networks_api.service, "create_network", boom)
    response = client.post("/v1/networks", json=XOR_NETWORK)
    assert response.status_code == status, response.text
    (error,) = response.json()["detail"]
    assert error["type"] == error_type and "loc" in error
    assert client.get("/v1/networks").status_code == 200
