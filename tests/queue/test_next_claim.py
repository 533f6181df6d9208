"""The worker's next claim taken in the transaction of a job's final commit
(``app.jobs.next_claim``): it holds once that commits, and a final commit that does not
happen (a crash, an error before the commit) leaves the next job queued, no attempt
spent on it."""

from __future__ import annotations

import threading
import time

import pytest

from app.jobs.endings import Finishing, TrainedModel, finish_item, finish_together
from app.jobs.next_claim import NextClaim
from app.jobs.pulse import Lease
from app.jobs.queue import Claim, Progress, claim_next
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.queue.rows import add_jobs, cancel, get_job


def _item(claim: Claim, before_commit: object = None) -> Finishing:
    progress = Progress(
        epoch=1,
        metrics={"loss": 0.5},
        history=[{"epoch": 1, "loss": 0.5}],
        samples_trained=4,
        train_seconds=0.1,
    )
    model = TrainedModel(config={}, weights_sha256=claim.job_id, weights_size=3, metrics=None)
    return Finishing(claim, progress, model, before_commit=before_commit)  # type: ignore[arg-type]


def _next_claim(stopping: threading.Event | None = None) -> NextClaim:
    return NextClaim(
        worker_id="w", lease_seconds=30, size=4, stopping=stopping or threading.Event()
    )


def test_the_next_job_is_claimed_with_the_final_commit(migrated_db: Database) -> None:
    first_id, second_id = add_jobs(migrated_db, 2)
    first = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert first is not None and first.job_id == first_id
    next_claim = _next_claim()

    outcome = finish_item(migrated_db, _item(first), then=next_claim.in_transaction)

    assert outcome.status == JobStatus.SUCCEEDED
    assert [claim.job_id for claim in next_claim.claims] == [second_id]
    (claim,) = next_claim.claims
    second = get_job(migrated_db, second_id)
    assert (second.status, second.worker_id, second.attempts) == (JobStatus.RUNNING, "w", 1)
    assert second.lease_token == claim.lease_token and claim.attempt == 1


def test_a_final_commit_that_fails_leaves_the_next_job_queued(migrated_db: Database) -> None:
    first_id, second_id = add_jobs(migrated_db, 2)
    first = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert first is not None
    next_claim = _next_claim()

    def crash() -> None:  # what a worker dying inside the transaction leaves: no commit
        raise RuntimeError("died before the commit")

    with pytest.raises(RuntimeError):
        finish_together(migrated_db, [_item(first, crash)], then=next_claim.in_transaction)

    assert next_claim.claims == []
    second = get_job(migrated_db, second_id)
    assert (second.status, second.attempts, second.lease_token) == (JobStatus.QUEUED, 0, None)
    assert get_job(migrated_db, first_id).status == JobStatus.RUNNING
    # The ending retried (as dbretry does) claims anew, and that claim holds.
    outcome = finish_item(migrated_db, _item(first), then=next_claim.in_transaction)
    assert outcome.status == JobStatus.SUCCEEDED
    assert [claim.job_id for claim in next_claim.claims] == [second_id]
    assert get_job(migrated_db, second_id).attempts == 1


def test_one_claim_only_and_none_while_stopping(migrated_db: Database) -> None:
    ids = add_jobs(migrated_db, 3)
    first, second = (claim_next(migrated_db, worker_id="w", lease_seconds=30) for _ in range(2))
    assert first is not None and second is not None
    next_claim = _next_claim()
    for claim in (first, second):  # two endings offer; the first one's claim is kept
        finish_item(migrated_db, _item(claim), then=next_claim.in_transaction)
        assert [claim.job_id for claim in next_claim.claims] == [ids[2]]

    stopping = threading.Event()
    stopping.set()
    more = add_jobs(migrated_db, 2, owner="bob")
    third = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert third is not None and third.job_id == more[0]
    stopped = _next_claim(stopping)
    finish_item(migrated_db, _item(third), then=stopped.in_transaction)
    assert stopped.claims == []
    assert get_job(migrated_db, more[1]).status == JobStatus.QUEUED


def test_the_claim_holds_when_the_job_ends_cancelled(migrated_db: Database) -> None:
    # A cancel requested before the final commit wins: the job is ended by a second
    # transaction (end_cancelled); the claim made in the first one holds all the same.
    first_id, second_id = add_jobs(migrated_db, 2)
    first = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert first is not None
    cancel(migrated_db, first_id, keep_model=False)
    next_claim = _next_claim()

    outcome = finish_item(migrated_db, _item(first), then=next_claim.in_transaction)

    assert outcome.status == JobStatus.CANCELLED
    assert [claim.job_id for claim in next_claim.claims] == [second_id]
    assert get_job(migrated_db, second_id).status == JobStatus.RUNNING


def test_a_claims_lease_deadline_counts_from_the_claim(migrated_db: Database) -> None:
    # The pulse holds a claim made in an ending a while after it was made: its deadline
    # (how long a write for the job is worth retrying) counts from the claim, never late.
    add_jobs(migrated_db, 2)
    first = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert first is not None
    next_claim = _next_claim()
    finish_item(migrated_db, _item(first), then=next_claim.in_transaction)
    (claim,) = next_claim.claims
    assert claim.leased_at is not None and claim.leased_at <= time.monotonic()
    time.sleep(0.05)  # the pulse takes it later

    lease = Lease(claim, threading.Lock(), 30)

    assert lease.lease_deadline() == claim.leased_at + 30
    assert lease.lease_deadline() < time.monotonic() + 30
