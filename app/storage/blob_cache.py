"""A local, content-addressed cache of remote blobs, bounded in bytes (LRU).

Workers memory-map dataset arrays, which needs a local file: the ``s3`` store downloads a
blob here once, checks it against its hash, and every later job on this machine maps the
same read-only file. Layout: ``<root>/ab/cd/<sha256>``, like the file store.

Safe when several processes fill it at once: a download goes to a temp file and is
renamed into place (never a half-written blob visible), under a per-blob lock file so that
two workers wanting the same blob download it once. Least recently used blobs (by mtime,
refreshed on every hit) are evicted when the total exceeds ``max_bytes``; a blob some
process still has mapped stays readable for it (POSIX keeps unlinked files alive).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.storage.blobs import BlobCorrupt, blob_key

TEMP_DIR = ".tmp"
LOCK_DIR = ".locks"
EVICT_LOCK = ".evict.lock"

Download = Callable[[], Iterable[bytes]]  # the blob's bytes, in chunks


@contextmanager
def _flock(path: Path, mode: int) -> Iterator[bool]:
    """Hold ``flock(mode)`` on ``path`` (created if missing); yields False when a
    non-blocking request found it taken."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, mode)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BlobCache:
    """Verified local copies of blobs, at most ``max_bytes`` of them (LRU)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    def path_of(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def _hit(self, path: Path) -> bool:
        try:
            os.utime(path)  # most recently used
        except FileNotFoundError:
            return False
        self.hits += 1
        return True

    def get(self, sha256: str, download: Download) -> Path:
        """The cached file of ``sha256``, downloaded and verified first if needed.
        BlobCorrupt when the downloaded bytes do not hash to ``sha256`` (nothing is kept)."""
        path = self.path_of(sha256)
        if self._hit(path):
            return path
        for folder in (LOCK_DIR, TEMP_DIR):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        with _flock(self.root / LOCK_DIR / f"{sha256}.lock", fcntl.LOCK_EX):
            if self._hit(path):  # another process filled it while we waited
                return path
            self._fill(sha256, path, download)
        self.misses += 1
        self.evict(keep=sha256)
        return path

    def _fill(self, sha256: str, path: Path, download: Download) -> None:
        temp = self.root / TEMP_DIR / f"{secrets.token_hex(8)}.part"
        try:
            digest = hashlib.sha256()
            with temp.open("wb") as out:
                for chunk in download():
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise BlobCorrupt(sha256, digest.hexdigest())
            temp.chmod(0o444)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)

    def _entries(self) -> list[tuple[float, int, Path]]:
        entries = []
        for path in self.root.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        return entries

    def size(self) -> int:
        """Bytes held now."""
        return sum(size for _, size, _ in self._entries())

    def evict(self, keep: str | None = None) -> int:
        """Remove least recently used blobs until at most ``max_bytes`` remain (never
        ``keep``, the blob just asked for); one process evicts at a time. Bytes freed."""
        self.root.mkdir(parents=True, exist_ok=True)
        freed = 0
        with _flock(self.root / EVICT_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB) as ours:
            if not ours:
                return 0  # another process is evicting right now
            entries = sorted(self._entries())
            total = sum(size for _, size, _ in entries)
            for _, size, path in entries:
                if total <= self.max_bytes:
                    break
                if path.name == keep:
                    continue
                path.unlink(missing_ok=True)
                (self.root / LOCK_DIR / f"{path.name}.lock").unlink(missing_ok=True)
                total -= size
                freed += size
        return freed
