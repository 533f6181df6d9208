"""Worker-side evaluations in real worker processes: one that dies (SIGKILL at a crash
point, or a real SIGKILL) resumes from its stored output pieces on another worker, and
its metrics equal those of an uninterrupted evaluation exactly."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import Settings
from app.engine.scoring import BLOCK_ROWS
from app.jobs.worker import Worker
from app.storage.database import Database
from app.storage.tables import Evaluation, JobKind, JobStatus
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import expire_lease, get_job
from tests.worker.batch_rows import add_batch_job
from tests.worker.procs import start_worker, wait_exit

CHUNKS = 40  # chunks of BLOCK_ROWS rows, an output piece after each one
ROWS = CHUNKS * BLOCK_ROWS - 1000  # the last chunk is a partial one
_rng = np.random.default_rng(5)
X = _rng.normal(size=(ROWS, 8)).astype(np.float32)
Y = _rng.integers(0, 3, size=ROWS)
NETWORK = {
    "input_size": 8,
    "layers": [{"units": 64, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
    "loss": "categorical_crossentropy",
    "seed": 4,
}


def _add_evaluation(db: Database, owner: str = "alice") -> tuple[str, str]:
    """A classifier, a labelled dataset of :data:`ROWS` rows and a queued evaluation of
    the one on the other: (job id, evaluation id)."""
    rows = add_batch_job(
        db,
        owner=owner,
        kind=JobKind.EVALUATE,
        network=NETWORK,
        task="multiclass",
        classes=[0, 1, 2],
        x=X,
        y=Y,
    )
    assert rows.evaluation_id is not None
    return rows.job_id, rows.evaluation_id


def _metrics(db: Database, job_id: str, evaluation_id: str) -> dict[str, Any]:
    job = get_job(db, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.rows_done == ROWS and job.output_parts is None
    with db.read_session() as session:
        row = session.get(Evaluation, evaluation_id)
        assert row is not None and row.metrics
        return row.metrics


def _reference(db: Database, settings: Settings) -> dict[str, Any]:
    ids = _add_evaluation(db, owner="reference")
    Worker(db, settings).run(burst=True)
    return _metrics(db, *ids)


def _pieces(db: Database, job_id: str) -> int:
    return len(get_job(db, job_id).output_parts or [])


@pytest.mark.parametrize("how", ["after_checkpoint", "before_final_commit", "sigkill"])
def test_a_killed_worker_s_evaluation_resumes_and_scores_identically(
    sqlite_db: Database, make_settings: MakeSettings, tmp_path: Path, how: str
) -> None:
    settings = make_settings(
        sqlite_db.url, checkpoint_seconds=0, lease_seconds=2, prediction_chunk_rows=BLOCK_ROWS
    )
    job_id, evaluation_id = _add_evaluation(sqlite_db)
    log = tmp_path / "victim.log"
    if how == "sigkill":
        victim = start_worker(log)
        wait_for(lambda: _pieces(sqlite_db, job_id) >= 3, what=f"3 pieces\n{log}")
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    else:  # dies (exit 137) after its first piece, or with every row scored
        victim = start_worker(log, crash_at=how)
        assert wait_exit(victim, log) == 137
    killed = get_job(sqlite_db, job_id)
    assert killed.status == JobStatus.RUNNING and 0 < killed.rows_done <= ROWS
    kept = sum(int(part["rows"]) for part in killed.output_parts or [])
    assert kept > 0 and kept % BLOCK_ROWS == 0
    if how == "before_final_commit":  # every whole chunk was kept
        assert kept == (CHUNKS - 1) * BLOCK_ROWS

    expire_lease(sqlite_db, job_id)  # what a surviving worker waits for
    survivor_log = tmp_path / "survivor.log"
    survivor = start_worker(survivor_log, burst=True)
    assert wait_exit(survivor, survivor_log) == 0, survivor_log.read_text()
    assert f"job {job_id}: resumed after {kept} rows" in survivor_log.read_text()
    assert get_job(sqlite_db, job_id).attempts == 2
    assert _metrics(sqlite_db, job_id, evaluation_id) == _reference(sqlite_db, settings)
