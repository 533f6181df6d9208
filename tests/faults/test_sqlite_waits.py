"""SQLite: a long reader, a backup in progress or another writer makes a writer wait, never
fail. The database runs in WAL mode (readers, the backup's snapshot included, do not
block the writer) with a busy timeout (a second writer waits for the first)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlalchemy.engine import make_url

from app.storage.backup import Manifest, backup
from app.storage.blob_file import FileBlobStore
from app.storage.database import Database
from app.storage.migrations import upgrade
from tests.queue.rows import add_owner

FILLER_BYTES = 32 * 1024 * 1024  # enough pages that the backup's copy takes a while


def _migrated(url: str) -> Database:
    upgrade(url)
    return Database(url)


def _raw(url: str) -> sqlite3.Connection:
    path = str(make_url(url).database)
    return sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)


def test_a_long_reader_does_not_block_writers(sqlite_url: str) -> None:
    db = _migrated(sqlite_url)
    reader = _raw(sqlite_url)
    try:
        reader.execute("BEGIN")
        (owners,) = reader.execute("SELECT count(*) FROM owners").fetchone()
        for i in range(20):  # while the read transaction stays open
            add_owner(db, f"writer-{i}")
        # The reader still sees its snapshot; a new read sees the writes.
        assert reader.execute("SELECT count(*) FROM owners").fetchone() == (owners,)
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM owners").fetchone() == (owners + 20,)
    finally:
        reader.close()
        db.dispose()


def test_a_writer_waits_for_another_writer_instead_of_failing(sqlite_url: str) -> None:
    db = _migrated(sqlite_url)
    holder = _raw(sqlite_url)
    released = threading.Event()
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held
        holder.execute("INSERT INTO owners (name, created_at) VALUES ('holder', '2026-01-01')")

        def release_later() -> None:
            threading.Event().wait(1.0)
            released.set()
            holder.execute("COMMIT")

        thread = threading.Thread(target=release_later)
        thread.start()
        add_owner(db, "waiting")  # blocks on the busy timeout until the holder commits
        assert released.is_set(), "the write went through while another writer held the lock"
        thread.join()
        with db.engine.connect() as connection:
            names = {row[0] for row in connection.exec_driver_sql("SELECT name FROM owners")}
        assert {"holder", "waiting"} <= names
    finally:
        holder.close()
        db.dispose()


def test_writers_go_on_during_a_backup(sqlite_url: str, tmp_path: Path) -> None:
    db = _migrated(sqlite_url)
    filler = _raw(sqlite_url)
    filler.execute("CREATE TABLE filler (payload BLOB)")
    filler.executemany(
        "INSERT INTO filler VALUES (?)", [(b"\x5a" * 65536,) for _ in range(FILLER_BYTES // 65536)]
    )
    filler.close()
    result: list[Manifest] = []
    errors: list[BaseException] = []

    def run_backup() -> None:
        try:
            result.append(backup(sqlite_url, FileBlobStore(tmp_path / "blobs"), tmp_path / "bk"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=run_backup)
    written = 0
    try:
        thread.start()
        while thread.is_alive():
            add_owner(db, f"during-{written}")
            written += 1
        thread.join()
        assert errors == []
        (manifest,) = result
        assert written > 0
        # A consistent snapshot: some prefix of the writes, no torn state.
        snapshot = sqlite3.connect(tmp_path / "bk" / "backprop.db")
        try:
            assert snapshot.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            (count,) = snapshot.execute("SELECT count(*) FROM owners").fetchone()
        finally:
            snapshot.close()
        assert manifest.counts["owners"] == count <= written
    finally:
        thread.join()
        db.dispose()
