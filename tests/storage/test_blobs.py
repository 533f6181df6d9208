"""The blob store's contract, on every backend: content addressing, atomic writes,
deduplication, verified reads, the errors that name a blob."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.storage.blob_file import FileBlobStore
from app.storage.blobs import (
    BlobCorrupt,
    BlobMissing,
    BlobStore,
    BlobStoreUnavailable,
    open_blob_store,
    read_verified,
)


def test_put_file_stores_the_bytes_under_their_hash(blob_store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "x.npy"
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(source, x)
    data = source.read_bytes()

    ref = blob_store.put_file(source)
    source.unlink()  # the caller may delete its file

    assert ref.sha256 == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    assert blob_store.exists(ref.sha256)
    with blob_store.open(ref.sha256) as reader:
        assert reader.read() == data
    loaded = np.load(blob_store.local_path(ref.sha256), mmap_mode="r")
    np.testing.assert_array_equal(loaded, x)
    assert not loaded.flags.writeable
    assert [(sha, size) for sha, size, _ in blob_store.iter_blobs()] == [(ref.sha256, len(data))]


def test_identical_content_is_stored_once(blob_store: BlobStore) -> None:
    first = blob_store.put_bytes(b"same bytes")
    second = blob_store.put_bytes(b"same bytes")
    other = blob_store.put_bytes(b"other bytes")
    assert first == second != other
    assert sorted(sha for sha, _, _ in blob_store.iter_blobs()) == sorted(
        [first.sha256, other.sha256]
    )
    assert read_verified(blob_store, first.sha256) == b"same bytes"


def test_put_bytes_with_the_callers_hash_stores_under_it_without_hashing_again(
    blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"hashed by the worker that built the commit's rows"
    sha = hashlib.sha256(data).hexdigest()

    class NoHashing:
        def sha256(self, *args: object) -> None:
            raise AssertionError("the store hashed the bytes again")

    for module in ("app.storage.blob_file", "app.storage.blob_s3"):
        monkeypatch.setattr(f"{module}.hashlib", NoHashing())
    ref = blob_store.put_bytes(data, sha)
    monkeypatch.undo()

    assert (ref.sha256, ref.size) == (sha, len(data))
    assert read_verified(blob_store, sha) == data
    assert blob_store.put_bytes(data) == ref  # the same blob, hashed by the store


def test_a_missing_blob_is_named(blob_store: BlobStore) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert not blob_store.exists(sha)
    for read in (blob_store.open, blob_store.local_path):
        with pytest.raises(BlobMissing, match=sha):
            read(sha)
    blob_store.delete(sha)  # deleting an absent blob is no error


def test_delete_removes_the_blob(blob_store: BlobStore) -> None:
    ref = blob_store.put_bytes(b"to delete")
    blob_store.delete(ref.sha256)
    assert not blob_store.exists(ref.sha256)
    assert list(blob_store.iter_blobs()) == []


def test_delete_if_stale_spares_blobs_written_or_refreshed_after_the_cutoff(
    blob_store: BlobStore,
) -> None:
    ref = blob_store.put_bytes(b"young")
    past = datetime.now(UTC) - timedelta(hours=1)
    assert not blob_store.delete_if_stale(ref.sha256, past)
    assert blob_store.exists(ref.sha256)
    future = datetime.now(UTC) + timedelta(hours=1)
    assert blob_store.delete_if_stale(ref.sha256, future)
    assert not blob_store.exists(ref.sha256)


# --- the file backend's own guarantees ------------------------------------------------


def test_file_blobs_are_read_only_and_laid_out_by_hash(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    ref = store.put_bytes(b"payload")
    path = tmp_path / "blobs" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    assert store.local_path(ref.sha256) == path
    assert path.stat().st_mode & 0o777 == 0o444
    assert list((tmp_path / "blobs" / ".tmp").iterdir()) == []  # no temp file left


def test_corruption_is_detected_before_first_use(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    ref = store.put_bytes(b"the real bytes")
    path = store.path_of(ref.sha256)
    path.chmod(0o644)
    path.write_bytes(b"the real byteZ")
    with pytest.raises(BlobCorrupt, match=ref.sha256):
        store.local_path(ref.sha256)
    with pytest.raises(BlobCorrupt, match=ref.sha256):
        read_verified(store, ref.sha256)


def test_a_duplicate_put_refreshes_the_blob_timestamp(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    ref = store.put_bytes(b"old blob")
    old = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    os.utime(store.path_of(ref.sha256), (old, old))
    store.put_bytes(b"old blob")
    ((_, _, written),) = store.iter_blobs()
    assert written > datetime.now(UTC) - timedelta(minutes=5)


def test_a_failed_write_leaves_nothing_and_says_the_store_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = FileBlobStore(root)
    store.put_bytes(b"first")
    (root / ".tmp").rmdir()
    (root / ".tmp").write_bytes(b"")  # a file where the temp folder should be: writes fail
    with pytest.raises(BlobStoreUnavailable, match="cannot write"):
        store.put_bytes(b"second")
    assert len(list(store.iter_blobs())) == 1


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    store.put_bytes(b"x")
    abandoned = tmp_path / "blobs" / ".tmp" / "dead.part"
    abandoned.write_bytes(b"half a blob")
    assert store.remove_stale_temp(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert store.remove_stale_temp(datetime.now(UTC) + timedelta(hours=1)) == 1
    assert not abandoned.exists()


def test_the_default_store_is_a_folder_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    assert settings.blob_url == (tmp_path / "d" / "blobs").as_uri()
    assert settings.database_url == f"sqlite:///{tmp_path / 'd' / 'backprop.db'}"
    store = open_blob_store(settings)
    assert isinstance(store, FileBlobStore) and store.root == tmp_path / "d" / "blobs"
    with pytest.raises(ValueError, match="BACKPROP_BLOB_URL"):
        open_blob_store(Settings(blob_url="ftp://somewhere/blobs"))


def test_a_file_on_the_stores_file_system_is_linked_not_copied(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    source = tmp_path / "x.npy"
    np.save(source, np.arange(1000, dtype=np.float32))
    ref = store.put_file(source)
    assert store.path_of(ref.sha256).stat().st_ino == source.stat().st_ino  # one inode
    source.unlink()
    assert store.local_path(ref.sha256).stat().st_nlink == 1
    np.testing.assert_array_equal(
        np.load(store.local_path(ref.sha256)), np.arange(1000, dtype=np.float32)
    )
    assert list((tmp_path / "blobs" / ".tmp").iterdir()) == []
    again = tmp_path / "again.npy"
    np.save(again, np.arange(1000, dtype=np.float32))
    assert store.put_file(again) == ref  # a duplicate: only refreshed
    assert again.stat().st_nlink == 1 and len(list(store.iter_blobs())) == 1
