"""Issue 5: every /v1 operation needs a live key; keys are never stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.services.keys import revoke_key
from app.storage.database import Database
from app.storage.tables import ApiKey, WorkerHeartbeat, utcnow
from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient, auth, make_dataset
from tests.api.openapi_ops import operations
from tests.processes import wait_for

BAD_HEADERS = {
    "missing": {},
    "basic": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    "empty bearer": {"Authorization": "Bearer "},
    "no scheme": {"Authorization": "bp_abcdefghijklmnopqrstuvwxyz"},
    "unknown key": {"Authorization": "Bearer bp_" + "x" * 43},
    "not a key": {"Authorization": "Bearer hello"},
}


def _ids() -> dict[str, str]:
    return {
        name: f"{prefix}_0000000000000000"
        for name, prefix in (
            ("dataset_id", "ds"),
            ("network_id", "net"),
            ("job_id", "job"),
            ("model_id", "mdl"),
            ("sweep_id", "swp"),
            ("prediction_id", "pred"),
            ("evaluation_id", "ev"),
        )
    }


def _assert_401(response: object, where: str) -> None:
    assert response.status_code == 401, where  # type: ignore[attr-defined]
    assert response.headers["www-authenticate"] == "Bearer", where  # type: ignore[attr-defined]
    detail = response.json()["detail"]  # type: ignore[attr-defined]
    assert detail[0]["type"] == "unauthorized" and detail[0]["loc"] == ["header", "Authorization"]


def test_every_v1_operation_refuses_bad_keys(make_client: MakeClient, keys: Keys) -> None:
    client = make_client()
    ops = [op for op in operations(client.app) if op.path.startswith("/v1")]
    assert len(ops) >= 17
    headers_cases = {**BAD_HEADERS, "revoked": auth(keys.revoked)}
    for op in ops:
        assert op.secured, f"{op} has no security requirement in the OpenAPI document"
        assert "401" in op.spec["responses"], f"{op} does not document 401"
        for case, headers in headers_cases.items():
            response = client.request(op.method.upper(), op.url(_ids()), headers=headers)
            _assert_401(response, f"{op} with {case}")


def test_ops_endpoints_need_no_key(make_client: MakeClient, db: Database) -> None:
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 200
    # Without a key, /readyz answers for the server, not 401: not ready while no worker
    # has a heartbeat, ready once one has.
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503, not_ready.text
    assert [r for r in not_ready.json()["reasons"] if "worker" in r], not_ready.text
    # HEAD, as uptime checkers send it: the same status, no body.
    assert client.request("HEAD", "/healthz").status_code == 200
    assert (
        client.request("HEAD", "/readyz").status_code == 503
        and client.request("HEAD", "/readyz").content == b""
    )
    with db.session() as session:
        session.add(WorkerHeartbeat(id="w1", hostname="h", pid=1, heartbeat_at=utcnow()))
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "reasons": []}
    assert client.request("HEAD", "/readyz").status_code == 200


def test_openapi_declares_the_bearer_scheme(make_client: MakeClient) -> None:
    document = make_client().get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["ApiKey"]["description"],
    }


def test_revocation_takes_effect_within_the_cache_bound(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    client = make_client(keys.alice2, key_cache_seconds=0.2)
    assert client.get("/v1/datasets").status_code == 200
    with db.session() as session:
        assert revoke_key(session, key_name="alice-2")
    wait_for(
        lambda: client.get("/v1/datasets").status_code == 401,
        what="the revoked key to be refused",
        timeout=10,
    )


def test_uncached_revocation_is_immediate(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    client = make_client(keys.alice2, key_cache_seconds=0)
    assert client.get("/v1/datasets").status_code == 200
    with db.session() as session:
        revoke_key(session, key_name="alice-2")
    _assert_401(client.get("/v1/datasets"), "revoked")


def test_keys_of_one_owner_share_objects(make_client: MakeClient, keys: Keys) -> None:
    first, second = make_client(keys.alice), make_client(keys.alice2)
    dataset = make_dataset(first)
    assert second.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def test_last_used_at_is_written_once_not_per_request(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    client = make_client(keys.alice, key_cache_seconds=0)
    assert client.get("/v1/datasets").status_code == 200
    with db.read_session() as session:
        first = session.scalar(select(ApiKey.last_used_at).where(ApiKey.name == "alice"))
    assert first is not None
    for _ in range(3):
        assert client.get("/v1/datasets").status_code == 200
    with db.read_session() as session:
        again = session.scalar(select(ApiKey.last_used_at).where(ApiKey.name == "alice"))
    assert again == first


def test_database_holds_no_issued_key(client: ApiClient, keys: Keys, db: Database) -> None:
    make_dataset(client)
    if not db.is_sqlite:
        pytest.skip("byte search of the database file needs SQLite")
    db.dispose()  # checkpoint the WAL into the main file
    path = Path(db.engine.url.database or "")
    files = [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))]
    content = b"".join(f.read_bytes() for f in files if f.exists())
    assert len(content) > 0
    for key in (keys.alice, keys.alice2, keys.bob, keys.revoked):
        assert key.encode() not in content
        assert key[3:].encode() not in content  # not even without the prefix


def test_two_authorization_headers_are_refused(make_client: MakeClient, keys: Keys) -> None:
    """Bob's key then Alice's: neither acts (the first acted alone), on the hot path too."""
    client = make_client()
    alice, bob = auth(keys.alice)["Authorization"], auth(keys.bob)["Authorization"]
    both = [("Authorization", bob), ("Authorization", alice)]
    for method, path in (
        ("GET", "/v1/datasets"),
        ("POST", "/v1/models/mdl_0000000000000000/predict"),
    ):
        response = client.request(method, path, headers=both, json={"x": [[0, 0]]})
        _assert_401(response, path)
        assert "one Authorization header" in response.json()["detail"][0]["msg"]
    assert client.get("/v1/datasets", headers={"Authorization": alice}).status_code == 200
