"""The ``file`` blob store: a folder, each blob at ``<root>/ab/cd/<sha256>``.

A write goes to ``<root>/.tmp/`` (same file system), is flushed to disk, made read-only
and renamed into place, and the folder entry is flushed too: a blob is either whole or
absent, even across a power cut. A blob that is already there is not rewritten; its
mtime is refreshed instead, so that garbage collection (which spares blobs younger than
its grace period) cannot remove it under a commit that is about to reference it. That
refresh and GC's delete take a lock file (shared / exclusive), so they never interleave.

:meth:`FileBlobStore.local_path` is the blob itself, hashed once per process before its
first use (a worker then memory-maps it for every job without reading it again).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from app.storage.blobs import (
    CHUNK_BYTES,
    BlobMissing,
    BlobRef,
    BlobStoreUnavailable,
    blob_key,
    check_sha256,
    hash_file,
    verify_file,
)

TEMP_DIR = ".tmp"
LOCK_FILE = ".lock"

# Blobs (by absolute path) this process has hashed and found intact.
_verified: set[str] = set()
_verified_lock = threading.Lock()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


class FileBlobStore:
    """Blobs as read-only files under ``root`` (created on first write)."""

    local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.resolve().as_uri()

    @staticmethod
    def _folder(path: Path) -> Path:
        """``path``, a folder, created if it is not there: looked at first, as a write
        needs three that are there already but for its first (a stat costs a few µs, a
        mkdir of an existing folder ~40 µs)."""
        if not os.path.isdir(path):
            path.mkdir(parents=True, exist_ok=True)
        return path

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.root)!r})"

    def path_of(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    # --- writing
    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        with (self._folder(self.root) / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _refresh(self, final: Path) -> bool:
        """Refresh an existing blob's mtime (GC grace); False when it is not there."""
        with self._locked(fcntl.LOCK_SH):
            try:
                os.utime(final)
            except FileNotFoundError:
                return False
        return True

    def _new_temp(self) -> Path:
        return self._folder(self.root / TEMP_DIR) / f"{secrets.token_hex(8)}.part"

    def _commit(self, temp: Path, ref: BlobRef) -> BlobRef:
        """Move a complete, flushed ``temp`` into place unless the blob exists already.

        The shared lock (``_refresh``) is taken only when the blob is there: a blob that is
        not has nothing for a concurrent GC to delete, and the file moved into place was
        just written (an upload's: just parsed), so GC, which deletes only blobs unused
        past its grace, leaves it be. That saves a new blob's write the lock file's open,
        two flocks and a failed utime."""
        final = self.path_of(ref.sha256)
        if os.path.exists(final) and self._refresh(final):
            temp.unlink()
            return ref
        self._folder(final.parent)
        temp.chmod(0o444)
        os.replace(temp, final)  # atomic: readers see no blob or the whole blob
        _fsync_dir(final.parent)
        return ref

    def _write(self, chunks: Iterator[bytes], sha256: str | None = None) -> BlobRef:
        """Store the bytes of ``chunks``, hashed as they are written unless ``sha256``
        (their hash, computed by the caller) is given."""
        digest = hashlib.sha256() if sha256 is None else None
        size = 0
        temp: Path | None = None
        try:
            temp = self._new_temp()
            with temp.open("wb") as out:
                for chunk in chunks:
                    if digest is not None:
                        digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            known = digest.hexdigest() if digest is not None else cast(str, sha256)
            committed = self._commit(temp, BlobRef(known, size))
            temp = None  # moved into place or removed: nothing to clean up
            return committed
        except OSError as exc:
            message = f"cannot write to the blob store {self.root}: {exc}"
            raise BlobStoreUnavailable(message) from exc
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    def put_file(self, path: Path) -> BlobRef:
        """Store ``path``'s bytes. On the store's file system (uploads are parsed under the
        data directory) the file is hard-linked, hashed and renamed into place: no copy of
        a large array is written. Elsewhere it is copied. Either way the caller deletes
        ``path`` afterwards and must not write to it again."""
        linked = self._link(path)
        if linked is None:
            with path.open("rb") as source:
                return self._write(iter(lambda: source.read(CHUNK_BYTES), b""))
        try:
            with linked.open("rb") as handle:
                os.fsync(handle.fileno())
            return self._commit(linked, hash_file(linked))
        except OSError as exc:
            message = f"cannot write to the blob store {self.root}: {exc}"
            raise BlobStoreUnavailable(message) from exc
        finally:
            linked.unlink(missing_ok=True)

    def _link(self, path: Path) -> Path | None:
        """A hard link to ``path`` among the store's temp files, or None (another file
        system, or links not allowed)."""
        try:
            temp = self._new_temp()
            os.link(path, temp)
        except OSError:
            return None
        return temp

    def put_bytes(self, data: bytes, sha256: str | None = None) -> BlobRef:
        return self._write(iter([data]), sha256)

    # --- reading
    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path_of(sha256).open("rb")
        except FileNotFoundError:
            raise BlobMissing(sha256) from None

    def local_path(self, sha256: str) -> Path:
        path = self.path_of(sha256)
        key = str(path.resolve())
        with _verified_lock:
            if key in _verified:
                return path
        if not path.is_file():
            raise BlobMissing(sha256)
        verify_file(path, sha256)
        with _verified_lock:
            _verified.add(key)
        return path

    def local_path_checked_later(self, sha256: str) -> tuple[Path, Callable[[], None]]:
        path = self.path_of(sha256)
        if not path.is_file():
            raise BlobMissing(sha256)

        def check() -> None:
            self.local_path(sha256)  # hashes the file once per process

        return path, check

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def delete(self, sha256: str) -> None:
        self.path_of(sha256).unlink(missing_ok=True)
        with _verified_lock:
            _verified.discard(str(self.path_of(sha256).resolve()))

    def delete_if_stale(self, sha256: str, cutoff: datetime) -> bool:
        """Delete the blob if it was last written/refreshed before ``cutoff``; under the
        lock, so a concurrent :meth:`put_file` of the same bytes either refreshed it first
        (kept) or finds it gone (and writes it again)."""
        path = self.path_of(sha256)
        with self._locked(fcntl.LOCK_EX):
            try:
                if _mtime(path) >= cutoff:
                    return False
            except FileNotFoundError:
                return False
            self.delete(sha256)
        return True

    def iter_blobs(self) -> Iterator[tuple[str, int, datetime]]:
        if not self.root.is_dir():
            return
        for first in sorted(self.root.glob("[0-9a-f][0-9a-f]")):
            for path in sorted(first.glob("[0-9a-f][0-9a-f]/*")):
                try:
                    check_sha256(path.name)
                    stat = path.stat()
                except (ValueError, FileNotFoundError):
                    continue
                yield path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)

    def remove_stale_temp(self, cutoff: datetime) -> int:
        """Remove temp files of writes abandoned before ``cutoff`` (a killed process)."""
        removed = 0
        for temp in (self.root / TEMP_DIR).glob("*.part"):
            try:
                if _mtime(temp) < cutoff:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
