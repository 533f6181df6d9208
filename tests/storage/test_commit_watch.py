"""CommitWatch: an idle worker's wait ends at another connection's commit (SQLite files)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.storage import commit_watch
from app.storage.commit_watch import CommitWatch

LONG = 60.0  # a wait that would fail the test by its length if the watch missed a commit


def _wal_database(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x INTEGER)")
    return f"sqlite:///{path}"


def _commit_from_another_process(path: Path, after: float) -> subprocess.Popen[bytes]:
    code = (
        "import sqlite3, sys, time\n"
        f"time.sleep({after})\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute('INSERT INTO t VALUES (1)')\n"
        "c.commit()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(path)])


def _timed_wait(watch: CommitWatch, seconds: float, stopping: threading.Event) -> float:
    started = time.monotonic()
    watch.wait(seconds, stopping)
    return time.monotonic() - started


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "ticks"])
def test_a_commit_in_another_process_ends_the_wait(
    tmp_path: Path, inotify: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not inotify:
        monkeypatch.setattr(commit_watch, "_inotify_on", lambda path: None)
    url = _wal_database(tmp_path / "db.sqlite")
    watch = CommitWatch(url)
    try:
        assert watch.watching
        if inotify and sys.platform == "linux":
            assert watch.inotify
        writer = _commit_from_another_process(tmp_path / "db.sqlite", after=0.3)
        waited = _timed_wait(watch, LONG, threading.Event())
        assert writer.wait(30) == 0
        assert waited < LONG / 2
        # Nothing committed since: the next wait lasts its whole length.
        assert _timed_wait(watch, 0.3, threading.Event()) >= 0.3
    finally:
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
