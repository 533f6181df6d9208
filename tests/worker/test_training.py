"""The worker trains jobs end to end: real processes, real engine, real databases."""

from __future__ import annotations

import faulthandler
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.jobs.queue import requeue_expired
from app.jobs.worker import Worker
from app.storage.database import Database
from app.storage.tables import Job, JobStatus, WorkerHeartbeat, utcnow
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import add_jobs, cancel, get_job, models_of
from tests.worker.jobs import NETWORK, add_training_jobs, options
from tests.worker.procs import model_arrays, same_arrays, start_worker, wait_exit


def test_a_burst_worker_process_trains_every_job(
    migrated_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    make_settings(migrated_db.url, checkpoint_seconds=0)
    job_ids = add_training_jobs(migrated_db, 3, epochs=4)

    log = tmp_path / "worker.log"
    assert wait_exit(start_worker(log, burst=True), log) == 0

    weights = []
    for job_id in job_ids:
        job = get_job(migrated_db, job_id)
        assert job.status == JobStatus.SUCCEEDED, log.read_text()
        assert (job.attempts, job.epoch, len(job.history)) == (1, 4, 4)
        assert job.samples_trained == 4 * 160  # 20% held out for validation
        assert job.train_seconds > 0 and job.metrics is not None and "loss" in job.metrics
        assert job.finished_at is not None and job.checkpoint_sha256 is None
        (model,) = models_of(migrated_db, job_id)
        weights.append(model_arrays(migrated_db, model.id))
    assert all(same_arrays(weights[0], other) for other in weights[1:])  # deterministic
    with migrated_db.read_session() as session:  # a clean exit removes the worker's row
        assert session.scalar(select(func.count()).select_from(WorkerHeartbeat)) == 0


def _burst(db: Database, settings: Settings) -> int:
    return Worker(db, settings).run(burst=True)


@contextmanager
def worker_thread(db: Database, settings: Settings) -> Iterator[tuple[Worker, threading.Thread]]:
    """A burst worker running in a thread of this process; stopped (its job released)
    and joined on the way out."""
    worker = Worker(db, settings)
    thread = threading.Thread(target=worker.run, kwargs={"burst": True})
    thread.start()
    try:
        yield worker, thread
    finally:
        worker.stopping.set()
        thread.join(timeout=60)


def test_a_diverging_job_fails_with_the_engines_message(
    migrated_db: Database, make_settings: MakeSettings
) -> None:
    settings = make_settings(migrated_db.url)
    x = np.array([[1e3, -1e3], [2e3, 5e2], [-1e3, 1e3], [4e2, 3e3]], dtype=np.float32)
    y = np.array([1e4, -1e4, 3e4, 2e4])
    network = {
        **NETWORK,
        "layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}],
        "loss": "mse",
    }
    opts = options(
        50,
        standardize=False,
        validation_split=0.0,
        batch_size=4,
        optimizer={"name": "sgd", "learning_rate": 10.0},
    )
    (job_id,) = add_jobs(migrated_db, options=opts, network=network, x=x, y=y)

    assert _burst(migrated_db, settings) == 1

    job = get_job(migrated_db, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "learning rate" in job.error.lower()
    assert models_of(migrated_db, job_id) == []


def test_a_job_that_cannot_start_fails_with_the_reason(
    migrated_db: Database, make_settings: MakeSettings
) -> None:
    settings = make_settings(migrated_db.url)
    (job_id,) = add_training_jobs(migrated_db)
    with migrated_db.session() as session:  # the frozen config no longer fits the data
        job = session.get(Job, job_id)
        assert job is not None
        job.network_config = {**NETWORK, "input_size": 3}

    _burst(migrated_db, settings)

    job = get_job(migrated_db, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error.startswith("cannot start training")
    assert models_of(migrated_db, job_id) == []


@pytest.mark.parametrize("keep_model", [True, False])
def test_cancelling_a_running_job_stops_it(
    migrated_db: Database, make_settings: MakeSettings, keep_model: bool
) -> None:
    # A lease renewed every 100 s: a cancel heard within a minute was heard by the
    # pulse's cancel poll (every 0.5 s), not at a renewal. (With the default 30-s lease
    # this waited 10 s, which a loaded CI machine twice overran.)
    settings = make_settings(migrated_db.url, lease_seconds=300)
    (job_id,) = add_training_jobs(migrated_db, epochs=100_000)
    with worker_thread(migrated_db, settings) as (_, thread):
        wait_for(lambda: get_job(migrated_db, job_id).epoch >= 2, what="two epochs")
        assert cancel(migrated_db, job_id, keep_model=keep_model)[0]
        try:
            wait_for(
                lambda: get_job(migrated_db, job_id).status == JobStatus.CANCELLED,
                what="the cancel to end the job",
                timeout=60,
            )
        except AssertionError:  # say where every thread stands (the worker's, the pulse)
            faulthandler.dump_traceback(all_threads=True)
            raise
        thread.join(timeout=60)
        assert not thread.is_alive()  # a burst worker: the queue is empty, it returned

    job = get_job(migrated_db, job_id)
    assert job.status == JobStatus.CANCELLED
    assert 2 <= job.epoch < 100_000
    models = models_of(migrated_db, job_id)
    assert len(models) == (1 if keep_model else 0)


def test_the_lease_is_renewed_while_training_runs(
    migrated_db: Database, make_settings: MakeSettings
) -> None:
    # Renewed every 1.33 s: a renewal would have to be 2.67 s late for the sweep below to
    # take the job (with a 2-s lease, 1.33 s late, which a loaded CI machine once was).
    settings = make_settings(migrated_db.url, lease_seconds=4)
    (job_id,) = add_training_jobs(migrated_db, epochs=100_000)
    with worker_thread(migrated_db, settings) as (worker, _):

        def lease_once_training() -> datetime | None:
            job = get_job(migrated_db, job_id)
            return job.lease_expires_at if job.epoch >= 1 else None

        first = wait_for(lease_once_training, what="training to start")
        leases: set[datetime] = set()
        lease_seconds = settings.lease_seconds

        def renewed_past_the_first_expiry() -> bool:
            # Sweep for expired leases, as every other worker does, until the first lease
            # has been over for a lease length and the row has shown three leases.
            assert requeue_expired(migrated_db, max_attempts=3) == 0
            lease = get_job(migrated_db, job_id).lease_expires_at
            assert lease is not None
            leases.add(lease)
            return len(leases) >= 3 and utcnow() > first + timedelta(seconds=lease_seconds)

        wait_for(renewed_past_the_first_expiry, what="three lease renewals", interval=0.1)
        job = get_job(migrated_db, job_id)
        assert (job.status, job.attempts, job.worker_id) == (
            JobStatus.RUNNING,
            1,
            worker.worker_id,
        )
    assert get_job(migrated_db, job_id).status == JobStatus.QUEUED  # released on stop


def test_an_early_stopped_model_carries_the_metrics_of_its_best_epoch(
    sqlite_url: str, make_settings: MakeSettings
) -> None:
    """With early stopping the model holds the best epoch's weights, so its metrics are
    that epoch's history entry, not the last epoch's."""
    from app.storage.migrations import upgrade

    upgrade(sqlite_url)
    db = Database(sqlite_url)
    settings = make_settings(db.url, checkpoint_seconds=0)
    # A high learning rate makes the validation loss wander, so the best epoch is not the last.
    (job_id,) = add_training_jobs(
        db,
        epochs=40,
        optimizer={"name": "sgd", "learning_rate": 3.0},
        early_stopping={"patience": 40, "min_delta": 0.0},
    )
    assert _burst(db, settings) == 1
    job = get_job(db, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    best = min(job.history, key=lambda entry: entry["val_loss"])
    assert best["epoch"] < job.history[-1]["epoch"]  # else this test proves nothing
    (model,) = models_of(db, job_id)
    # The entry's numbers; its per-layer statistics stay in the job's history.
    assert model.metrics == {k: v for k, v in best.items() if k != "layers"}
    assert "layers" in best
    db.dispose()
