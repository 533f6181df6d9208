"""How long an idle worker waits between looks at the queue: quick right after a job ended
(another worker's ending, a halving rung's promotion, is then seconds away at most), the
configured poll interval otherwise."""

from __future__ import annotations

import threading

import pytest

from app.jobs import worker as worker_module
from app.jobs.worker import QUICK_POLL_SECONDS, Worker
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.conftest import MakeSettings
from tests.queue.rows import get_job
from tests.worker.jobs import add_training_jobs


class RecordingStop(threading.Event):
    """A stop event that records each wait's timeout and is set after ``waits`` of them."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []
        self._waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        if len(self.timeouts) >= self._waits:
            self.set()
        return self.is_set()


def _idle_waits(db: Database, make_settings: MakeSettings) -> list[float | None]:
    worker = Worker(db, make_settings(db.url, poll_seconds=30.0))
    stop = worker.stopping = RecordingStop(waits=3)
    worker.run()
    return stop.timeouts


def test_an_idle_worker_polls_at_the_configured_interval(
    sqlite_db: Database, make_settings: MakeSettings
) -> None:
    assert _idle_waits(sqlite_db, make_settings) == [30.0, 30.0, 30.0]


def test_after_a_job_the_worker_polls_quickly(
    sqlite_db: Database, make_settings: MakeSettings
) -> None:
    (job_id,) = add_training_jobs(sqlite_db, epochs=2)
    assert _idle_waits(sqlite_db, make_settings) == [QUICK_POLL_SECONDS] * 3
    assert get_job(sqlite_db, job_id).status == JobStatus.SUCCEEDED


def test_the_quick_polling_ends_with_its_window(
    sqlite_db: Database, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "QUICK_POLL_WINDOW", 0.0)
    add_training_jobs(sqlite_db, epochs=2)
    assert _idle_waits(sqlite_db, make_settings) == [30.0, 30.0, 30.0]
