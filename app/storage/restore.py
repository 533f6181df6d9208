"""``backprop restore SRC``: a backup (:mod:`app.storage.backup`) into an empty data
directory.

Every file is checked against the manifest (size and SHA-256) before anything is
written. The blobs go first, into the configured store (``file`` or ``s3``, through its
own atomic writes), then the database file, copied beside its final name and renamed:
an interrupted restore leaves no database that references a missing blob. In the copy,
the jobs the backup caught running (their workers belong to the service that was backed
up, not to this one) go back to the queue, their interrupted attempt not counted, and
resume from their last checkpoint; one whose cancel was pending ends ``cancelled``. The
old service's worker rows are dropped. ``backprop serve`` migrates the copy on start
when the backup came from an older schema.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import and_, delete, update

from app.storage.backup import (
    DATABASE_FILE,
    BackupError,
    Manifest,
    is_empty_dir,
    sqlite_path,
)
from app.storage.blobs import BlobStore, hash_file
from app.storage.database import Database
from app.storage.migrations import alembic_config
from app.storage.tables import Job, JobStatus, WorkerHeartbeat, utcnow


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    blobs: int  # blobs written to the store
    requeued: int  # jobs that were running in the backup, queued again


def verify(folder: Path, manifest: Manifest) -> None:
    """BackupError naming the first file of ``folder`` that is missing or differs from
    the manifest."""
    if DATABASE_FILE not in manifest.files:
        raise BackupError(f"the manifest of {folder} lists no {DATABASE_FILE}")
    for relative, expected in manifest.files.items():
        path = folder / relative
        if not path.is_file():
            raise BackupError(f"the backup is incomplete: {path} is missing")
        ref = hash_file(path)
        if (ref.size, ref.sha256) != (expected["size"], expected["sha256"]):
            raise BackupError(
                f"the backup is damaged: {path} has {ref.size} bytes hashing to "
                f"{ref.sha256}, the manifest says {expected['size']} bytes, {expected['sha256']}"
            )


def _check_schema(manifest: Manifest) -> None:
    """BackupError when the backup's schema is one this version does not know (newer)."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    for revision in manifest.schema_revisions:
        try:
            scripts.get_revision(revision)
        except CommandError:
            raise BackupError(
                f"the backup's schema revision {revision!r} is unknown to this Backprop "
                f"({manifest.backprop_version} made it): restore with that version or newer"
            ) from None


def _check_targets(data_dir: Path, database: Path, store: BlobStore) -> None:
    if not is_empty_dir(data_dir):
        raise BackupError(
            f"the data directory {data_dir} is not empty: restore into a new or empty one "
            "(set BACKPROP_DATA_DIR), never over a live service's data"
        )
    if database.exists():
        raise BackupError(f"the database {database} exists already: restore into a new one")
    root = getattr(store, "root", None)  # the file store's folder (may be outside data_dir)
    if isinstance(root, Path) and not is_empty_dir(root):
        raise BackupError(f"the blob store folder {root} is not empty: restore into a new one")


def _settle_jobs(database_file: Path) -> int:
    """Hand the jobs the backup caught running back to the queue (see the module
    docstring); drop the old workers' rows. How many jobs were queued again."""
    db = Database(f"sqlite:///{database_file}")
    running = Job.status == JobStatus.RUNNING
    no_lease = {"lease_token": None, "lease_expires_at": None, "worker_id": None}
    try:
        with db.session() as session:
            session.execute(
                update(Job)
                .where(and_(running, Job.cancel_requested.is_(True)))
                .values(
                    status=JobStatus.CANCELLED,
                    finished_at=utcnow(),
                    checkpoint_sha256=None,
                    **no_lease,
                ),
                execution_options={"synchronize_session": False},
            )
            requeued = session.execute(
                update(Job)
                .where(running)
                .values(status=JobStatus.QUEUED, attempts=Job.attempts - 1, **no_lease)
                .returning(Job.id),
                execution_options={"synchronize_session": False},
            ).all()
            session.execute(delete(WorkerHeartbeat))
    finally:
        db.dispose()
    return len(requeued)


def restore(src: Path, *, data_dir: Path, database_url: str, store: BlobStore) -> RestoreReport:
    """Restore the backup in ``src`` into the empty ``data_dir``: its database to the
    SQLite file of ``database_url``, its blobs into ``store``."""
    target = sqlite_path(database_url).resolve()
    manifest = Manifest.read(src)
    _check_schema(manifest)
    _check_targets(data_dir, target, store)
    verify(src, manifest)
    blobs = 0
    for relative, entry in manifest.files.items():
        if relative == DATABASE_FILE:
            continue
        written = store.put_file(src / relative)
        if written.sha256 != entry["sha256"]:  # verified above: changed since
            raise BackupError(f"{src / relative} changed during the restore")
        blobs += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".restoring")
    shutil.copyfile(src / DATABASE_FILE, partial)
    requeued = _settle_jobs(partial)
    partial.replace(target)
    return RestoreReport(manifest=manifest, blobs=blobs, requeued=requeued)
