"""A worker whose database goes away: the write that ends a job is retried until the lease
would expire (the finished training is not thrown away), other errors are not retried.
(tests/faults/test_database_restart.py restarts a real PostgreSQL under a worker.)"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from app.jobs import attempt, dbretry, endings
from app.jobs.worker import Worker
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.conftest import MakeSettings
from tests.queue.rows import get_job, models_of
from tests.worker.jobs import add_training_jobs

GONE = OperationalError("UPDATE jobs", {}, ConnectionRefusedError("connection refused"))


@pytest.fixture(autouse=True)
def _no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbretry, "FIRST_DELAY_SECONDS", 0.001)
    monkeypatch.setattr(dbretry, "MAX_DELAY_SECONDS", 0.001)


def test_until_deadline_retries_unavailable_errors_only() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise GONE
        return "done"

    far = time.monotonic() + 3600
    later = lambda: far  # noqa: E731
    assert dbretry.until_deadline(flaky, deadline=later, what="test") == "done"
    assert len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise IntegrityError("INSERT", {}, ValueError("a bug"))

    calls.clear()
    with pytest.raises(IntegrityError):
        dbretry.until_deadline(broken, deadline=later, what="test")
    assert len(calls) == 1

    def down() -> None:
        calls.append(1)
        raise GONE

    calls.clear()
    with pytest.raises(OperationalError):  # the lease has run out: give up
        dbretry.until_deadline(down, deadline=lambda: time.monotonic() - 1, what="test")
    assert len(calls) == 1


def test_the_final_commit_is_retried_while_the_database_is_away(
    migrated_db: Database, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(migrated_db.url, checkpoint_seconds=0, lease_seconds=60)
    (job_id,) = add_training_jobs(migrated_db, epochs=3)
    real_finish = endings.finish_item
    tries: list[int] = []

    def finish_after_an_outage(*args: Any, **kwargs: Any) -> endings.Outcome:
        tries.append(1)
        if len(tries) <= 3:
            raise GONE
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(endings, "finish_item", finish_after_an_outage)
    assert Worker(migrated_db, settings).run(burst=True) == 1

    job = get_job(migrated_db, job_id)
    assert (job.status, job.attempts, job.epoch) == (JobStatus.SUCCEEDED, 1, 3)
    assert len(tries) == 4
    assert len(models_of(migrated_db, job_id)) == 1


def test_an_outage_at_the_start_of_an_attempt_costs_no_attempt(
    migrated_db: Database, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(migrated_db.url, checkpoint_seconds=0, lease_seconds=60)
    (job_id,) = add_training_jobs(migrated_db, epochs=2)
    real_load = attempt.load_inputs
    tries: list[int] = []

    def load_after_an_outage(*args: Any) -> attempt.JobInputs:
        tries.append(1)
        if len(tries) <= 2:
            raise GONE
        return real_load(*args)

    monkeypatch.setattr(attempt, "load_inputs", load_after_an_outage)
    assert Worker(migrated_db, settings).run(burst=True) == 1
    job = get_job(migrated_db, job_id)
    assert (job.status, job.attempts, len(tries)) == (JobStatus.SUCCEEDED, 1, 3)
