"""SQLite write transactions (app/storage/database.py): ``BEGIN IMMEDIATE`` looks at a busy
write lock every fraction of a millisecond until the busy timeout, rather than through
SQLite's handler (1, 2, 5, 10... ms sleeps); the transaction begins once the lock is free,
a lock held past the timeout is the usual error, and the connection keeps its timeout."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.storage import database as database_module
from app.storage.database import Database


def _database(path: Path) -> tuple[Database, sqlite3.Connection]:
    db = Database(f"sqlite:///{path}")
    with db.session() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(path, isolation_level=None)  # another process's connection
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    return db, holder


def test_a_writer_waits_for_the_lock_and_begins_once_it_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks: list[bool] = []
    real = database_module._begin_immediate_soon

    def spied(connection: sqlite3.Connection) -> bool:
        looks.append(real(connection))
        return looks[-1]

    monkeypatch.setattr(database_module, "_begin_immediate_soon", spied)
    db, holder = _database(tmp_path / "lock.db")
    began, timeouts = threading.Event(), []

    def write() -> None:
        with db.session() as session:
            session.execute(text("INSERT INTO t VALUES (2)"))
            began.set()
        with db.read_session() as session:
            timeouts.append(session.execute(text("PRAGMA busy_timeout")).scalar_one())

    thread = threading.Thread(target=write)
    thread.start()
    assert not began.wait(0.05)  # it waits while the lock is held ...
    holder.execute("COMMIT")
    thread.join(10)
    assert began.is_set() and not thread.is_alive()  # ... and begins once it is free
    assert looks[-1] is True  # by its own looks, not SQLite's handler
    assert timeouts == [database_module.SQLITE_BUSY_TIMEOUT_MS]
    with db.read_session() as session:
        assert session.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2]
    holder.close()
    db.dispose()


def test_a_lock_held_past_the_busy_timeout_is_the_usual_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 30)
    db, holder = _database(tmp_path / "lock.db")
    with pytest.raises(database_module.UNAVAILABLE), db.session() as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
    holder.execute("ROLLBACK")
    with db.session() as session:  # the connection still works, with its timeout
        session.execute(text("INSERT INTO t VALUES (3)"))
        timeout: Any = session.execute(text("PRAGMA busy_timeout")).scalar_one()
    assert timeout == 30
    holder.close()
    db.dispose()
