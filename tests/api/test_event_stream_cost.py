"""Event streams of constant cost: polls read the epoch column, the history only when it
moved; an owner's open streams are capped (429 naming BACKPROP_MAX_STREAMS_PER_OWNER)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from app.services import job_events as events
from app.storage.database import Database
from app.storage.tables import Job
from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient, make_dataset, make_network, run_worker, submit


def owner_of(db: Database, job_id: str) -> int:
    with db.read_session() as session:
        owner_id = session.scalar(select(Job.owner_id).where(Job.id == job_id))
    assert owner_id is not None
    return owner_id


def test_polls_read_the_history_only_when_the_epoch_moved(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    network, dataset = make_network(client), make_dataset(client)
    job = submit(client, network, dataset, epochs=5)
    owner_id = owner_of(db, job["id"])
    calls = {"epoch": 0, "history": 0}
    job_epoch, job_progress = events.job_epoch, events.job_progress

    def counted_epoch(*args: Any, **kwargs: Any) -> tuple[str, int]:
        calls["epoch"] += 1
        if calls["epoch"] == 20:  # 19 polls of a queued job, then it trains to the end
            run_worker(db)
        return job_epoch(*args, **kwargs)

    def counted_history(*args: Any, **kwargs: Any) -> Any:
        calls["history"] += 1
        return job_progress(*args, **kwargs)

    monkeypatch.setattr(events, "job_epoch", counted_epoch)
    monkeypatch.setattr(events, "job_progress", counted_history)

    async def collect() -> list[str]:
        stream = events.job_events(db, owner_id=owner_id, job_id=job["id"], poll_seconds=0.001)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(collect())
    assert calls == {"epoch": 20, "history": 1}
    assert [c.split("\n")[0] for c in chunks[:-1]] == [f"id: {e}" for e in range(1, 6)]
    assert chunks[-1].startswith("event: end")


def test_open_streams_are_capped_per_owner(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    alice = make_client(keys.alice, max_streams_per_owner=1)
    bob = make_client(keys.bob, max_streams_per_owner=1)
    network, dataset = make_network(alice), make_dataset(alice)
    job = submit(alice, network, dataset, epochs=2)
    run_worker(db)
    limiter = alice.app.state.backprop.streams
    owner_id = owner_of(db, job["id"])
    held = limiter.acquire(owner_id)  # alice's one stream, open elsewhere
    response = alice.get(f"/v1/jobs/{job['id']}/events")
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "5"
    (error,) = response.json()["detail"]
    assert "BACKPROP_MAX_STREAMS_PER_OWNER=1" in error["msg"]
    assert error["type"] == "too_many_streams"
    bob_network = make_network(bob)
    assert bob.get(f"/v1/networks/{bob_network['id']}").status_code == 200
    held.release()
    held.release()  # idempotent
    for _ in range(3):  # each finished stream gives its slot back
        response = alice.get(f"/v1/jobs/{job['id']}/events")
        assert response.status_code == 200 and "event: end" in response.text
    assert limiter.open[owner_id] == 0
