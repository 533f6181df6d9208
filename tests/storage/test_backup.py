"""`backprop backup` / `restore` in-process, on the file and the S3 store: exactly the
referenced blobs are copied and listed with their hashes; a restore checks the backup,
refuses a non-empty target, and queues again the jobs the backup caught running."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from app.config import Settings
from app.jobs.queue import claim_next
from app.storage.backup import BackupError, backup, sqlite_path
from app.storage.blobs import BlobStore, blob_key, open_blob_store, read_verified
from app.storage.database import Database
from app.storage.gc import referenced_blobs
from app.storage.migrations import is_current, upgrade
from app.storage.restore import restore
from app.storage.tables import Job, JobStatus, WorkerHeartbeat
from tests.conftest import MakeSettings
from tests.queue.rows import XOR_X, XOR_Y, add_dataset, add_jobs, add_owner


def _target_store(blob_url: str, tmp_path: Path) -> BlobStore:
    """An empty store of the same kind as ``blob_url``'s: a new folder or S3 prefix."""
    if blob_url.startswith("file:"):
        return open_blob_store(Settings(blob_url=(tmp_path / "new" / "blobs").as_uri()))
    return open_blob_store(Settings(blob_url=f"{blob_url}-restored"))


@pytest.fixture
def source(
    sqlite_url: str, blob_url: str, blob_store: BlobStore, make_settings: MakeSettings
) -> str:
    """A migrated SQLite database with two datasets, a running and a queued job, and a
    blob nobody references, all in ``blob_store``."""
    make_settings(sqlite_url, blob_url=blob_url)  # the store add_jobs writes to
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    try:
        add_jobs(db, 2, owner="alice")
        running = claim_next(db, worker_id="old-worker", lease_seconds=3600)
        assert running is not None
        with db.session() as session:
            session.add(WorkerHeartbeat(id="old-worker", hostname="old", pid=1))
        add_dataset(db, add_owner(db, "bob"), XOR_X + 1, 1 - XOR_Y, blobs=blob_store)
    finally:
        db.dispose()
    blob_store.put_bytes(b"an orphan: not in the backup")
    return sqlite_url


def test_backup_then_restore_round_trip(
    source: str, blob_url: str, blob_store: BlobStore, tmp_path: Path
) -> None:
    dest = tmp_path / "backup"
    manifest = backup(source, blob_store, dest)

    assert manifest.counts["jobs"] == 2 and manifest.counts["datasets"] == 2
    assert manifest.counts["blobs"] == 4  # x and y of two datasets; not the orphan
    on_disk = json.loads((dest / "manifest.json").read_text())
    assert on_disk["files"] == manifest.files
    for relative, entry in manifest.files.items():
        if relative != "backprop.db":
            assert relative == f"blobs/{blob_key(entry['sha256'])}"

    target = _target_store(blob_url, tmp_path)
    data_dir = tmp_path / "new"
    url = f"sqlite:///{data_dir / 'backprop.db'}"
    report = restore(dest, data_dir=data_dir, database_url=url, store=target)
    assert (report.blobs, report.requeued) == (4, 1)

    db = Database(url)
    try:
        for sha in referenced_blobs(db):
            read_verified(target, sha)
        with db.read_session() as session:
            jobs = list(session.scalars(select(Job)))
            workers = list(session.scalars(select(WorkerHeartbeat)))
        assert {job.status for job in jobs} == {JobStatus.QUEUED}
        assert sorted(job.attempts for job in jobs) == [0, 0]
        assert all(job.lease_token is None for job in jobs)
        assert workers == []
    finally:
        db.dispose()

    with pytest.raises(BackupError, match="is not empty"):
        restore(dest, data_dir=data_dir, database_url=url, store=target)


def test_restore_refuses_a_damaged_or_unfinished_backup(
    source: str, blob_store: BlobStore, tmp_path: Path
) -> None:
    dest = tmp_path / "backup"
    manifest = backup(source, blob_store, dest)
    blob = next(name for name in manifest.files if name.startswith("blobs/"))
    path = dest / blob
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"!")
    new = tmp_path / "new"
    url = f"sqlite:///{new / 'backprop.db'}"
    store = open_blob_store(Settings(blob_url=(new / "blobs").as_uri()))
    with pytest.raises(BackupError, match="damaged"):
        restore(dest, data_dir=new, database_url=url, store=store)
    assert not (new / "backprop.db").exists()

    (dest / "manifest.json").unlink()
    with pytest.raises(BackupError, match="did not finish"):
        restore(dest, data_dir=new, database_url=url, store=store)


def test_backup_refuses_postgres_and_a_non_empty_folder(
    source: str, blob_store: BlobStore, tmp_path: Path
) -> None:
    with pytest.raises(BackupError, match="pg_dump"):
        backup("postgresql+psycopg://u@127.0.0.1:1/x", blob_store, tmp_path / "a")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        backup(source, blob_store, busy)


def test_a_referenced_blob_gone_from_the_store_fails_the_backup_naming_it(
    source: str, blob_store: BlobStore, tmp_path: Path
) -> None:
    db = Database(source)
    try:
        gone = sorted(referenced_blobs(db))[0]
    finally:
        db.dispose()
    blob_store.delete(gone)
    with pytest.raises(BackupError, match=f"{gone}.*run the backup again"):
        backup(source, blob_store, tmp_path / "backup")
    assert not (tmp_path / "backup" / "manifest.json").exists()


def test_backup_and_the_schema_check_need_no_write_lock(
    source: str, blob_store: BlobStore, tmp_path: Path
) -> None:
    """A writer that holds SQLite's write lock and does not let go (a worker stopped
    mid-transaction, as `kill -STOP` does) must not stall a backup or `/readyz`: both
    only read. The schema check once began IMMEDIATE, waited the 30 s busy timeout, and
    failed the backup with "database is locked" (CI at 546b2fa)."""
    holder = sqlite3.connect(sqlite_path(source), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE jobs SET attempts = attempts")
        db = Database(source)
        try:
            assert is_current(db)
        finally:
            db.dispose()
        manifest = backup(source, blob_store, tmp_path / "backup")
        assert manifest.counts["jobs"] == 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
