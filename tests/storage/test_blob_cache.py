"""The local cache of remote blobs: verified fills, LRU bound, one download when many want
the same blob; the s3 store's errors (missing, corrupt, unreachable)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.storage.blob_cache import BlobCache
from app.storage.blob_s3 import S3BlobStore
from app.storage.blobs import BlobCorrupt, BlobMissing, BlobStoreUnavailable, open_blob_store
from tests.s3server import S3Server, free_port


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_fill_is_verified_and_a_second_get_is_a_hit(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache", max_bytes=10_000)
    data = b"remote bytes"
    path = cache.get(_sha(data), lambda: iter([data]))
    assert path.read_bytes() == data and path.stat().st_mode & 0o777 == 0o444
    assert cache.get(_sha(data), lambda: pytest.fail("downloaded twice")) == path
    assert (cache.hits, cache.misses) == (1, 1)

    wrong = _sha(b"what the name promises")
    with pytest.raises(BlobCorrupt, match=wrong):
        cache.get(wrong, lambda: iter([b"something else"]))
    assert not cache.path_of(wrong).exists()
    assert list((tmp_path / "cache" / ".tmp").iterdir()) == []


def test_least_recently_used_blobs_are_evicted_past_the_bound(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache", max_bytes=1000)
    blobs = [bytes([i]) * 400 for i in range(3)]
    first = cache.get(_sha(blobs[0]), lambda: iter([blobs[0]]))
    cache.get(_sha(blobs[1]), lambda: iter([blobs[1]]))
    os.utime(first, (1, 1))  # first: least recently used
    cache.get(_sha(blobs[1]), lambda: iter([]))  # a hit refreshes blob 1
    cache.get(_sha(blobs[2]), lambda: iter([blobs[2]]))
    assert not first.exists()
    assert cache.size() == 800 <= cache.max_bytes


def test_many_fillers_of_one_blob_download_it_once(tmp_path: Path) -> None:
    data = b"x" * 100_000
    downloads = 0
    gate = threading.Barrier(6)
    paths: list[Path] = []

    def slow_download() -> Iterator[bytes]:
        nonlocal downloads
        downloads += 1
        for start in range(0, len(data), 10_000):
            yield data[start : start + 10_000]

    def fill() -> None:
        cache = BlobCache(tmp_path / "cache", max_bytes=10**9)  # one per "process"
        gate.wait()
        paths.append(cache.get(_sha(data), slow_download))

    threads = [threading.Thread(target=fill) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert downloads == 1
    assert len(set(paths)) == 1 and paths[0].read_bytes() == data


def test_s3_blobs_are_verified_when_cached(s3: S3Server, tmp_path: Path) -> None:
    settings = Settings(blob_url=s3.new_url(), blob_cache_dir=tmp_path / "cache")
    store = open_blob_store(settings)
    assert isinstance(store, S3BlobStore)
    ref = store.put_bytes(b"the true content")
    assert store.local_path(ref.sha256).read_bytes() == b"the true content"

    bad = store.put_bytes(b"will be damaged")
    store.client.put_object(Bucket=store.bucket, Key=store.key_of(bad.sha256), Body=b"damaged")
    with pytest.raises(BlobCorrupt, match=bad.sha256):
        store.local_path(bad.sha256)
    with pytest.raises(BlobMissing, match="0" * 64):
        store.local_path("0" * 64)


def test_an_unreachable_s3_store_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nothing")
    settings = Settings(
        blob_url="s3://bucket/prefix",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        blob_cache_dir=tmp_path / "cache",
    )
    store = open_blob_store(settings)
    with pytest.raises(BlobStoreUnavailable, match="unreachable"):
        store.put_bytes(b"anything")
    with pytest.raises(BlobStoreUnavailable):
        store.local_path("0" * 64)


def test_a_missing_bucket_is_created_on_the_first_write(s3: S3Server, tmp_path: Path) -> None:
    bucket = f"fresh-{os.getpid()}-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}"
    store = open_blob_store(Settings(blob_url=f"s3://{bucket}/p", blob_cache_dir=tmp_path / "c"))
    ref = store.put_bytes(b"first blob")
    assert store.exists(ref.sha256) and [sha for sha, _, _ in store.iter_blobs()] == [ref.sha256]
