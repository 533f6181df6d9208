"""A cancel recorded before a job's ending commit wins in every ending verb, not only in
``finish`` and ``release``: a failure (the time limit, a divergence), a prediction run's
or an evaluation's success, and the expiry sweep that fails a stalled job."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event

from app.jobs.batch_queue import finish_evaluation, finish_prediction
from app.jobs.endings import TrainedModel, fail
from app.jobs.queue import Claim, Progress, claim_next, requeue_expired
from app.storage.blobs import BlobRef
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.queue.rows import add_jobs, cancel, expire_lease, get_job, models_of

PROGRESS = Progress(epoch=2, metrics=None, history=[], samples_trained=8, train_seconds=0.1)
MODEL = TrainedModel(config={"format": "time"}, weights_sha256="t", weights_size=5, metrics=None)
BEST = TrainedModel(config={"format": "best"}, weights_sha256="b", weights_size=4, metrics=None)
RESULT: dict[str, Any] = {"result": BlobRef("r" * 64, 160), "max_owner_bytes": 10**9}


def _claimed(db: Database) -> tuple[str, Claim]:
    (job_id,) = add_jobs(db)
    claim = claim_next(db, worker_id="w", lease_seconds=30)
    assert claim is not None
    return job_id, claim


@pytest.mark.parametrize("keep", [False, True])
def test_a_cancel_pending_at_a_time_limit_failure_wins(migrated_db: Database, keep: bool) -> None:
    job_id, claim = _claimed(migrated_db)
    cancel(migrated_db, job_id, keep_model=keep)

    assert fail(migrated_db, claim, "the job trained 2 s, the limit ...", PROGRESS, MODEL)

    job = get_job(migrated_db, job_id)
    assert (job.status, job.error, job.epoch) == (JobStatus.CANCELLED, None, 2)
    expected = [{"format": "time"}] if keep else []
    assert [model.config for model in models_of(migrated_db, job_id)] == expected


@pytest.mark.parametrize("keep", [False, True])
def test_a_cancel_pending_at_a_divergence_keeps_the_best_model_only_if_asked(
    migrated_db: Database, keep: bool
) -> None:
    job_id, claim = _claimed(migrated_db)
    cancel(migrated_db, job_id, keep_model=keep)
    made: list[bool] = []

    def best() -> TrainedModel:
        made.append(True)
        return BEST

    assert fail(migrated_db, claim, "the loss became NaN", PROGRESS, best=best)

    assert get_job(migrated_db, job_id).status == JobStatus.CANCELLED
    expected = [{"format": "best"}] if keep else []
    assert [model.config for model in models_of(migrated_db, job_id)] == expected
    assert made == ([True] if keep else [])  # no blob written for a model nobody keeps


def test_a_failure_without_a_cancel_keeps_no_best_model(migrated_db: Database) -> None:
    job_id, claim = _claimed(migrated_db)

    assert fail(migrated_db, claim, "the loss became NaN", PROGRESS, best=lambda: BEST)

    job = get_job(migrated_db, job_id)
    assert (job.status, job.error) == (JobStatus.FAILED, "the loss became NaN")
    assert models_of(migrated_db, job_id) == []


@pytest.mark.parametrize("kind", ["prediction", "evaluation"])
def test_a_cancel_pending_at_a_batch_success_wins(migrated_db: Database, kind: str) -> None:
    job_id, claim = _claimed(migrated_db)
    cancel(migrated_db, job_id)

    if kind == "prediction":
        status = finish_prediction(migrated_db, claim, rows_done=4, seconds=0.1, **RESULT)
    else:
        status = finish_evaluation(
            migrated_db, claim, rows_done=4, seconds=0.1, metrics={"accuracy": 1.0}
        )

    job = get_job(migrated_db, job_id)
    assert status == job.status == JobStatus.CANCELLED
    assert (job.result_sha256, job.rows_done) == (None, 4)


def test_a_batch_success_without_a_cancel_succeeds(migrated_db: Database) -> None:
    job_id, claim = _claimed(migrated_db)

    status = finish_prediction(migrated_db, claim, rows_done=4, seconds=0.1, **RESULT)

    assert status == get_job(migrated_db, job_id).status == JobStatus.SUCCEEDED
    again = finish_prediction(migrated_db, claim, rows_done=4, seconds=0.1, **RESULT)
    assert again is None  # the job ended: the lease is no longer ours


def test_a_cancel_landing_inside_the_expiry_sweep_is_never_lost(
    migrated_db: Database, database_url: str
) -> None:
    """The sweep's rules are several statements; a cancel committed between the one that
    ends cancelled jobs and the one that fails stalled jobs must not be accepted and then
    overridden by ``failed``: it is seen (the job ends cancelled) or it finds the job
    ended (refused)."""
    job_id, _ = _claimed(migrated_db)
    expire_lease(migrated_db, job_id)
    accepted: list[bool] = []
    other = Database(database_url)
    landing = threading.Thread(target=lambda: accepted.append(cancel(other, job_id)[0]))
    updates = 0

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal updates
        if not statement.lstrip().upper().startswith("UPDATE JOBS"):
            return
        updates += 1
        if updates == 2:  # after the cancelled rule, before the failing one
            landing.start()
            landing.join(timeout=3)  # done at once unless the sweep holds the row locked

    event.listen(migrated_db.engine, "before_cursor_execute", before_execute)
    try:
        requeue_expired(migrated_db, max_attempts=1)  # a stalled attempt fails the job
    finally:
        event.remove(migrated_db.engine, "before_cursor_execute", before_execute)
    landing.join()  # a cancel that waited for the sweep's commit runs now
    other.dispose()

    job = get_job(migrated_db, job_id)
    assert updates >= 2
    if accepted == [True]:
        assert job.status == JobStatus.CANCELLED, job.error
    else:
        assert job.status == JobStatus.FAILED
