"""`backprop serve`: the first key, the API, supervised workers, clean shutdown."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.storage.database import Database
from app.storage.migrations import is_current
from app.storage.tables import JobStatus, WorkerHeartbeat
from tests.cli.server import Server
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import get_job
from tests.worker.jobs import add_training_jobs

pytestmark = pytest.mark.slow  # real `serve` processes: API + workers


def _authorized(server: Server, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{server.url}/v1/jobs", headers=headers, timeout=10).status_code


def test_serve_migrates_and_prints_a_key_only_when_none_exists(
    sqlite_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url)

    first = Server(tmp_path, workers=0, name="first")
    try:
        first.wait_healthy()
        (key,) = first.printed_keys()
        assert "/docs" in first.stdout and "Authorize" in first.stdout
        assert f"Backprop data directory: {settings.data_dir}\n" in first.stdout
        # The periodic garbage collection runs once at start, then every interval.
        wait_for(lambda: f"gc of {settings.blob_url}: " in first.stdout, what="a gc run")
        assert _authorized(first, key) == 200
        assert _authorized(first, key[:-1] + ("A" if key[-1] != "A" else "B")) == 401
    finally:
        assert first.stop() == 0, first.logs()
    database = Database(sqlite_url)
    assert is_current(database)
    database.dispose()

    second = Server(tmp_path, workers=0, name="second")
    try:
        second.wait_healthy()
        assert _authorized(second, key) == 200
    finally:
        assert second.stop() == 0, second.logs()
    assert second.printed_keys() == []


def test_a_bootstrap_key_is_registered_and_nothing_printed(
    sqlite_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    key = "bp_" + "k" * 43
    make_settings(sqlite_url, bootstrap_key=key)

    server = Server(tmp_path, workers=0)
    try:
        server.wait_healthy()
        assert _authorized(server, key) == 200
    finally:
        assert server.stop() == 0, server.logs()
    assert server.printed_keys() == []


def _worker_pids(database: Database) -> set[int]:
    with database.read_session() as session:
        return set(session.scalars(select(WorkerHeartbeat.pid)))


def test_serve_restarts_a_dead_worker_and_releases_jobs_on_sigterm(
    migrated_db: Database, make_settings: MakeSettings, tmp_path: Path
) -> None:
    make_settings(migrated_db.url, checkpoint_seconds=0)
    server = Server(tmp_path, workers=1)
    try:
        (first_pid,) = wait_for(lambda: _worker_pids(migrated_db), what="a worker row")
        os.kill(first_pid, signal.SIGKILL)
        (second_pid,) = wait_for(
            lambda: (pids := _worker_pids(migrated_db) - {first_pid}) and pids,
            what="a restarted worker",
        )
        assert second_pid != first_pid

        (job_id,) = add_training_jobs(migrated_db, epochs=100_000)
        wait_for(lambda: get_job(migrated_db, job_id).epoch >= 2, what="the job to train")
    finally:
        assert server.stop() == 0, server.logs()

    job = get_job(migrated_db, job_id)
    assert (job.status, job.attempts, job.lease_token) == (JobStatus.QUEUED, 0, None)
    # The killed worker's row is stale; the restarted one said goodbye on SIGTERM.
    assert _worker_pids(migrated_db) == {first_pid}


def test_serve_restarts_the_api_process_when_it_is_killed(
    sqlite_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    key = "bp_" + "r" * 43
    make_settings(sqlite_url, bootstrap_key=key)
    server = Server(tmp_path, workers=0)
    try:
        server.wait_healthy()
        (first_pid,) = server.started_pids("api")
        os.kill(first_pid, signal.SIGKILL)
        # The supervisor logs the new pid only after it saw the old process exit, so the
        # /healthz that answers next is the new process's.
        (second_pid,) = wait_for(
            lambda: server.started_pids("api")[1:], what="the API to be restarted"
        )
        assert second_pid != first_pid
        server.wait_healthy()
        assert _authorized(server, key) == 200
        assert server.process.poll() is None  # serve itself lived on
    finally:
        assert server.stop() == 0, server.logs()
    assert "api exited with status -9" in server.logs()
