"""Workers that die, crash or are stopped: jobs resume from their checkpoint and end
exactly once, with weights bit-identical to an uninterrupted run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from app.config import Settings
from app.jobs.worker import Worker
from app.storage.database import Database
from app.storage.tables import Job, JobStatus
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import cancel, expire_lease, get_job, models_of
from tests.worker.jobs import add_training_jobs
from tests.worker.procs import model_arrays, same_arrays, start_worker, wait_exit

EPOCHS = 12
KILL_EPOCHS = 80  # long enough to be killed mid-way, checkpointing every epoch


def _reference(db: Database, settings: Settings, **job: object) -> dict[str, object]:
    """Weights of the same job trained without interruption (in this process)."""
    (job_id,) = add_training_jobs(db, owner="reference", **job)  # type: ignore[arg-type]
    Worker(db, settings).run(burst=True)
    (model,) = models_of(db, job_id)
    return dict(model_arrays(db, model.id))


def _succeeded(db: Database, job_id: str) -> Job | None:
    job = get_job(db, job_id)
    return job if job.status == JobStatus.SUCCEEDED else None


def _recover(db: Database, settings: Settings, job_id: str) -> None:
    """What a surviving worker does once the dead one's lease ran out."""
    expire_lease(db, job_id)
    Worker(db, settings).run(burst=True)


@pytest.mark.slow
def test_a_killed_worker_s_job_resumes_bit_identical(
    migrated_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(migrated_db.url, checkpoint_seconds=0, lease_seconds=2)
    (job_id,) = add_training_jobs(migrated_db, epochs=KILL_EPOCHS)
    log = tmp_path / "victim.log"
    victim = start_worker(log)
    wait_for(
        lambda: (get_job(migrated_db, job_id).checkpoint_epoch or 0) >= 3,
        what=f"a checkpoint at epoch 3\n{log}",
    )
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    killed_at = get_job(migrated_db, job_id)
    assert killed_at.status == JobStatus.RUNNING and killed_at.epoch < KILL_EPOCHS

    survivor_log = tmp_path / "survivor.log"  # a real process, waiting for the lease
    survivor = start_worker(survivor_log)
    try:
        job = wait_for(
            lambda: _succeeded(migrated_db, job_id),
            what="the job to finish on the survivor",
            timeout=120,
        )
    finally:
        survivor.send_signal(signal.SIGTERM)
        wait_exit(survivor, survivor_log)

    assert job.attempts == 2 and job.worker_id != killed_at.worker_id
    assert len(job.history) == KILL_EPOCHS
    (model,) = models_of(migrated_db, job_id)
    reference = _reference(migrated_db, settings, epochs=KILL_EPOCHS)
    assert same_arrays(model_arrays(migrated_db, model.id), reference)


@pytest.mark.parametrize(
    "point",
    [
        "epoch:3",
        "before_checkpoint",
        "checkpoint_uncommitted",
        "after_checkpoint",
        "before_final_commit",
        "after_final_commit",
    ],
)
def test_a_crash_at_each_point_loses_nothing(
    sqlite_db: Database, make_settings: MakeSettings, tmp_path: Path, point: str
) -> None:
    db = sqlite_db
    settings = make_settings(db.url, checkpoint_seconds=0, lease_seconds=30)
    (job_id,) = add_training_jobs(db, epochs=EPOCHS)
    log = tmp_path / "crash.log"

    assert wait_exit(start_worker(log, burst=True, crash_at=point), log) == 137

    crashed = get_job(db, job_id)
    expected = JobStatus.SUCCEEDED if point == "after_final_commit" else JobStatus.RUNNING
    assert crashed.status == expected, log.read_text()
    if point == "checkpoint_uncommitted":  # the first checkpoint never committed
        assert crashed.checkpoint_sha256 is None and crashed.epoch == 0
    if point == "after_checkpoint":
        assert crashed.checkpoint_epoch == 1
    _recover(db, settings, job_id)

    job = get_job(db, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == (1 if point == "after_final_commit" else 2)
    (model,) = models_of(db, job_id)
    assert same_arrays(model_arrays(db, model.id), _reference(db, settings, epochs=EPOCHS))


@pytest.mark.parametrize("keep_model", [True, False])
def test_a_cancel_of_a_dead_worker_s_job_keeps_the_checkpoint_s_model_when_asked(
    sqlite_db: Database, make_settings: MakeSettings, tmp_path: Path, keep_model: bool
) -> None:
    db = sqlite_db
    settings = make_settings(db.url, checkpoint_seconds=0, lease_seconds=30)
    (job_id,) = add_training_jobs(db, epochs=100_000)
    log = tmp_path / "crash.log"
    assert wait_exit(start_worker(log, burst=True, crash_at="after_checkpoint"), log) == 137
    assert cancel(db, job_id, keep_model=keep_model)[0]  # accepted: the job shows running

    _recover(db, settings, job_id)

    job = get_job(db, job_id)
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    # keep_model: resumed from the checkpoint only to end with its model; else never revived.
    assert job.attempts == (2 if keep_model else 1)
    assert len(models_of(db, job_id)) == int(keep_model)
    if not keep_model:
        assert job.epoch == 1  # where the crash left it


def test_a_poison_job_fails_after_max_attempts(
    sqlite_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    db = sqlite_db
    settings = make_settings(db.url, max_attempts=2, lease_seconds=30)
    (job_id,) = add_training_jobs(db, epochs=EPOCHS)
    log = tmp_path / "poison.log"

    for attempt in (1, 2):
        assert wait_exit(start_worker(log, burst=True, crash_at="always"), log) == 137
        assert get_job(db, job_id).attempts == attempt
        expire_lease(db, job_id)
    Worker(db, settings).run(burst=True)

    job = get_job(db, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "2 attempts" in job.error
    assert models_of(db, job_id) == []


def test_sigterm_releases_the_job_to_the_queue(
    migrated_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    make_settings(migrated_db.url, checkpoint_seconds=0)
    (job_id,) = add_training_jobs(migrated_db, epochs=100_000)
    log = tmp_path / "worker.log"
    worker = start_worker(log)
    wait_for(lambda: get_job(migrated_db, job_id).epoch >= 2, what="two epochs")

    worker.send_signal(signal.SIGTERM)

    assert wait_exit(worker, log, timeout=60) == 0
    job = get_job(migrated_db, job_id)
    assert (job.status, job.attempts, job.lease_token) == (JobStatus.QUEUED, 0, None)
    assert job.checkpoint_sha256 is not None and (job.checkpoint_epoch or 0) >= 2


def test_two_worker_processes_never_run_the_same_job(
    migrated_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    make_settings(migrated_db.url)
    job_ids = add_training_jobs(migrated_db, 8, epochs=3)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]

    workers = [start_worker(log, burst=True) for log in logs]

    for worker, log in zip(workers, logs, strict=True):
        assert wait_exit(worker, log) == 0
    for job_id in job_ids:
        job = get_job(migrated_db, job_id)
        assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
        assert len(models_of(migrated_db, job_id)) == 1
