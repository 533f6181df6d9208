"""A worker claims its next job (or pack) in the transaction that ends the last one
(app/jobs/next_claim.py): jobs run one after another with one claim of their own, for
the first, and each ends exactly as before (the packs' outcomes, bit for bit, are
tests/api/test_sweep_packs.py's)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from app.config import Settings
from app.jobs import attempt as attempt_module
from app.jobs import pack_claim
from app.jobs.queue import claim_next
from app.jobs.worker import Worker
from app.storage.blobs import BlobStoreUnavailable
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.api.client import ApiClient
from tests.api.sweeps import create, make_data, sweep_body, work
from tests.queue.rows import get_job
from tests.worker.jobs import add_training_jobs


class _Away:
    """A blob store that is away."""

    def put_bytes(self, data: bytes, sha256: str | None = None) -> Any:
        raise BlobStoreUnavailable("the blob store is away for a moment")


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the claims the worker made in transactions of their own."""
    made: list[int] = []
    claim_pack = pack_claim.claim_pack

    def counted(*args: Any, **kwargs: Any) -> list[Any]:
        taken = claim_pack(*args, **kwargs)
        made.append(len(taken))
        return taken

    monkeypatch.setattr(pack_claim, "claim_pack", counted)
    return made


def test_jobs_one_after_another_claim_in_their_endings(db: Database, claims: list[int]) -> None:
    job_ids = add_training_jobs(db, 3, epochs=2)

    work(db, pack_trials=4)

    # The first job's claim only: the second and third jobs were claimed by the endings
    # of the first and second, and the third's ending found the queue empty (so the
    # worker only read it before it stopped).
    assert claims == [1]
    for job_id in job_ids:
        job = get_job(db, job_id)
        assert (job.status, job.attempts, job.error) == (JobStatus.SUCCEEDED, 1, None)


def test_a_packs_ending_claims_the_next_pack(
    client: ApiClient, db: Database, claims: list[int]
) -> None:
    data = make_data(client)
    grid = {"job.optimizer.learning_rate": [0.003, 0.01, 0.03], "job.batch_size": [8, 32]}
    sweep = create(client, sweep_body(data, grid=grid))

    work(db, pack_trials=4)

    # One pack per batch size: the second was claimed by the first one's ending (on
    # SQLite its trials' one transaction, on PostgreSQL its last trial's).
    assert claims == [3]
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    assert [trial["status"] for trial in done["trials"]] == ["succeeded"] * 6


def test_a_blob_write_that_failed_is_written_again_by_the_trials_own_ending(
    client: ApiClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A blob write that fails fails a pack's joint commit, and each trial then ends on
    # its own: with its blobs written again (the store may be back), not with the failed
    # write kept.
    data = make_data(client)
    sweep = create(client, sweep_body(data, grid={"job.optimizer.learning_rate": [0.01, 0.1]}))
    failures: list[int] = []
    pending = attempt_module.PendingBlob.__init__

    def first_one_fails(self: Any, blobs: Any, data: bytes) -> None:
        if not failures:  # the first final-commit blob (a model): its write fails
            failures.append(len(data))
            blobs = _Away()
        pending(self, blobs, data)

    monkeypatch.setattr(attempt_module.PendingBlob, "__init__", first_one_fails)
    with caplog.at_level(logging.WARNING, logger="backprop.worker"):
        work(db, pack_trials=4)

    assert failures
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert [trial["status"] for trial in done["trials"]] == ["succeeded"] * 2
    released = [r for r in caplog.records if "back to the queue" in r.getMessage()]
    # SQLite: the joint commit failed, and no trial went back to the queue. PostgreSQL
    # ends a pack's trials one by one, so the failed write is that trial's own ending's:
    # it goes back to the queue (and trains again), as a trial alone does.
    assert len(released) == (0 if db.is_sqlite else 1), released
    if db.is_sqlite:
        assert any("endings not written together" in r.getMessage() for r in caplog.records)


def test_a_busy_worker_still_requeues_expired_leases_on_time(db: Database) -> None:
    # Its jobs follow each other, each claimed by the last one's ending: the worker still
    # hands a dead worker's job back to the queue when its lease expires, not only once
    # the queue runs dry.
    (dead,) = add_training_jobs(db, 1, epochs=2)
    held = claim_next(db, worker_id="dead", lease_seconds=0.2)  # nobody renews it
    assert held is not None and held.job_id == dead
    others = add_training_jobs(db, 8, epochs=40, owner="bob")
    settings = Settings(database_url=db.url, checkpoint_seconds=0, poll_seconds=0.05)
    worker = Worker(db, settings, "busy")
    worker._sweep_every = 0.05

    worker.run(burst=True)

    ended = {job_id: get_job(db, job_id) for job_id in (dead, *others)}
    assert {job.status for job in ended.values()} == {JobStatus.SUCCEEDED}
    last = max(ended[job_id].finished_at for job_id in others)
    assert ended[dead].finished_at < last  # requeued mid-chain, not after it
