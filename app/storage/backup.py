"""``backprop backup DEST``: a consistent online snapshot of the embedded SQLite database
and every blob that snapshot references, plus a manifest.

The order is what makes it consistent while workers train and clients upload: (1) the
database is copied with SQLite's online backup API in ONE step, which reads it inside a
single read transaction (in WAL mode writers go on meanwhile, and a step-wise copy would
restart whenever another connection writes); (2) the snapshot is read for the hashes its
rows reference (:func:`app.storage.gc.referenced_blobs`); (3) each of those blobs is
copied from the store (file or S3, through the store's own reads) and checked against
its hash. Blobs are immutable and written before the rows that reference them commit,
so every blob the snapshot references existed at (1); only a deletion in between
(``backprop gc`` removing a blob the live database had already dropped) can take one
away, and then the backup fails naming it: run it again.

The folder it writes::

    DEST/backprop.db              the snapshot (journal mode DELETE: one self-contained file)
    DEST/blobs/ab/cd/<sha256>     every referenced blob, read-only
    DEST/manifest.json            written last: format, versions, time, row counts, and
                                  the size and SHA-256 of every file above

PostgreSQL is not handled here: its own tools (``pg_dump``) take a consistent snapshot
of it, and the README says how to pair one with the object store's.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.storage import tables
from app.storage.blobs import (
    CHUNK_BYTES,
    BlobError,
    BlobMissing,
    BlobStore,
    blob_key,
    hash_file,
)
from app.storage.database import SQLITE_BUSY_TIMEOUT_MS, Database
from app.storage.gc import referenced_blobs
from app.storage.migrations import current_revisions

FORMAT = "backprop-backup"
FORMAT_VERSION = 1
DATABASE_FILE = "backprop.db"
BLOBS_DIR = "blobs"
MANIFEST_FILE = "manifest.json"
PG_REFUSAL = (
    "`backprop backup` and `backprop restore` handle the embedded SQLite database; this "
    "one is not SQLite. Back a PostgreSQL database up with pg_dump (restore it with "
    "pg_restore) and the blob store with its own tools: see the README, 'Operations'"
)
# Rows counted in the manifest (a restored service must list the same).
COUNTED: dict[str, Any] = {
    "owners": tables.Owner,
    "api_keys": tables.ApiKey,
    "datasets": tables.Dataset,
    "networks": tables.Network,
    "jobs": tables.Job,
    "models": tables.Model,
    "evaluations": tables.Evaluation,
}


class BackupError(Exception):
    """A backup or restore that cannot be made: the message says why and what to do."""


@dataclass
class Manifest:
    """What ``manifest.json`` holds; ``files`` maps a path relative to the backup folder
    to ``{"size": bytes, "sha256": hex}``."""

    created_at: str
    backprop_version: str
    schema_revisions: list[str]
    counts: dict[str, int]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **self.__dict__}

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of the backup in ``folder``; BackupError if there is none usable."""
        path = folder / MANIFEST_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BackupError(
                f"{folder} holds no {MANIFEST_FILE}: not a backup, or one that did not finish"
            ) from None
        except (OSError, ValueError) as exc:
            raise BackupError(f"cannot read {path}: {exc}") from None
        if document.get("format") != FORMAT or document.get("format_version") != FORMAT_VERSION:
            raise BackupError(
                f"{path} is not a {FORMAT} manifest of version {FORMAT_VERSION} "
                f"(format {document.get('format')!r}, version {document.get('format_version')!r})"
            )
        keys = ("created_at", "backprop_version", "schema_revisions", "counts", "files")
        return cls(**{key: document[key] for key in keys})


def sqlite_path(database_url: str) -> Path:
    """The file of a ``sqlite:///path`` URL; BackupError for any other database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(PG_REFUSAL)
    if not url.database or url.database == ":memory:":
        raise BackupError(f"the SQLite database {database_url!r} is not a file")
    return Path(url.database)


def backprop_version() -> str:
    try:
        return metadata.version("backprop")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


def is_empty_dir(path: Path) -> bool:
    """True for a folder with nothing in it, or a path that does not exist yet."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _snapshot(source: Path, target: Path) -> None:
    """Copy the database at ``source`` to ``target`` in one read transaction."""
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    src = sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # pages=-1: all of it in one step, one consistent snapshot
        dst.execute("PRAGMA journal_mode=DELETE")  # no -wal file beside the copy
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if check != "ok":
        raise BackupError(f"the snapshot of {source} fails SQLite's integrity check: {check}")


def _count_rows(snapshot: Database) -> dict[str, int]:
    with snapshot.read_session() as session:
        return {
            name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in COUNTED.items()
        }


def _copy_blob(store: BlobStore, sha256: str, target: Path) -> int:
    """Stream blob ``sha256`` from ``store`` into ``target`` (read-only), checking its
    hash; its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest = hashlib.sha256()
    size = 0
    try:
        with store.open(sha256) as reader, partial.open("wb") as out:
            while chunk := reader.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BlobError as exc:
        partial.unlink(missing_ok=True)
        why = (
            " (referenced by the snapshot; deleted since, or lost: if `backprop gc` ran "
            "meanwhile, run the backup again)"
            if isinstance(exc, BlobMissing)
            else ""
        )
        raise BackupError(f"{exc.message}{why}") from None
    if digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise BackupError(
            f"blob {sha256} is corrupt in the store: its bytes hash to {digest.hexdigest()}"
        )
    partial.chmod(0o444)
    partial.replace(target)
    return size


def backup(database_url: str, store: BlobStore, dest: Path) -> Manifest:
    """Write a backup of the SQLite database at ``database_url`` and of the blobs in
    ``store`` it references into ``dest`` (absent or empty). Returns its manifest."""
    source = sqlite_path(database_url)
    dest = dest.resolve()
    if not is_empty_dir(dest):
        raise BackupError(f"{dest} is not empty: back up into a new or empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    database_file = dest / DATABASE_FILE
    _snapshot(source, database_file)  # (1)
    snapshot = Database(f"sqlite:///{database_file}")
    try:
        shas = sorted(referenced_blobs(snapshot))  # (2)
        counts = _count_rows(snapshot)
        revisions = sorted(current_revisions(snapshot))
    finally:
        snapshot.dispose()
    # Opening it set WAL again (app.storage.database): back to one self-contained file.
    with sqlite3.connect(database_file) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    ref = hash_file(database_file)
    files = {DATABASE_FILE: {"size": ref.size, "sha256": ref.sha256}}
    blob_bytes = 0
    for sha in shas:  # (3)
        relative = f"{BLOBS_DIR}/{blob_key(sha)}"
        size = _copy_blob(store, sha, dest / relative)
        files[relative] = {"size": size, "sha256": sha}
        blob_bytes += size
    manifest = Manifest(
        created_at=created_at,
        backprop_version=backprop_version(),
        schema_revisions=revisions,
        counts={**counts, "blobs": len(shas), "blob_bytes": blob_bytes},
        files=files,
    )
    partial = dest / (MANIFEST_FILE + ".part")
    partial.write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    partial.replace(dest / MANIFEST_FILE)
    return manifest
