"""The append-only history: each progress write appends its epochs' rows in its own fenced
transaction; a resumed attempt replaces the rows past its checkpoint (never duplicates,
never gaps), and a stale worker appends nothing."""

from __future__ import annotations

from app.jobs.endings import TrainedModel, finish
from app.jobs.queue import Progress, claim_next, requeue_expired, save_progress
from app.storage.database import Database
from tests.queue.rows import add_jobs, cancel, epoch_rows, expire_lease, get_job

MODEL = TrainedModel(config={"format": "test"}, weights_sha256="w", weights_size=1, metrics=None)


def _progress(epochs: range, attempt: int) -> Progress:
    """Progress at epoch ``epochs[-1]`` recording the entries of ``epochs``."""
    entries = [{"epoch": e, "loss": 1.0 / e, "attempt": attempt} for e in epochs]
    return Progress(
        epoch=epochs[-1] if epochs else 0,
        metrics=None,
        history=entries,
        samples_trained=0,
        train_seconds=0.0,
    )


def _rows(db: Database, job_id: str) -> list[tuple[int, int]]:
    """(epoch, attempt that wrote it) of each history row, in order."""
    return [(epoch, record["attempt"]) for epoch, record in epoch_rows(db, job_id)]


def test_a_resumed_attempt_replaces_the_epochs_past_its_checkpoint(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db, options={"epochs": 6})
    first = claim_next(migrated_db, worker_id="w1", lease_seconds=30)
    assert first is not None
    assert save_progress(migrated_db, first, _progress(range(1, 3), 1), checkpoint_sha256="c2")
    assert save_progress(migrated_db, first, _progress(range(3, 5), 1))  # no checkpoint
    assert _rows(migrated_db, job_id) == [(1, 1), (2, 1), (3, 1), (4, 1)]
    expire_lease(migrated_db, job_id)
    assert requeue_expired(migrated_db, max_attempts=3) == 1

    second = claim_next(migrated_db, worker_id="w2", lease_seconds=30)
    assert second is not None
    # The stale worker writes nothing, history included.
    assert not save_progress(migrated_db, first, _progress(range(5, 6), 1))
    assert save_progress(migrated_db, second, _progress(range(3, 4), 2))  # resumed at 2
    assert _rows(migrated_db, job_id) == [(1, 1), (2, 1), (3, 2)]
    assert finish(migrated_db, second, _progress(range(4, 7), 2), MODEL).model_id

    assert _rows(migrated_db, job_id) == [(1, 1), (2, 1)] + [(e, 2) for e in range(3, 7)]
    job = get_job(migrated_db, job_id)
    assert job.epoch == 6 and [entry["epoch"] for entry in job.history] == list(range(1, 7))


def test_a_cancel_keeping_the_model_records_the_last_epochs(migrated_db: Database) -> None:
    (job_id,) = add_jobs(migrated_db, options={"epochs": 3})
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=30)
    assert claim is not None
    assert save_progress(migrated_db, claim, _progress(range(1, 2), 1))
    cancel(migrated_db, job_id, keep_model=True)

    outcome = finish(migrated_db, claim, _progress(range(2, 4), 1), MODEL, best=lambda: MODEL)

    assert outcome.status == "cancelled" and outcome.model_id is not None
    assert _rows(migrated_db, job_id) == [(1, 1), (2, 1), (3, 1)]
