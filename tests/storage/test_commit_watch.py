"""CommitWatch: an idle worker's wait ends at another connection's commit (SQLite files)
or at a job's queueing (PostgreSQL's NOTIFY, migration 0011)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from app.storage import commit_watch
from app.storage.commit_watch import CommitWatch
from app.storage.database import Database
from app.storage.migrations import upgrade
from app.storage.tables import Job, JobStatus
from tests.queue.rows import add_jobs

LONG = 60.0  # a wait that would fail the test by its length if the watch missed a commit


def _wal_database(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x INTEGER)")
    return f"sqlite:///{path}"


def _commit_from_another_process(path: Path, after: float) -> subprocess.Popen[bytes]:
    code = (  # SQLite's default synchronous=FULL: an fsync between the write and the commit
        "import sqlite3, sys, time\n"
        f"time.sleep({after})\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute('PRAGMA synchronous=FULL')\n"
        "c.execute('INSERT INTO t VALUES (1)')\n"
        "c.commit()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(path)])


def _timed_wait(watch: CommitWatch, seconds: float, stopping: threading.Event) -> float:
    started = time.monotonic()
    watch.wait(seconds, stopping)
    return time.monotonic() - started


def test_a_commit_in_another_process_ends_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Woken by inotify alone (the periodic look at ``stopping`` is pushed past the
    test's bound), even with the writer's synchronous=FULL: its frames are written, then
    fsynced, then the commit becomes visible."""
    monkeypatch.setattr(commit_watch, "STOP_CHECK_SECONDS", LONG)
    url = _wal_database(tmp_path / "db.sqlite")
    watch = CommitWatch(url)
    try:
        assert watch.watching and watch.sees_every_commit
        for _ in range(3):
            writer = _commit_from_another_process(tmp_path / "db.sqlite", after=0.3)
            waited = _timed_wait(watch, LONG, threading.Event())
            assert writer.wait(30) == 0
            assert waited < LONG / 2
        # Nothing committed since: the next wait lasts its whole length.
        monkeypatch.setattr(commit_watch, "STOP_CHECK_SECONDS", 0.25)
        assert _timed_wait(watch, 0.3, threading.Event()) >= 0.3
    finally:
        watch.close()


def test_without_inotify_a_sqlite_wait_is_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commit_watch, "_inotify_on", lambda path: None)
    watch = CommitWatch(_wal_database(tmp_path / "db.sqlite"))
    assert not watch.watching and not watch.sees_every_commit
    assert _timed_wait(watch, 0.2, threading.Event()) >= 0.2
    watch.close()


def test_a_commit_between_two_waits_ends_the_next_one_at_once(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    watch = CommitWatch(_wal_database(path))
    try:
        with sqlite3.connect(path) as other:
            other.execute("INSERT INTO t VALUES (1)")
        assert _timed_wait(watch, LONG, threading.Event()) < LONG / 2
    finally:
        watch.close()


def test_a_stop_ends_the_wait(tmp_path: Path) -> None:
    watch = CommitWatch(_wal_database(tmp_path / "db.sqlite"))
    stopping = threading.Event()
    threading.Timer(0.2, stopping.set).start()
    try:
        assert _timed_wait(watch, LONG, stopping) < LONG / 2
    finally:
        watch.close()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "postgresql+psycopg://u@127.0.0.1:1/none"]
)
def test_without_a_shared_file_a_wait_is_the_stop_events(url: str) -> None:
    watch = CommitWatch(url)
    assert not watch.watching
    stopping = threading.Event()
    assert _timed_wait(watch, 0.2, stopping) >= 0.2
    stopping.set()
    assert _timed_wait(watch, LONG, stopping) < LONG / 2
    watch.close()


def test_a_job_queued_by_another_connection_ends_the_wait(migrated_db: Database) -> None:
    watch = CommitWatch(migrated_db.url)
    try:
        assert watch.watching
        queuing = threading.Timer(0.3, add_jobs, args=(migrated_db,))
        queuing.start()
        waited = _timed_wait(watch, LONG, threading.Event())
        queuing.join()
        assert waited < LONG / 2
    finally:
        watch.close()


@pytest.mark.postgres
def test_postgresql_wakes_for_queued_jobs_only(postgres_url: str) -> None:
    """The trigger notifies when a row becomes queued (a new job, a job put back), not at
    other commits; a notification reaches a listener that was waiting for it."""
    upgrade(postgres_url)
    db = Database(postgres_url)
    (job_id,) = add_jobs(db)
    watch = CommitWatch(postgres_url)

    def set_status(status: str) -> None:
        with db.session() as session:
            session.get_one(Job, job_id).status = status

    try:
        assert watch.watching and not watch.sees_every_commit  # queued jobs only
        running = threading.Timer(0.1, set_status, args=(JobStatus.RUNNING,))
        running.start()
        assert _timed_wait(watch, 0.8, threading.Event()) >= 0.8  # not a queueing
        running.join()
        requeued = threading.Timer(0.3, set_status, args=(JobStatus.QUEUED,))
        requeued.start()
        assert _timed_wait(watch, LONG, threading.Event()) < LONG / 2
        requeued.join()
    finally:
        watch.close()
        db.dispose()


@pytest.mark.postgres
def test_postgresql_listens_again_after_losing_its_connection(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(postgres_url)
    db = Database(postgres_url)
    monkeypatch.setattr(commit_watch, "RELISTEN_SECONDS", 0.1)
    watch = CommitWatch(postgres_url)
    try:
        assert watch.watching
        with db.session() as session:  # the server ends the listener's session
            session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%'"
                )
            )
        _timed_wait(watch, 0.5, threading.Event())  # notices the loss, listens again
        assert watch.watching
        queuing = threading.Timer(0.3, add_jobs, args=(db,))
        queuing.start()
        assert _timed_wait(watch, LONG, threading.Event()) < LONG / 2
        queuing.join()
    finally:
        watch.close()
        db.dispose()
