"""The API server and each worker freeze the objects their startup made out of the garbage
collector's full passes (app/process_heap.py): ~140,000 objects, whose full pass took
85-150 ms on the benchmark machine, in the middle of whatever request or training step
ran then."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from app.storage.database import Database
from app.storage.migrations import upgrade
from app.storage.tables import JobStatus
from tests.conftest import MakeSettings
from tests.queue.rows import get_job
from tests.worker.jobs import add_training_jobs
from tests.worker.procs import start_worker, wait_exit

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_OBJECTS = 50_000  # FastAPI, pydantic, SQLAlchemy and NumPy alone track more


def test_the_served_app_freezes_what_its_startup_made(
    sqlite_url: str, make_settings: MakeSettings
) -> None:
    make_settings(sqlite_url)
    script = (
        "import gc\n"
        "from app.main import served_app\n"
        "app = served_app()\n"
        "print(gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    frozen, tracked = map(int, done.stdout.split())
    assert frozen > STARTUP_OBJECTS
    assert tracked < frozen / 10  # what a full pass still walks


def test_a_worker_freezes_what_its_startup_made_then_trains(
    sqlite_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    make_settings(sqlite_url, log_level="debug")  # the test reads the worker's startup line
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    (job_id,) = add_training_jobs(database, epochs=2)
    log = tmp_path / "worker.log"

    assert wait_exit(start_worker(log, burst=True), log) == 0

    found = re.search(r"worker startup: (\d+) objects frozen", log.read_text())
    assert found is not None, log.read_text()
    assert int(found.group(1)) > STARTUP_OBJECTS
    assert get_job(database, job_id).status == JobStatus.SUCCEEDED
    database.dispose()
