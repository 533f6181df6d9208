"""A worker told to stop while it holds jobs it claimed in its last ending's transaction
(``app.jobs.next_claim``) hands them back: queued again, the attempt not counted, no
lease left on them, and another worker then runs them to the end."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.jobs import next_claim
from app.jobs.queue import Claim
from app.jobs.worker import Worker
from app.services.sweeps import get_sweep
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.conftest import MakeSettings
from tests.queue.rows import get_job
from tests.worker.jobs import add_training_jobs, learning_rate_sweep


@pytest.fixture
def stop_on_first_hold(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Sets the running worker's ``stopping`` right after the first ending that claimed
    jobs committed (the window between that claim and the worker's next loop); yields
    the ids it held, once."""
    held: list[list[str]] = []
    hold = next_claim.NextClaim._hold

    def hold_then_stop(self: next_claim.NextClaim, claims: list[Claim]) -> None:
        hold(self, claims)
        if claims and not held:
            held.append([claim.job_id for claim in claims])
            self._stopping.set()

    monkeypatch.setattr(next_claim.NextClaim, "_hold", hold_then_stop)
    yield held


def _run_until_stopped(db: Database, settings: Settings) -> None:
    worker = Worker(db, settings)
    thread = threading.Thread(target=worker.run)  # not a burst: it ends only by the stop
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the worker did not stop"


def test_jobs_claimed_by_an_ending_go_back_to_the_queue_when_the_worker_stops(
    migrated_db: Database, make_settings: MakeSettings, stop_on_first_hold: list[list[str]]
) -> None:
    settings = make_settings(migrated_db.url, checkpoint_seconds=0)
    first, second, third = add_training_jobs(migrated_db, 3, epochs=3)

    _run_until_stopped(migrated_db, settings)

    assert stop_on_first_hold == [[second]]  # the first job's ending claimed the second
    done = get_job(migrated_db, first)
    assert (done.status, done.attempts, done.epoch) == (JobStatus.SUCCEEDED, 1, 3)
    for job_id in (second, third):
        job = get_job(migrated_db, job_id)
        assert (job.status, job.attempts, job.epoch) == (JobStatus.QUEUED, 0, 0)
        assert (job.lease_token, job.lease_expires_at) == (None, None)

    assert Worker(migrated_db, settings).run(burst=True) == 2  # another worker: no wait
    for job_id in (second, third):
        job = get_job(migrated_db, job_id)
        assert (job.status, job.attempts, job.epoch) == (JobStatus.SUCCEEDED, 1, 3)


def _grid_sweep(db: Database, settings: Settings) -> tuple[int, str]:
    job = {"epochs": 3, "batch_size": 8, "validation_split": 0.2, "seed": 1, "diagnostics": False}
    return learning_rate_sweep(db, settings, job, {"name": "grid"})


def test_a_pack_claimed_by_an_ending_goes_back_to_the_queue_when_the_worker_stops(
    migrated_db: Database, make_settings: MakeSettings, stop_on_first_hold: list[list[str]]
) -> None:
    """Packs of two: the first pack's joint ending claims the second pack, which the
    stopping worker hands back whole; the sweep stays running until a worker ends it."""
    settings = make_settings(migrated_db.url, checkpoint_seconds=0, pack_trials=2)
    owner_id, sweep_id = _grid_sweep(migrated_db, settings)

    _run_until_stopped(migrated_db, settings)

    (held,) = stop_on_first_hold
    assert len(held) == 2
    view = get_sweep(migrated_db, owner_id=owner_id, sweep_id=sweep_id)
    assert view.status == "running"
    by_job = {trial.job_id: trial for trial in view.trials}
    assert sorted(trial.status for trial in view.trials) == ["queued"] * 2 + ["succeeded"] * 2
    for job_id in held:
        job = get_job(migrated_db, job_id)
        assert (by_job[job_id].status, job.attempts, job.epoch) == ("queued", 0, 0)
        assert (job.lease_token, job.lease_expires_at) == (None, None)

    assert Worker(migrated_db, settings).run(burst=True) == 2
    view = get_sweep(migrated_db, owner_id=owner_id, sweep_id=sweep_id)
    assert view.status == "succeeded"
    assert all(trial.status == "succeeded" for trial in view.trials)
    assert all(get_job(migrated_db, job_id).attempts == 1 for job_id in held)
