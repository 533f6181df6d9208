"""A worker claims its next job (or pack) in the transaction that ends the last one
(app/jobs/next_claim.py): jobs run one after another with one claim of their own, for
the first, and each ends exactly as before (the packs' outcomes, bit for bit, are
tests/api/test_sweep_packs.py's)."""

from __future__ import annotations

from typing import Any

import pytest

from app.jobs import pack_claim
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.api.client import ApiClient
from tests.api.sweeps import create, make_data, sweep_body, work
from tests.queue.rows import get_job
from tests.worker.jobs import add_training_jobs


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

    # The first job's claim, then the one that found the queue empty; the second and
    # third jobs were claimed by the endings of the first and second.
    assert claims == [1, 0]
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
    assert claims == [3, 0]
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    assert [trial["status"] for trial in done["trials"]] == ["succeeded"] * 6
