"""Garbage collection of blobs: remove what no row references, once it is old enough.

Blobs lose their last reference when a dataset or model is deleted, a checkpoint is
superseded or dropped, or an upload or commit is abandoned after its blob was written.
Writers store a blob *before* the row that references it commits, so an unreferenced
blob may be one that a commit is about to reference: GC spares every blob written (or,
for a duplicate, refreshed: see :meth:`BlobStore.put_file`) within ``grace`` of now.

The order makes a concurrent commit safe: (1) list the blobs older than the cutoff,
(2) then read the references, (3) delete each listed, unreferenced blob only if it is
*still* older than the cutoff (:meth:`BlobStore.delete_if_stale`). A row committed before
(2) is seen; one committing after (2) stored or refreshed its blob after (1) — unless its
write took longer than ``grace`` before the commit, which the grace period is sized to
exclude — so (3) finds it young and keeps it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, select, union

from app.storage.blobs import BlobStore
from app.storage.database import Database
from app.storage.tables import ACTIVE_STATUSES, Dataset, Job, Model, utcnow

log = logging.getLogger("backprop.gc")


@dataclass
class GcReport:
    """What one collection did; ``removed`` lists (sha256, bytes) of each deleted blob."""

    removed: list[tuple[str, int]] = field(default_factory=list)
    referenced: int = 0  # blobs rows reference
    young: int = 0  # unreferenced or not, inside the grace period
    temp_removed: int = 0  # abandoned partial writes

    @property
    def removed_bytes(self) -> int:
        return sum(size for _, size in self.removed)


def referenced_blobs(db: Database) -> set[str]:
    """Every hash a row references: dataset arrays, model weights, job checkpoints,
    prediction outputs, and the output pieces of the active prediction runs."""
    query: CompoundSelect[Any] = union(
        select(Dataset.x_sha256),
        select(Dataset.y_sha256),
        select(Model.weights_sha256),
        select(Job.checkpoint_sha256).where(Job.checkpoint_sha256.is_not(None)),
        select(Job.result_sha256).where(Job.result_sha256.is_not(None)),
    )
    pieces = select(Job.output_parts).where(
        Job.output_parts.is_not(None), Job.status.in_(ACTIVE_STATUSES)
    )
    with db.read_session() as session:
        found = {str(sha) for sha in session.scalars(query) if sha}
        for parts in session.scalars(pieces):
            found.update(str(part["sha256"]) for part in parts or [])
    return found


def collect_garbage(
    db: Database, store: BlobStore, *, grace_seconds: float, now: datetime | None = None
) -> GcReport:
    """Delete the blobs no row references that are older than ``grace_seconds``."""
    cutoff = (now or utcnow()) - timedelta(seconds=grace_seconds)
    report = GcReport()
    old: list[tuple[str, int]] = []
    for sha, size, written in store.iter_blobs():  # (1)
        if written < cutoff:
            old.append((sha, size))
        else:
            report.young += 1
    referenced = referenced_blobs(db) if old else set()  # (2)
    for sha, size in old:
        if sha in referenced:
            report.referenced += 1
        elif store.delete_if_stale(sha, cutoff):  # (3)
            log.info("removed blob %s (%d bytes)", sha, size)
            report.removed.append((sha, size))
        else:
            report.young += 1  # refreshed by a writer since (1)
    report.temp_removed = store.remove_stale_temp(cutoff)
    return report
