"""Damaging and unreachable blob stores, for the tests of what happens then."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.storage.blob_file import FileBlobStore
from app.storage.blob_s3 import S3BlobStore
from app.storage.blobs import BlobStore, open_blob_store
from tests.s3server import free_port


def corrupt(store: BlobStore, sha256: str) -> None:
    """Overwrite the stored bytes of ``sha256`` with other bytes (any backend)."""
    if isinstance(store, FileBlobStore):
        path = store.path_of(sha256)
        path.chmod(0o644)
        path.write_bytes(b"bit rot" + path.read_bytes()[7:])
    elif isinstance(store, S3BlobStore):
        store.client.put_object(Bucket=store.bucket, Key=store.key_of(sha256), Body=b"bit rot")
    else:
        raise TypeError(f"cannot corrupt blobs of {store!r}")


def unreachable_store(cache_dir: Path) -> BlobStore:
    """An s3 store whose endpoint has no server: every request fails to connect."""
    settings = Settings(
        blob_url="s3://bucket/prefix",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        blob_cache_dir=cache_dir,
    )
    return open_blob_store(settings)
