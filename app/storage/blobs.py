"""The blob store: immutable, content-addressed (SHA-256) files for every array payload.

Dataset arrays (``.npy``), model weights and checkpoints (npz) live here; database rows
keep only their hash. Two backends share the :class:`BlobStore` interface: ``file``
(:mod:`app.storage.blob_file`, a folder) and ``s3`` (:mod:`app.storage.blob_s3`, any
S3-compatible object store, with a local cache for memory-mapping). Writes are atomic
(never a half-written blob visible) and deduplicated; reads through
:meth:`BlobStore.local_path` are checked against the hash before first use.

Errors: :class:`BlobMissing` and :class:`BlobCorrupt` name the blob (the data is lost
or damaged: a job fails, a request gets 409); :class:`BlobStoreUnavailable` means the
store cannot be reached now (a request gets 503 + Retry-After, a job goes back to the
queue).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlparse

from app.config import Settings

CHUNK_BYTES = 1024 * 1024
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BlobRef:
    sha256: str  # hex of the blob's bytes
    size: int  # bytes


class BlobError(Exception):
    """Base of the blob store's errors; ``sha256`` names the blob (when one is concerned)."""

    def __init__(self, message: str, sha256: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sha256 = sha256


class BlobMissing(BlobError):
    """The store has no blob with this hash (deleted or lost)."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"blob {sha256} is missing from the blob store", sha256)


class BlobCorrupt(BlobError):
    """The stored bytes do not hash to the blob's name."""

    def __init__(self, sha256: str, actual: str) -> None:
        super().__init__(f"blob {sha256} is corrupt: its bytes hash to {actual}", sha256)


class BlobStoreUnavailable(BlobError):
    """The store cannot be reached or written now (network, disk full...): retry later."""


class BlobStore(Protocol):
    """What every backend offers. Hashes are lowercase hex SHA-256."""

    url: str
    # Whether a write ends on this machine's disk (a file store): a small one is quick,
    # so a worker may wait for it inside a transaction (app.jobs.attempt's
    # OVERLAPPED_WRITE_BYTES); not over a network.
    local: bool

    def put_file(self, path: Path) -> BlobRef:
        """Store the file at ``path`` under its hash (streamed, atomic, deduplicated; a
        blob already present gets its timestamp refreshed, see :mod:`app.storage.gc`).
        The caller may delete ``path`` afterwards."""
        ...

    def put_bytes(self, data: bytes, sha256: str | None = None) -> BlobRef:
        """Store ``data`` as :meth:`put_file` stores a file's bytes. ``sha256``: the hash
        of exactly ``data``, when the caller has computed it already (a worker building a
        commit's rows while the blob is written): trusted, not computed again."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """A streaming reader of the blob (not verified); BlobMissing if absent."""
        ...

    def local_path(self, sha256: str) -> Path:
        """A local, hash-verified, read-only file holding the blob."""
        ...

    def local_path_checked_later(self, sha256: str) -> tuple[Path, Callable[[], None]]:
        """:meth:`local_path`, where the backend can, without waiting for the hash check:
        the local file (BlobMissing if absent) and the check, to call before trusting its
        bytes (BlobCorrupt / BlobMissing; nothing to do once checked)."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None:
        """Remove the blob (no error if absent)."""
        ...

    def delete_if_stale(self, sha256: str, cutoff: datetime) -> bool:
        """Remove the blob only if it was last written or refreshed before ``cutoff``
        (garbage collection); True when it was removed."""
        ...

    def iter_blobs(self) -> Iterator[tuple[str, int, datetime]]:
        """Every stored blob: (sha256, size in bytes, last written or refreshed, UTC)."""
        ...

    def remove_stale_temp(self, cutoff: datetime) -> int:
        """Remove partial writes abandoned before ``cutoff``; how many."""
        ...


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits (it becomes a file name or key)."""
    if not SHA256_HEX.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
    return sha256


def blob_key(sha256: str) -> str:
    """The blob's relative location, ``ab/cd/abcd...``: two levels keep folders small."""
    check_sha256(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def hash_file(path: Path) -> BlobRef:
    """SHA-256 and size of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return BlobRef(digest.hexdigest(), size)


def verify_file(path: Path, sha256: str) -> None:
    """BlobCorrupt unless the file at ``path`` hashes to ``sha256``."""
    actual = hash_file(path).sha256
    if actual != sha256:
        raise BlobCorrupt(sha256, actual)


def read_verified(store: BlobStore, sha256: str) -> bytes:
    """The whole blob in memory, checked against its hash (for small blobs: weights,
    checkpoints). BlobMissing / BlobCorrupt name it."""
    with store.open(sha256) as reader:
        data = reader.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BlobCorrupt(sha256, actual)
    return data


def open_blob_store(settings: Settings) -> BlobStore:
    """The store ``settings.blob_url`` names: ``file:///path`` or ``s3://bucket/prefix``."""
    url = urlparse(settings.blob_url)
    if url.scheme == "file":
        from app.storage.blob_file import FileBlobStore

        return FileBlobStore(Path(unquote(url.path)))
    if url.scheme == "s3":
        from app.storage.blob_s3 import S3BlobStore  # boto3: the `s3` extra

        assert settings.blob_cache_dir is not None  # filled in by Settings
        return S3BlobStore.from_url(
            settings.blob_url,
            endpoint_url=settings.s3_endpoint_url,
            cache_dir=settings.blob_cache_dir,
            cache_bytes=settings.blob_cache_bytes,
        )
    raise ValueError(
        f"BACKPROP_BLOB_URL must be file:///path or s3://bucket/prefix, got {settings.blob_url!r}"
    )
