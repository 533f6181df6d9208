"""Fixtures of the HTTP tests: an app on a migrated database, keys of two owners, clients.

Requests go through real HTTP semantics via Starlette's ApiClient (lifespan included).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from app.config import Settings
from app.jobs.worker import Worker
from app.main import create_app
from app.services.keys import create_key, revoke_key
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.weights import engine_config, export_npz


@dataclass(frozen=True)
class Keys:
    alice: str
    alice2: str  # a second key of the same owner
    bob: str
    revoked: str


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def db(migrated_db: Database) -> Database:
    return migrated_db


@pytest.fixture
def keys(db: Database) -> Keys:
    with db.session() as session:
        alice = create_key(session, key_name="alice", owner_name="alice")
        alice2 = create_key(session, key_name="alice-2", owner_name="alice")
        bob = create_key(session, key_name="bob", owner_name="bob")
        revoked = create_key(session, key_name="old", owner_name="alice")
        revoke_key(session, key_name="old")
    return Keys(alice=alice, alice2=alice2, bob=bob, revoked=revoked)


MakeClient = Callable[..., ApiClient]


def run_worker(db: Database) -> None:
    """Run queued jobs in this process until the queue is empty."""
    settings = Settings(database_url=db.url, checkpoint_seconds=0, poll_seconds=0.05)
    Worker(db, settings, "test-worker").run(burst=True)


@pytest.fixture
def make_client(db: Database) -> Iterator[MakeClient]:
    """``make_client(key=None, **settings) -> ApiClient`` on the test database."""
    with ExitStack() as stack:

        def build(key: str | None = None, **fields: Any) -> ApiClient:
            settings = Settings(database_url=db.url, **fields)
            client = ApiClient(create_app(settings, db))
            stack.enter_context(client)
            if key is not None:
                client.headers.update(auth(key))
            return client

        yield build


@pytest.fixture
def client(make_client: MakeClient, keys: Keys) -> ApiClient:
    """Alice's client with default settings."""
    return make_client(keys.alice)


@pytest.fixture
def bob(make_client: MakeClient, keys: Keys) -> ApiClient:
    return make_client(keys.bob)


XOR_NETWORK = {
    "name": "xor-net",
    "input_size": 2,
    "layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "seed": 0,
}


def make_dataset(client: ApiClient, **body: Any) -> dict[str, Any]:
    payload = {"name": "d", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0], **body}
    response = client.post("/v1/datasets", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_network(client: ApiClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/networks", json={**XOR_NETWORK, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def submit(
    client: ApiClient, network: dict[str, Any], dataset: dict[str, Any], **options: Any
) -> dict[str, Any]:
    response = client.post(
        "/v1/jobs", json={"network_id": network["id"], "dataset_id": dataset["id"], **options}
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def train(
    client: ApiClient,
    db: Database,
    network: dict[str, Any],
    dataset: dict[str, Any],
    **options: Any,
) -> dict[str, Any]:
    """Submit a job, run the worker until the queue is empty; the job, which succeeded."""
    job = submit(client, network, dataset, **options)
    run_worker(db)
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    return dict(done)


def import_model(
    client: ApiClient, network: dict[str, Any], config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A model imported for ``network`` (fresh engine weights)."""
    network_config = engine_config(network)
    data: dict[str, str] = {"network_id": network["id"]}
    if config is not None:
        data["config"] = json.dumps({**config, "network": network_config})
    response = client.post(
        "/v1/models/import",
        data=data,
        files={"file": ("w.npz", export_npz(network_config), "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())
