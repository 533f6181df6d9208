"""The upload use case: parse a file already on disk, validate, store, answer the row.

The request body was spooled to disk by the multipart parser; the parser here reads it
in blocks and writes x as float32 ``.npy`` into a private work folder, which is removed
whatever happens (a refused file, a dropped connection, a crash in between leaves only
that folder, and the next start of the service removes stale ones).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from app.config import Settings
from app.services.arrays import label_array
from app.services.datasets import store_parsed
from app.services.uploads.limits import UploadLimits
from app.services.uploads.parsed import FILE_LOC, ParsedUpload
from app.services.uploads.reader import parse_file, parse_pair
from app.storage.blobs import BlobStore
from app.storage.database import Database
from app.storage.tables import Dataset

WORK_PREFIX = "upload-"
STALE_WORK_SECONDS = 24 * 3600.0


def upload_limits(settings: Settings) -> UploadLimits:
    return UploadLimits(max_cells=settings.max_dataset_cells)


def work_root(settings: Settings) -> Path:
    """Where uploads are parsed: the data folder's ``tmp`` (same file system as the blobs,
    so storing a parsed file is a rename, not a copy)."""
    root = Path(settings.data_dir) / "tmp" / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _owner_prefix() -> str:
    return f"{WORK_PREFIX}{socket.gethostname()[:60]}-{os.getpid()}-"


@contextmanager
def work_dir(settings: Settings) -> Iterator[Path]:
    """A private folder for one upload, named after this host and process, removed at
    the end whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=_owner_prefix(), dir=work_root(settings)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_work(settings: Settings) -> int:
    """Remove the work folders of processes that died mid-upload (a SIGKILL, a crash):
    on this host, those whose process is gone; any older than a day. Returns how many."""
    host = socket.gethostname()[:60]
    cutoff = time.time() - STALE_WORK_SECONDS
    removed = 0
    for path in work_root(settings).glob(f"{WORK_PREFIX}*"):
        match = re.fullmatch(rf"{WORK_PREFIX}(.+)-(\d+)-[^-]+", path.name)
        try:
            stale = path.stat().st_mtime < cutoff or (
                match is not None and match[1] == host and not pid_alive(int(match[2]))
            )
        except FileNotFoundError:
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def parse_upload(
    settings: Settings,
    work: Path,
    *,
    file: BinaryIO | None,
    x: BinaryIO | None,
    y: BinaryIO | None,
    filename: str,
    target: str | None,
) -> ParsedUpload:
    """Parse the one file (CSV or npz), or the ``x``/``y`` .npy pair, into ``work``."""
    limits = upload_limits(settings)
    if file is not None:
        return parse_file(file, filename=filename, target=target, limits=limits, work_dir=work)
    assert x is not None and y is not None
    return parse_pair(x, y, limits=limits, work_dir=work)


def upload_dataset(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    *,
    owner_id: int,
    file: BinaryIO | None,
    x: BinaryIO | None = None,
    y: BinaryIO | None = None,
    filename: str,
    name: str | None,
    target: str | None,
) -> Dataset:
    """A dataset from one uploaded file (CSV or npz) or an x/y ``.npy`` pair."""
    with work_dir(settings) as work:
        parsed = parse_upload(settings, work, file=file, x=x, y=y, filename=filename, target=target)
        labels = label_array(parsed.y, (*FILE_LOC, "y"))
        return store_parsed(
            db,
            blobs,
            settings,
            owner_id=owner_id,
            name=name or filename[:200],
            parsed=parsed,
            y=labels,
        )
