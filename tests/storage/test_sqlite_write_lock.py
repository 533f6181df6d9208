"""SQLite write transactions (app/storage/database.py): ``BEGIN IMMEDIATE`` looks at a busy
write lock every fraction of a millisecond for a while, rather than SQLite's handler's
1, 2, 5, 10... ms sleeps, then falls back to that handler's busy timeout; either way the
transaction begins once the lock is free, and the connection keeps its busy timeout."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from app.storage import database as database_module
from app.storage.database import SQLITE_BUSY_TIMEOUT_MS, Database


def _writer_in_thread(db: Database, began: threading.Event, done: list[int]) -> threading.Thread:
    def write() -> None:
        with db.session() as session:
            session.execute(text("INSERT INTO t VALUES (2)"))
            began.set()
        with db.read_session() as session:
            done.append(int(session.execute(text("PRAGMA busy_timeout")).scalar_one()))

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.mark.parametrize("quick_wait", [0.25, 0.005], ids=["quick looks", "then the handler"])
def test_a_writer_waits_for_the_lock_and_begins_once_it_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_wait: float
) -> None:
    monkeypatch.setattr(database_module, "SQLITE_QUICK_WAIT_SECONDS", quick_wait)
    path = tmp_path / "lock.db"
    db = Database(f"sqlite:///{path}")
    with db.session() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    holder.execute("INSERT INTO t VALUES (1)")
    began, done = threading.Event(), []
    thread = _writer_in_thread(db, began, done)
    assert not began.wait(0.05)  # it waits while the lock is held ...
    holder.execute("COMMIT")
    thread.join(10)
    assert began.is_set() and not thread.is_alive()  # ... and begins once it is free
    assert done == [SQLITE_BUSY_TIMEOUT_MS]
    with db.read_session() as session:
        assert session.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2]
    holder.close()
    db.dispose()


def test_a_lock_held_past_the_busy_timeout_is_the_usual_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "SQLITE_QUICK_WAIT_SECONDS", 0.001)
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 20)
    path = tmp_path / "lock.db"
    db = Database(f"sqlite:///{path}")
    with db.session() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(database_module.UNAVAILABLE), db.session() as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
    holder.execute("ROLLBACK")
    holder.close()
    db.dispose()
