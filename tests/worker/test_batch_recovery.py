"""Prediction runs in real worker processes: one that dies (SIGKILL at a crash point, or
a real SIGKILL) resumes from its stored output pieces on another worker, and the result is
byte for byte that of an uninterrupted run; a stopped worker hands its run back."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings, get_settings
from app.jobs.queue import request_cancel
from app.jobs.worker import Worker
from app.storage.blobs import open_blob_store, read_verified
from app.storage.database import Database
from app.storage.tables import Job, JobKind, JobStatus
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import expire_lease, get_job
from tests.worker.batch_rows import add_batch_job
from tests.worker.procs import start_worker, wait_exit

ROWS = 20_000
CHUNK = 256  # about 80 chunks, an output piece after each one
X = np.random.default_rng(3).normal(size=(ROWS, 4)).astype(np.float32)
NETWORK = {
    "input_size": 4,
    "layers": [{"units": 16, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
    "loss": "categorical_crossentropy",
    "seed": 9,
}


def _add_run(db: Database, owner: str = "alice") -> str:
    """A model, a dataset of :data:`ROWS` rows and a queued prediction run of the one
    over the other."""
    rows = add_batch_job(
        db,
        owner=owner,
        kind=JobKind.PREDICT,
        network=NETWORK,
        task="multiclass",
        classes=["a", "b", "c"],
        x=X,
        y=np.arange(ROWS) % 3,
    )
    return rows.job_id


def _outputs(db: Database, run_id: str) -> bytes:
    job = get_job(db, run_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result_sha256 is not None and job.output_parts is None
    return read_verified(open_blob_store(get_settings()), job.result_sha256)


def _reference(db: Database, settings: Settings) -> bytes:
    run_id = _add_run(db, owner="reference")
    Worker(db, settings).run(burst=True)
    return _outputs(db, run_id)


def _settings(db: Database, make_settings: MakeSettings) -> Settings:
    return make_settings(db.url, checkpoint_seconds=0, lease_seconds=2, prediction_chunk_rows=CHUNK)


def _pieces(db: Database, run_id: str) -> int:
    return len(get_job(db, run_id).output_parts or [])


@pytest.mark.parametrize("how", ["crash_point", "sigkill"])
def test_a_killed_worker_s_run_resumes_and_ends_identical(
    sqlite_db: Database, make_settings: MakeSettings, tmp_path: Path, how: str
) -> None:
    settings = _settings(sqlite_db, make_settings)
    run_id = _add_run(sqlite_db)
    log = tmp_path / "victim.log"
    if how == "crash_point":  # dies (exit 137) right after its first piece committed
        victim = start_worker(log, crash_at="after_checkpoint")
        assert wait_exit(victim, log) == 137
    else:
        victim = start_worker(log)
        wait_for(lambda: _pieces(sqlite_db, run_id) >= 3, what=f"3 pieces\n{log}")
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    killed = get_job(sqlite_db, run_id)
    assert killed.status == JobStatus.RUNNING and 0 < killed.rows_done < ROWS
    kept = sum(int(part["rows"]) for part in killed.output_parts or [])
    assert kept > 0 and kept % CHUNK == 0

    expire_lease(sqlite_db, run_id)  # what a surviving worker waits for
    survivor_log = tmp_path / "survivor.log"
    survivor = start_worker(survivor_log, burst=True)
    assert wait_exit(survivor, survivor_log) == 0, survivor_log.read_text()
    assert f"job {run_id}: resumed after {kept} rows" in survivor_log.read_text()
    done = get_job(sqlite_db, run_id)
    assert done.attempts == 2 and done.rows_done == ROWS
    assert _outputs(sqlite_db, run_id) == _reference(sqlite_db, settings)


def test_a_stopped_worker_hands_the_run_back_with_its_pieces(
    sqlite_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = _settings(sqlite_db, make_settings)
    run_id = _add_run(sqlite_db)
    log = tmp_path / "worker.log"
    worker = start_worker(log)
    wait_for(lambda: _pieces(sqlite_db, run_id) >= 2, what=f"2 pieces\n{log}")
    worker.send_signal(signal.SIGTERM)
    assert wait_exit(worker, log) == 0
    released = get_job(sqlite_db, run_id)
    if released.status == JobStatus.SUCCEEDED:  # it finished before the signal arrived
        pytest.skip("the run ended before the worker was stopped")
    assert released.status == JobStatus.QUEUED and released.attempts == 0
    assert sum(int(p["rows"]) for p in released.output_parts or []) == released.rows_done
    Worker(sqlite_db, settings).run(burst=True)
    assert _outputs(sqlite_db, run_id) == _reference(sqlite_db, settings)


def test_a_cancelled_run_stops_and_drops_its_pieces(
    sqlite_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    _settings(sqlite_db, make_settings)
    run_id = _add_run(sqlite_db)
    log = tmp_path / "worker.log"
    worker = start_worker(log)
    try:
        wait_for(lambda: _pieces(sqlite_db, run_id) >= 1, what=f"a piece\n{log}")
        with sqlite_db.session() as session:
            job = session.get(Job, run_id)
            assert job is not None
            request_cancel(session, job)
        ended = wait_for(
            lambda: (job := get_job(sqlite_db, run_id)).status != JobStatus.RUNNING and job,
            what=f"the run to stop\n{log}",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        wait_exit(worker, log)
    if ended.status == JobStatus.SUCCEEDED:
        pytest.skip("the run ended before the cancel arrived")
    # Stopped between chunks; or, when the last chunk came first, the cancel (recorded
    # before the final commit) won there: cancelled all the same, no outputs kept.
    assert ended.status == JobStatus.CANCELLED and ended.rows_done <= ROWS
    assert ended.output_parts is None and ended.result_sha256 is None
