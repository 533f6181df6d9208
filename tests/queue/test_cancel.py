"""Cancel: queued never starts; running is flagged; ended jobs are left alone."""

from __future__ import annotations

from app.jobs.endings import TrainedModel, finish, finish_cancelled, release
from app.jobs.queue import (
    LeaseState,
    Progress,
    claim_next,
    heartbeat,
    read_lease,
    requeue_expired,
    save_progress,
)
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.queue.rows import add_jobs, cancel, expire_lease, get_job, models_of

PROGRESS = Progress(epoch=2, metrics=None, history=[], samples_trained=8, train_seconds=0.1)
MODEL = TrainedModel(config={"format": "test"}, weights_sha256="best", weights_size=5, metrics=None)
BEST = TrainedModel(config={"format": "best"}, weights_sha256="best", weights_size=4, metrics=None)


def test_a_queued_job_is_cancelled_at_once_and_never_starts(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)

    accepted, job = cancel(migrated_db, job_id)

    assert accepted and job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert claim_next(migrated_db, worker_id="w", lease_seconds=30) is None
    assert get_job(migrated_db, job_id).attempts == 0


def test_a_running_job_is_flagged_and_its_worker_told(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None

    accepted, job = cancel(migrated_db, job_id, keep_model=True)

    assert accepted and job.status == JobStatus.RUNNING and job.cancel_requested
    state = heartbeat(migrated_db, claim, lease_seconds=30)
    assert (state.ours, state.cancel_requested, state.keep_model) == (True, True, True)
    assert finish_cancelled(migrated_db, claim, PROGRESS, MODEL)
    job = get_job(migrated_db, job_id)
    assert (job.status, job.epoch) == (JobStatus.CANCELLED, 2)
    assert [model.config for model in models_of(migrated_db, job_id)] == [{"format": "test"}]


def test_a_pending_cancel_can_be_read_without_renewing_the_lease(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None
    assert read_lease(migrated_db, claim) == LeaseState(ours=True)
    expires = get_job(migrated_db, job_id).lease_expires_at

    cancel(migrated_db, job_id, keep_model=True)

    state = read_lease(migrated_db, claim)
    assert state == LeaseState(ours=True, cancel_requested=True, keep_model=True)
    assert get_job(migrated_db, job_id).lease_expires_at == expires  # a read: not renewed
    assert release(migrated_db, claim)  # the job ended: the lease is no longer ours
    assert read_lease(migrated_db, claim) == LeaseState(ours=False)


def test_cancel_without_keep_model_stores_no_model(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None
    cancel(migrated_db, job_id)

    assert finish_cancelled(migrated_db, claim, PROGRESS, None)

    assert get_job(migrated_db, job_id).status == JobStatus.CANCELLED
    assert models_of(migrated_db, job_id) == []


def test_an_ended_job_is_not_changed(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None and finish(migrated_db, claim, PROGRESS, MODEL).model_id

    accepted, job = cancel(migrated_db, job_id)

    assert not accepted
    assert job.status == JobStatus.SUCCEEDED and not job.cancel_requested


def test_a_cancel_racing_a_dead_worker_stays_cancelled(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    assert claim_next(migrated_db, worker_id="dead", lease_seconds=30) is not None
    cancel(migrated_db, job_id)
    expire_lease(migrated_db, job_id)

    assert requeue_expired(migrated_db, max_attempts=3) == 1

    job = get_job(migrated_db, job_id)
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert claim_next(migrated_db, worker_id="w", lease_seconds=30) is None


def test_a_keep_model_cancel_of_a_dead_worker_s_checkpointed_job_goes_back_to_the_queue(
    migrated_db: Database,
) -> None:
    # The dead worker took the best-so-far weights with it; only the checkpoint has them.
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="dead", lease_seconds=30)
    assert claim is not None
    assert save_progress(migrated_db, claim, PROGRESS, checkpoint_sha256="state")
    cancel(migrated_db, job_id, keep_model=True)
    expire_lease(migrated_db, job_id)

    assert requeue_expired(migrated_db, max_attempts=3) == 1

    job = get_job(migrated_db, job_id)
    assert (job.status, job.cancel_requested, job.keep_model) == (JobStatus.QUEUED, True, True)
    rescue = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert rescue is not None and rescue.job_id == job_id
    assert read_lease(migrated_db, rescue) == LeaseState(True, True, True)  # seen at once
    assert finish_cancelled(migrated_db, rescue, PROGRESS, MODEL)
    assert get_job(migrated_db, job_id).status == JobStatus.CANCELLED
    assert len(models_of(migrated_db, job_id)) == 1


def test_a_keep_model_cancel_of_a_dead_worker_s_job_ends_at_once_when_nothing_can_be_kept(
    migrated_db: Database,
) -> None:
    no_checkpoint, last_attempt = add_jobs(migrated_db, 2)
    # The poison-job guard: a checkpoint from an earlier attempt, then an attempt without
    # progress that would fail the job (max_attempts=1) ends it cancelled instead.
    cases = ((no_checkpoint, None, 3, False), (last_attempt, "state", 1, True))
    for job_id, checkpoint, max_attempts, stalls_after_checkpoint in cases:
        claim = claim_next(migrated_db, worker_id="dead", lease_seconds=30)
        assert claim is not None and claim.job_id == job_id
        assert save_progress(migrated_db, claim, PROGRESS, checkpoint_sha256=checkpoint)
        if stalls_after_checkpoint:  # preempted after progress: back to the queue
            expire_lease(migrated_db, job_id)
            assert requeue_expired(migrated_db, max_attempts=max_attempts) == 1
            claim = claim_next(migrated_db, worker_id="dead", lease_seconds=30)
            assert claim is not None and claim.job_id == job_id
        cancel(migrated_db, job_id, keep_model=True)
        expire_lease(migrated_db, job_id)

        assert requeue_expired(migrated_db, max_attempts=max_attempts) == 1

        job = get_job(migrated_db, job_id)
        assert job.status == JobStatus.CANCELLED and job.finished_at is not None
        assert models_of(migrated_db, job_id) == []
        if checkpoint is None:  # the job says why the model asked for is missing
            assert job.error is not None and "before saving a checkpoint" in job.error
    assert claim_next(migrated_db, worker_id="w", lease_seconds=30) is None


def test_a_release_after_a_cancel_request_ends_cancelled(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None
    cancel(migrated_db, job_id)

    assert release(migrated_db, claim)

    assert get_job(migrated_db, job_id).status == JobStatus.CANCELLED
    assert claim_next(migrated_db, worker_id="w", lease_seconds=30) is None


def test_a_cancel_recorded_before_the_final_commit_wins(migrated_db: Database) -> None:
    """Issue 18: a cancel during the last epoch (no batch left to notice it) ends the job
    cancelled, its best-so-far model kept when asked, and the trained model not stored."""
    for keep in (False, True):
        (job_id,) = add_jobs(migrated_db, owner=f"keep-{keep}")
        claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
        assert claim is not None and claim.job_id == job_id
        cancel(migrated_db, job_id, keep_model=keep)
        outcome = finish(migrated_db, claim, PROGRESS, MODEL, best=lambda: BEST)

        job = get_job(migrated_db, job_id)
        assert (outcome.status, job.status, job.epoch) == (JobStatus.CANCELLED,) * 2 + (2,)
        configs = [model.config for model in models_of(migrated_db, job_id)]
        assert configs == ([{"format": "best"}] if keep else [])
        assert (outcome.model_id is not None) == keep


def test_a_keep_model_cancel_just_before_a_release_keeps_the_model(
    migrated_db: Database,
) -> None:
    """Issue 18: a keep_model cancel landing after the worker's last lease check and before
    its release (a graceful stop) is read by the release: cancelled, best model kept."""
    (job_id,) = add_jobs(migrated_db)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None
    assert not heartbeat(migrated_db, claim, lease_seconds=30).cancel_requested
    cancel(migrated_db, job_id, keep_model=True)
    assert release(migrated_db, claim, progress=PROGRESS, best=lambda: BEST)

    job = get_job(migrated_db, job_id)
    assert (job.status, job.epoch, job.attempts) == (JobStatus.CANCELLED, 2, 1)
    assert [model.config for model in models_of(migrated_db, job_id)] == [{"format": "best"}]
