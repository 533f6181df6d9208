"""How long an idle worker waits between looks at the queue: quick right after a job ended
(another worker's ending, a halving rung's promotion, is then seconds away at most) unless
its commit watch ends a wait at every commit (SQLite), the configured poll interval
otherwise; and on SQLite, until the next commit at most."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from app.jobs import worker as worker_module
from app.jobs.worker import QUICK_POLL_SECONDS, Worker
from app.storage.commit_watch import CommitWatch
from app.storage.database import Database
from app.storage.tables import JobStatus
from tests.conftest import MakeSettings
from tests.queue.rows import get_job
from tests.worker.jobs import add_training_jobs


class RecordingWatch(CommitWatch):
    """A commit watch that records each wait's length instead of waiting, and stops the
    worker after ``waits`` of them."""

    def __init__(
        self, url: str, stopping: threading.Event, waits: int, every_commit: bool | None
    ) -> None:
        super().__init__(url)
        self.timeouts: list[float] = []
        self._stopping, self._waits, self._every_commit = stopping, waits, every_commit

    @property
    def sees_every_commit(self) -> bool:
        """As a real watch's, or as told (a watch that ends waits at queued jobs only)."""
        if self._every_commit is None:
            return super().sees_every_commit
        return self._every_commit

    def wait(self, seconds: float, stopping: threading.Event) -> None:
        self.timeouts.append(seconds)
        if len(self.timeouts) >= self._waits:
            self._stopping.set()


def _idle_waits(
    db: Database,
    make_settings: MakeSettings,
    monkeypatch: pytest.MonkeyPatch,
    every_commit: bool | None = None,
) -> list[float]:
    worker = Worker(db, make_settings(db.url, poll_seconds=30.0))
    watches: list[RecordingWatch] = []

    def recording(url: str) -> RecordingWatch:
        watches.append(RecordingWatch(url, worker.stopping, 3, every_commit))
        return watches[-1]

    monkeypatch.setattr(worker_module, "CommitWatch", recording)
    worker.run()
    return watches[0].timeouts


def test_an_idle_worker_polls_at_the_configured_interval(
    sqlite_db: Database, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _idle_waits(sqlite_db, make_settings, monkeypatch) == [30.0, 30.0, 30.0]


@pytest.mark.parametrize(
    ("every_commit", "wait"),
    [
        (False, QUICK_POLL_SECONDS),
        pytest.param(  # SQLite's real watch, which does (inotify: Linux)
            None,
            30.0,
            marks=pytest.mark.skipif(
                not sys.platform.startswith("linux"), reason="the commit watch needs inotify"
            ),
        ),
    ],
)
def test_after_a_job_the_worker_polls_quickly_unless_every_commit_wakes_it(
    sqlite_db: Database,
    make_settings: MakeSettings,
    monkeypatch: pytest.MonkeyPatch,
    every_commit: bool | None,
    wait: float,
) -> None:
    """Another worker's ending is a commit: a watch that sees every commit ends the wait
    at it, and quick looks would only cost CPU."""
    (job_id,) = add_training_jobs(sqlite_db, epochs=2)
    assert _idle_waits(sqlite_db, make_settings, monkeypatch, every_commit) == [wait] * 3
    assert get_job(sqlite_db, job_id).status == JobStatus.SUCCEEDED


def test_the_quick_polling_ends_with_its_window(
    sqlite_db: Database, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "QUICK_POLL_WINDOW", 0.0)
    add_training_jobs(sqlite_db, epochs=2)
    waits = _idle_waits(sqlite_db, make_settings, monkeypatch, every_commit=False)
    assert waits == [30.0, 30.0, 30.0]


def test_an_idle_worker_takes_a_new_job_at_its_commit_not_a_poll_later(
    sqlite_db: Database, make_settings: MakeSettings
) -> None:
    """With a 60 s poll interval, a job queued (by another connection) while the worker
    waits still runs at once: the worker's CommitWatch ends its wait at the commit."""
    worker = Worker(sqlite_db, make_settings(sqlite_db.url, poll_seconds=60.0))
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        time.sleep(0.5)  # the worker found nothing and waits
        other = Database(sqlite_db.url)
        try:
            (job_id,) = add_training_jobs(other, epochs=2)
        finally:
            other.dispose()
        deadline = time.monotonic() + 30.0  # half the poll interval: only the watch is this quick
        while get_job(sqlite_db, job_id).status != JobStatus.SUCCEEDED:
            assert time.monotonic() < deadline, "the job waited for the poll interval"
            time.sleep(0.05)
    finally:
        worker.stopping.set()
        runner.join(timeout=90)
    assert not runner.is_alive()
