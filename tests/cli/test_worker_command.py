"""`backprop worker` started before the database is migrated waits for it."""

from __future__ import annotations

import signal
from pathlib import Path

from app.storage.database import Database
from app.storage.migrations import upgrade
from app.storage.tables import JobStatus
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import get_job
from tests.worker.jobs import add_training_jobs
from tests.worker.procs import start_worker, wait_exit


def test_a_worker_waits_for_migrations_then_works(
    sqlite_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    make_settings(sqlite_url, log_level="info")  # the test reads the "waiting" line
    log = tmp_path / "worker.log"
    worker = start_worker(log, burst=True)
    wait_for(lambda: "waiting for the database" in log.read_text(), what="the worker to wait")
    assert worker.poll() is None, log.read_text()

    upgrade(sqlite_url)
    database = Database(sqlite_url)
    (job_id,) = add_training_jobs(database, epochs=2)

    assert wait_exit(worker, log) == 0
    assert get_job(database, job_id).status == JobStatus.SUCCEEDED
    database.dispose()


def test_a_waiting_worker_stops_on_sigterm(
    sqlite_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    make_settings(sqlite_url, log_level="info")  # the test reads the "waiting" line
    log = tmp_path / "worker.log"
    worker = start_worker(log)
    wait_for(lambda: "waiting for the database" in log.read_text(), what="the worker to wait")

    worker.send_signal(signal.SIGTERM)

    assert wait_exit(worker, log, timeout=60) == 0
