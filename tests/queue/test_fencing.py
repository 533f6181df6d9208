"""Lease fencing: a worker that lost its lease changes nothing; the new owner can."""

from __future__ import annotations

import dataclasses

import pytest

from app.jobs.endings import TrainedModel, fail, finish, finish_cancelled, release
from app.jobs.queue import (
    Claim,
    Progress,
    claim_next,
    heartbeat,
    requeue_expired,
    save_progress,
)
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.queue.rows import add_jobs, expire_lease, get_job, models_of

PROGRESS = Progress(
    epoch=3,
    metrics={"loss": 0.5},
    history=[{"epoch": 1}, {"epoch": 2}, {"epoch": 3}],
    samples_trained=12,
    train_seconds=0.5,
)
MODEL = TrainedModel(
    config={"format": "test"}, weights_sha256="weights", weights_size=5, metrics={"loss": 0.5}
)


def _claim(db: Database, worker_id: str = "w1") -> Claim:
    claim = claim_next(db, worker_id=worker_id, lease_seconds=30)
    assert claim is not None
    return claim


def _every_write(db: Database, claim: Claim) -> list[object]:
    return [
        heartbeat(db, claim, lease_seconds=30).ours,
        save_progress(db, claim, PROGRESS, checkpoint_sha256="stale"),
        finish(db, claim, PROGRESS, MODEL).model_id,
        finish_cancelled(db, claim, PROGRESS, MODEL),
        fail(db, claim, "stale worker"),
        release(db, claim),
    ]


def test_a_forged_token_writes_nothing(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = _claim(migrated_db)
    before = get_job(migrated_db, job_id)

    forged = dataclasses.replace(claim, lease_token="0" * 32)
    assert _every_write(migrated_db, forged) == [False, False, None, False, False, False]

    after = get_job(migrated_db, job_id)
    assert after.status == JobStatus.RUNNING
    assert (after.epoch, after.checkpoint_sha256, after.error) == (0, None, None)
    assert after.lease_expires_at == before.lease_expires_at
    assert models_of(migrated_db, job_id) == []


def test_a_worker_whose_lease_expired_cannot_touch_the_resumed_job(
    migrated_db: Database,
) -> None:
    (job_id,) = add_jobs(migrated_db)
    stale = _claim(migrated_db, "slow-worker")
    assert save_progress(migrated_db, stale, PROGRESS, checkpoint_sha256="ckpt-3")
    expire_lease(migrated_db, job_id)
    assert requeue_expired(migrated_db, max_attempts=3) == 1
    fresh = _claim(migrated_db, "new-worker")
    assert fresh.attempt == 2

    assert _every_write(migrated_db, stale) == [False, False, None, False, False, False]

    job = get_job(migrated_db, job_id)
    assert (job.status, job.worker_id, job.checkpoint_sha256) == (
        JobStatus.RUNNING,
        "new-worker",
        "ckpt-3",
    )
    model_id = finish(migrated_db, fresh, PROGRESS, MODEL).model_id
    assert model_id is not None
    assert [model.id for model in models_of(migrated_db, job_id)] == [model_id]


def test_progress_and_checkpoint_are_recorded(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = _claim(migrated_db)

    assert save_progress(migrated_db, claim, PROGRESS)
    job = get_job(migrated_db, job_id)
    assert (job.epoch, job.metrics, job.history) == (3, {"loss": 0.5}, PROGRESS.history)
    assert (job.samples_trained, job.train_seconds) == (12, 0.5)
    assert (job.checkpoint_sha256, job.checkpoint_epoch) == (None, None)

    assert save_progress(migrated_db, claim, PROGRESS, checkpoint_sha256="state")
    job = get_job(migrated_db, job_id)
    assert (job.checkpoint_sha256, job.checkpoint_epoch) == ("state", 3)


def test_a_checkpoint_that_fails_before_commit_leaves_the_old_one(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = _claim(migrated_db)
    assert save_progress(migrated_db, claim, PROGRESS, checkpoint_sha256="old")

    def crash() -> None:
        raise RuntimeError("process died here")

    later = dataclasses.replace(PROGRESS, epoch=4)
    with pytest.raises(RuntimeError):
        save_progress(migrated_db, claim, later, checkpoint_sha256="new", before_commit=crash)

    job = get_job(migrated_db, job_id)
    assert (job.epoch, job.checkpoint_sha256, job.checkpoint_epoch) == (3, "old", 3)


def test_heartbeat_renews_the_lease_and_reports_cancel(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = _claim(migrated_db)
    first = get_job(migrated_db, job_id).lease_expires_at

    state = heartbeat(migrated_db, claim, lease_seconds=60)

    assert (state.ours, state.cancel_requested, state.keep_model) == (True, False, False)
    renewed = get_job(migrated_db, job_id).lease_expires_at
    assert first is not None and renewed is not None and renewed > first
