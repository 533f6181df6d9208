"""A sweep survives a SIGKILLed worker: its state is in the database, its trials are
jobs, and a halving trial killed after its promotion resumes from its checkpoint."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from app.config import Settings
from app.services.sweeps import get_sweep
from app.storage.database import Database
from app.storage.tables import Job, JobStatus
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.worker.jobs import learning_rate_sweep
from tests.worker.procs import start_worker, wait_exit

pytestmark = pytest.mark.slow
N_TRAIN = 160  # 200 rows, validation_split 0.2


def _halving_sweep(db: Database, settings: Settings) -> str:
    job = {"epochs": 60, "batch_size": 8, "validation_split": 0.2, "seed": 1}
    strategy = {"name": "halving", "factor": 2, "min_epochs": 15}
    return learning_rate_sweep(db, settings, job, strategy)[1]


def _promoted_and_checkpointed(db: Database, sweep_id: str) -> Job | None:
    with db.read_session() as session:
        return session.scalars(
            select(Job).where(
                Job.sweep_id == sweep_id,
                Job.status == JobStatus.RUNNING,
                Job.epochs > 15,
                Job.checkpoint_epoch >= 18,
            )
        ).first()


def test_a_sweep_survives_a_sigkilled_worker(
    sqlite_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    db = sqlite_db
    settings = make_settings(db.url, checkpoint_seconds=0, lease_seconds=2, poll_seconds=0.1)
    sweep_id = _halving_sweep(db, settings)
    log = tmp_path / "victim.log"
    victim = start_worker(log)
    killed = wait_for(
        lambda: _promoted_and_checkpointed(db, sweep_id), what=f"a promoted trial\n{log}"
    )
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    # The trial found may have ended just before the kill landed, the victim then on its
    # next one (claimed by that ending): the trial the kill hit is the victim's running one.
    with db.read_session() as session:
        hit = session.scalars(
            select(Job).where(
                Job.sweep_id == sweep_id,
                Job.status == JobStatus.RUNNING,
                Job.worker_id == killed.worker_id,
            )
        ).first()
    killed = hit if hit is not None else killed

    survivor_log = tmp_path / "survivor.log"
    survivor = start_worker(survivor_log)
    try:
        done = wait_for(
            lambda: (
                (state := get_sweep(db, owner_id=killed.owner_id, sweep_id=sweep_id)).finished
                and state
            ),
            what=f"the sweep to finish\n{survivor_log}",
            timeout=180,
        )
    finally:
        survivor.send_signal(signal.SIGTERM)
        wait_exit(survivor, survivor_log)

    assert done.status == JobStatus.SUCCEEDED
    assert sorted(trial.epochs_run for trial in done.trials) == [15, 15, 30, 60]
    with db.read_session() as session:
        jobs = {job.id: job for job in session.scalars(select(Job).where(Job.sweep_id == sweep_id))}
    # The killed trial's second attempt (on the survivor) resumed it, promotion or not.
    assert f"job {killed.id}: attempt 2 started" in survivor_log.read_text()
    assert jobs[killed.id].status == JobStatus.SUCCEEDED
    for trial in done.trials:
        job = jobs[trial.job_id]
        # Every epoch ran once: promotions and the kill continued from checkpoints.
        assert job.samples_trained == trial.epochs_run * N_TRAIN
        assert [e["epoch"] for e in job.history] == list(range(1, trial.epochs_run + 1))
        assert trial.model_id is not None and job.checkpoint_sha256 is None
