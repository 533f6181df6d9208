"""A cancel requested between a job's claim and its start (the claim committed, the
attempt not yet reading its inputs) stops it before its first batch or chunk: the
attempt reads the job's flag as it starts, not only the pulse half a second later."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.jobs import worker as worker_module
from app.jobs.queue import Claim, request_cancel
from app.jobs.worker import Worker
from app.storage.database import Database
from app.storage.tables import Job, JobKind, JobStatus
from tests.conftest import MakeSettings
from tests.queue.rows import get_job
from tests.worker.batch_rows import add_batch_job
from tests.worker.jobs import add_training_jobs

NETWORK = {
    "input_size": 4,
    "layers": [{"units": 8, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
    "loss": "categorical_crossentropy",
    "seed": 1,
}


def _cancel_once_claimed(monkeypatch: pytest.MonkeyPatch, db: Database) -> list[Claim]:
    """Every claim the worker makes is followed at once by a cancel of its job."""
    real = worker_module.pack_claim.claim_pack
    seen: list[Claim] = []

    def claim_then_cancel(*args: Any, **kwargs: Any) -> list[Claim]:
        claims = real(*args, **kwargs)
        for claim in claims:
            assert not claim.cancel_requested  # requested after the claim read the row
            with db.session() as session:
                job = session.get(Job, claim.job_id)
                assert job is not None
                request_cancel(session, job)
        seen.extend(claims)
        return claims

    monkeypatch.setattr(worker_module.pack_claim, "claim_pack", claim_then_cancel)
    return seen


def test_a_training_job_cancelled_before_its_start_trains_no_batch(
    sqlite_db: Database, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job_id,) = add_training_jobs(sqlite_db, epochs=200)
    claims = _cancel_once_claimed(monkeypatch, sqlite_db)
    Worker(sqlite_db, make_settings(sqlite_db.url, lease_seconds=3600)).run(burst=True)
    job = get_job(sqlite_db, job_id)
    assert [c.job_id for c in claims] == [job_id]
    assert job.status == JobStatus.CANCELLED
    assert job.samples_trained == 0 and job.model_id is None


def test_a_prediction_run_cancelled_before_its_start_scores_no_chunk(
    sqlite_db: Database, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(sqlite_db.url, lease_seconds=3600, prediction_chunk_rows=256)
    rows = 20_000
    x = np.random.default_rng(4).normal(size=(rows, 4)).astype(np.float32)
    run = add_batch_job(
        sqlite_db,
        owner="alice",
        kind=JobKind.PREDICT,
        network=NETWORK,
        task="multiclass",
        classes=["a", "b", "c"],
        x=x,
        y=np.arange(rows) % 3,
    )
    claims = _cancel_once_claimed(monkeypatch, sqlite_db)
    Worker(sqlite_db, settings).run(burst=True)
    job = get_job(sqlite_db, run.job_id)
    assert [c.job_id for c in claims] == [run.job_id]
    assert job.status == JobStatus.CANCELLED
    assert job.rows_done == 0 and job.result_sha256 is None
