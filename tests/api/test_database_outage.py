"""While the database is away (every session fails as a stopped server makes it fail):
503 + Retry-After + a JSON body, never a 500; predict of a cached model with a cached key
keeps answering within BACKPROP_DB_OUTAGE_GRACE_SECONDS; all is well once it is back.
(tests/faults/test_database_restart.py does the same with a real PostgreSQL restart.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from app.services.keys import revoke_key
from app.storage.database import Database
from tests.api.conftest import Keys, MakeClient, auth, import_model, make_network

ROWS = {"x": [[0, 1], [1, 1]]}
STALE_SECONDS = 0.1  # past the caches' freshness below: the next request asks the database


def _down(*_args: Any, **_kwargs: Any) -> Iterator[Any]:
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def take_down(monkeypatch: pytest.MonkeyPatch, db: Database) -> None:
    for name in ("session", "read_session"):
        monkeypatch.setattr(db, name, contextmanager(_down))


def test_requests_get_503_and_cached_predicts_keep_answering(
    make_client: MakeClient, keys: Keys, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(keys.alice, key_cache_seconds=0.05, model_recheck_seconds=0.05)
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    before = client.post(url, json=ROWS)
    assert before.status_code == 200
    time.sleep(STALE_SECONDS)

    take_down(monkeypatch, db)
    during = client.post(url, json=ROWS)
    assert during.status_code == 200, during.text
    assert during.json() == before.json()
    listing = client.get("/v1/networks")
    assert listing.status_code == 503
    assert int(listing.headers["Retry-After"]) > 0
    (error,) = listing.json()["detail"]
    assert error["type"] == "database_unavailable" and error["loc"] == ["database"]
    # A key this process never verified cannot be trusted without the database.
    stranger = client.post(url, json=ROWS, headers=auth(keys.bob))
    assert stranger.status_code == 503

    monkeypatch.undo()
    assert client.get("/v1/networks").status_code == 200
    assert client.post(url, json=ROWS).json() == before.json()


def test_without_grace_predict_answers_503_too(
    make_client: MakeClient, keys: Keys, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(
        keys.alice, key_cache_seconds=0.05, model_recheck_seconds=0.05, db_outage_grace_seconds=0
    )
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    assert client.post(url, json=ROWS).status_code == 200
    time.sleep(STALE_SECONDS)
    take_down(monkeypatch, db)
    refused = client.post(url, json=ROWS)
    assert refused.status_code == 503
    assert refused.json()["detail"][0]["type"] == "database_unavailable"


def test_a_key_seen_revoked_is_not_served_during_an_outage(
    make_client: MakeClient, keys: Keys, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(keys.alice2, key_cache_seconds=0.05, model_recheck_seconds=0.05)
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    assert client.post(url, json=ROWS).status_code == 200
    with db.session() as session:
        revoke_key(session, key_name="alice-2")
    time.sleep(STALE_SECONDS)
    assert client.post(url, json=ROWS).status_code == 401  # the lookup saw the revocation
    take_down(monkeypatch, db)
    assert client.post(url, json=ROWS).status_code == 503


def test_a_key_verified_as_the_database_goes_away_still_answers(
    make_client: MakeClient, keys: Keys, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup read the key, then the database went away before the ``last_used_at``
    write that follows it (a restart beginning): the request is answered all the same."""
    monkeypatch.setattr("app.api.auth.LAST_USED_INTERVAL_SECONDS", 0.0)  # every lookup writes
    client = make_client(keys.alice, key_cache_seconds=0.05, model_recheck_seconds=60)
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    before = client.post(url, json=ROWS)
    assert before.status_code == 200
    time.sleep(STALE_SECONDS)

    monkeypatch.setattr(db, "session", contextmanager(_down))  # reads work, writes fail
    during = client.post(url, json=ROWS)
    assert during.status_code == 200, during.text
    assert during.json() == before.json()
