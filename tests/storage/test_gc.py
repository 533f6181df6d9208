"""Garbage collection removes exactly the unreferenced blobs past the grace period, and
a commit racing with it never loses its blob."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.storage import gc
from app.storage.blob_file import FileBlobStore
from app.storage.blobs import BlobStore
from app.storage.database import Database
from app.storage.tables import Dataset, Model
from app.storage.tables import Model as ModelRow
from tests.queue.rows import add_dataset, add_owner

LATER = timedelta(hours=2)


def _add_model(db: Database, owner_id: int, weights_sha256: str) -> str:
    with db.session() as session:
        row = ModelRow(owner_id=owner_id, config={}, weights_sha256=weights_sha256, weights_size=1)
        session.add(row)
        session.flush()
        return row.id


def test_only_unreferenced_blobs_past_the_grace_are_removed(
    migrated_db: Database, blob_store: BlobStore
) -> None:
    owner = add_owner(migrated_db)
    dataset_id = add_dataset(migrated_db, owner, blobs=blob_store)
    weights = blob_store.put_bytes(b"weights of a model")
    _add_model(migrated_db, owner, weights.sha256)
    orphan = blob_store.put_bytes(b"nobody references me")

    young = gc.collect_garbage(migrated_db, blob_store, grace_seconds=3600)
    assert young.removed == [] and blob_store.exists(orphan.sha256)

    report = gc.collect_garbage(
        migrated_db, blob_store, grace_seconds=3600, now=datetime.now(UTC) + LATER
    )
    assert report.removed == [(orphan.sha256, orphan.size)]
    assert report.referenced == 3  # x, y and the weights
    assert not blob_store.exists(orphan.sha256)
    assert blob_store.exists(weights.sha256)

    # Deleting the dataset row orphans its arrays.
    with migrated_db.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        x_sha, y_sha = dataset.x_sha256, dataset.y_sha256
        session.delete(dataset)
    report = gc.collect_garbage(
        migrated_db, blob_store, grace_seconds=3600, now=datetime.now(UTC) + LATER
    )
    assert sorted(sha for sha, _ in report.removed) == sorted([x_sha, y_sha])
    assert blob_store.exists(weights.sha256)


def test_a_commit_racing_with_gc_keeps_its_blob(
    migrated_db: Database, blob_store: BlobStore
) -> None:
    """Writers store a blob, then commit a row that references it, while GC runs in a loop
    with a grace far longer than a commit takes: no committed row ever loses its blob."""
    owner = add_owner(migrated_db)
    stop = threading.Event()
    removed: list[str] = []

    def collect() -> None:
        while not stop.is_set():
            report = gc.collect_garbage(migrated_db, blob_store, grace_seconds=60)
            removed.extend(sha for sha, _ in report.removed)

    collector = threading.Thread(target=collect)
    collector.start()
    committed: list[str] = []
    try:
        for i in range(15):
            ref = blob_store.put_bytes(f"model {i}".encode())
            _add_model(migrated_db, owner, ref.sha256)
            committed.append(ref.sha256)
    finally:
        stop.set()
        collector.join()
    assert removed == []
    assert all(blob_store.exists(sha) for sha in committed)


def test_a_duplicate_refreshed_between_listing_and_delete_is_kept(
    migrated_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst interleaving, forced: GC lists an old orphan blob; a writer stores the same
    bytes again (a duplicate: the blob is only refreshed) and commits a row referencing
    it; GC reads the references *before* that commit. The refresh still saves the blob."""
    store = FileBlobStore(tmp_path / "blobs")
    owner = add_owner(migrated_db)
    payload = np.arange(4, dtype=np.float32).tobytes()
    orphan = store.put_bytes(payload)
    old = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    os.utime(store.path_of(orphan.sha256), (old, old))
    read_references = gc.referenced_blobs

    def references_then_a_commit(db: Database) -> set[str]:
        before = read_references(db)
        assert store.put_bytes(payload) == orphan  # deduplicated: refreshed, not rewritten
        _add_model(migrated_db, owner, orphan.sha256)
        return before

    monkeypatch.setattr(gc, "referenced_blobs", references_then_a_commit)
    report = gc.collect_garbage(migrated_db, store, grace_seconds=3600)

    assert report.removed == [] and report.young == 1
    assert store.exists(orphan.sha256)
    with migrated_db.read_session() as session:
        assert session.query(Model).count() == 1


def test_abandoned_temp_files_go_too(migrated_db: Database, tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    store.put_bytes(b"kept? no: unreferenced")
    (tmp_path / "blobs" / ".tmp" / "killed.part").write_bytes(b"half")
    report = gc.collect_garbage(migrated_db, store, grace_seconds=60, now=datetime.now(UTC) + LATER)
    assert (len(report.removed), report.temp_removed) == (1, 1)
    assert list(store.iter_blobs()) == []
