"""Ending a job: finish (one transaction), fail, release, requeue of expired leases."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from app.jobs.endings import TrainedModel, fail, finish, release
from app.jobs.queue import (
    Progress,
    claim_next,
    requeue_expired,
    save_progress,
)
from app.storage.database import Database
from app.storage.tables import JobStatus, Model
from tests.queue.rows import add_jobs, expire_lease, get_job, models_of

PROGRESS = Progress(
    epoch=5, metrics={"loss": 0.1}, history=[{"epoch": 5}], samples_trained=20, train_seconds=2.0
)
MODEL = TrainedModel(
    config={"format": "test"}, weights_sha256="final", weights_size=5, metrics={"loss": 0.1}
)


def test_finish_stores_the_model_and_ends_the_job_together(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None
    assert save_progress(migrated_db, claim, PROGRESS, checkpoint_sha256="ckpt")

    model_id = finish(migrated_db, claim, PROGRESS, MODEL).model_id

    job = get_job(migrated_db, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.finished_at is not None and job.lease_token is None
    assert job.checkpoint_sha256 is None  # no longer needed
    assert (job.metrics, job.samples_trained, job.train_seconds) == ({"loss": 0.1}, 20, 2.0)
    (model,) = models_of(migrated_db, job_id)
    assert model.id == model_id and model.config == {"format": "test"}
    with migrated_db.read_session() as session:
        stored = session.get(Model, model_id)
        assert stored is not None and stored.weights_sha256 == "final"
    # A second finish (a retry, a duplicate worker) finds no lease and adds nothing.
    assert finish(migrated_db, claim, PROGRESS, MODEL).model_id is None
    assert len(models_of(migrated_db, job_id)) == 1


def test_a_finish_that_dies_before_commit_leaves_no_trace(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None

    def crash() -> None:
        raise RuntimeError("process died here")

    with pytest.raises(RuntimeError):
        finish(migrated_db, claim, PROGRESS, MODEL, before_commit=crash)

    assert get_job(migrated_db, job_id).status == JobStatus.RUNNING
    assert models_of(migrated_db, job_id) == []
    assert finish(migrated_db, claim, PROGRESS, MODEL).model_id is not None


def test_the_database_refuses_a_second_model_for_a_job(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None and finish(migrated_db, claim, PROGRESS, MODEL).model_id
    (model,) = models_of(migrated_db, job_id)

    with pytest.raises(IntegrityError), migrated_db.session() as session:
        session.add(
            Model(
                owner_id=model.owner_id,
                job_id=job_id,
                config={},
                weights_sha256="",
                weights_size=0,
                metrics=None,
            )
        )


def test_fail_records_the_reason_and_no_model(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None

    assert fail(migrated_db, claim, "training diverged: loss is nan", PROGRESS)

    job = get_job(migrated_db, job_id)
    assert (job.status, job.error, job.epoch) == (
        JobStatus.FAILED,
        "training diverged: loss is nan",
        5,
    )
    assert job.finished_at is not None
    assert models_of(migrated_db, job_id) == []


def test_release_requeues_without_counting_the_attempt(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None
    assert save_progress(migrated_db, claim, PROGRESS, checkpoint_sha256="ckpt")

    assert release(migrated_db, claim)

    job = get_job(migrated_db, job_id)
    assert (job.status, job.attempts, job.lease_token) == (JobStatus.QUEUED, 0, None)
    assert (job.checkpoint_sha256, job.checkpoint_epoch) == ("ckpt", 5)
    again = claim_next(migrated_db, worker_id="w2", lease_seconds=30)
    assert again is not None and (again.job_id, again.attempt) == (job_id, 1)


def test_expired_leases_are_requeued_until_attempts_run_out(migrated_db: Database) -> None:
    """Attempt 1 saves a checkpoint (preemption: not counted); attempts 2 and 3 die
    without progress and use up BACKPROP_MAX_ATTEMPTS=2."""
    (job_id,) = add_jobs(migrated_db)
    (live_id,) = add_jobs(migrated_db, owner="bob")

    for attempt in (1, 2, 3):
        claim = claim_next(migrated_db, worker_id=f"w{attempt}", lease_seconds=30)
        assert claim is not None and (claim.job_id, claim.attempt) == (job_id, attempt)
        if attempt == 1:
            assert save_progress(migrated_db, claim, PROGRESS, checkpoint_sha256="ckpt")
            live = claim_next(migrated_db, worker_id="healthy", lease_seconds=30)
            assert live is not None and live.job_id == live_id
        expire_lease(migrated_db, job_id)
        assert requeue_expired(migrated_db, max_attempts=2) == 1
        job = get_job(migrated_db, job_id)
        if attempt == 1:
            assert (job.status, job.lease_token, job.checkpoint_sha256) == (
                JobStatus.QUEUED,
                None,
                "ckpt",
            )
        assert job.attempts_without_progress == attempt - 1

    assert job.status == JobStatus.FAILED
    assert job.error is not None and "2 attempts" in job.error
    assert job.finished_at is not None
    assert get_job(migrated_db, live_id).status == JobStatus.RUNNING  # its lease is fresh
    assert requeue_expired(migrated_db, max_attempts=2) == 0


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_max_attempts_counts_every_run_not_only_the_retries(
    migrated_db: Database, max_attempts: int
) -> None:
    """BACKPROP_MAX_ATTEMPTS=N: the job runs N times in total (N - 1 retries), then fails;
    a graceful release in between is not an attempt."""
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="stopping", lease_seconds=30)
    assert claim is not None and release(migrated_db, claim)

    runs = 0
    while get_job(migrated_db, job_id).status == JobStatus.QUEUED and runs <= max_attempts:
        claim = claim_next(migrated_db, worker_id=f"w{runs}", lease_seconds=30)
        assert claim is not None and claim.job_id == job_id
        runs += 1
        expire_lease(migrated_db, job_id)
        assert requeue_expired(migrated_db, max_attempts=max_attempts) == 1

    job = get_job(migrated_db, job_id)
    assert runs == max_attempts
    assert (job.status, job.attempts) == (JobStatus.FAILED, max_attempts)
    assert job.error is not None and f"gave up after {max_attempts} attempts" in job.error
