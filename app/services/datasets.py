"""Dataset verbs: create (JSON, file, generated), read, list, sample rows, delete.

A dataset's arrays are two ``.npy`` blobs in the blob store (x float32 (n, d) C order, y
its labels); the row holds their hashes and the metadata. :func:`store_dataset_files`
records a dataset from two ``.npy`` files already on disk (streamed uploads end there),
:func:`store_dataset` from arrays in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.engine.datasets import generate
from app.engine.labels import label_kind as kind_of_labels
from app.services import jsoncodec
from app.services.arrays import (
    ContentHash,
    feature_matrix,
    feature_stats,
    label_array,
    npy_row_blocks,
)
from app.services.errors import Invalid, Loc, invalid_at
from app.services.ownership import get_owned, page, refuse_while_in_use
from app.services.quota import check_owner_bytes
from app.services.uploads.download import npy_file, npz_stream
from app.services.uploads.limits import UploadLimits
from app.services.uploads.parsed import FILE_LOC, ParsedUpload
from app.storage.blob_arrays import load_array
from app.storage.blobs import BlobStore
from app.storage.database import Database
from app.storage.tables import Dataset, Job

PATH_LOC = ("path", "dataset_id")


def _check_cells(rows: int, width: int, settings: Settings, loc: Loc) -> None:
    UploadLimits(max_cells=settings.max_dataset_cells).check_cells(rows, width, loc)


def store_dataset_files(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    *,
    owner_id: int,
    name: str,
    x_path: Path,
    y_path: Path,
    feature_names: list[str] | None = None,
    loc: Loc = ("body",),
) -> Dataset:
    """Record a dataset from ``.npy`` files: ``x_path`` float32 (n, d) C order, ``y_path``
    validated labels (n,) | (n, k). Stats and hashes are computed in blocks from a memory
    map; both files go to the blob store (the caller deletes them afterwards)."""
    x = np.load(x_path, mmap_mode="r", allow_pickle=False)
    y = np.load(y_path, allow_pickle=False)
    if x.dtype != np.float32 or x.ndim != 2 or not x.flags.c_contiguous:
        raise ValueError(f"x must be a C-order float32 matrix, got {x.dtype} {x.shape}")
    _check_cells(x.shape[0], x.shape[1], settings, loc)
    if x.size == 0:
        raise Invalid(f"features must not be empty, got shape {x.shape}", (*loc, "x"))
    if y.shape[0] != x.shape[0]:
        raise Invalid(f"x has {x.shape[0]} rows but y has {y.shape[0]} labels", (*loc, "y"))
    label_kind = kind_of_labels(y)
    classes, class_counts = None, None
    if label_kind == "categorical":  # the sorted distinct labels and their rows, one pass
        distinct, counts = np.unique(y, return_counts=True)
        classes, class_counts = distinct.tolist(), counts.tolist()
    # One pass over x's file for its statistics and content hash, read in blocks.
    digest = ContentHash()
    digest.begin(x)
    stats = feature_stats(x, digest.passing(npy_row_blocks(x_path, x)))
    digest.begin(y)
    digest.update(y)
    sha256, n_features = digest.hexdigest(), int(x.shape[1])
    del x  # the memory map (never read): the file can go once stored
    x_ref, y_ref = blobs.put_file(x_path), blobs.put_file(y_path)
    row = Dataset(
        owner_id=owner_id,
        name=name,
        n_samples=int(y.shape[0]),
        n_features=n_features,
        n_targets=int(y.shape[1]) if y.ndim == 2 else 1,
        label_kind=label_kind,
        classes=None if classes is None else [_json_scalar(c) for c in classes],
        feature_names=feature_names,
        # Beside x's statistics: rows per class (null unless categorical), for the model
        # card's class balance without reading y.
        stats={**stats, "class_counts": class_counts},
        sha256=sha256,
        x_sha256=x_ref.sha256,
        y_sha256=y_ref.sha256,
        y_dtype=y.dtype.str,
        y_shape=list(y.shape),
        size_bytes=x_ref.size + y_ref.size,
    )
    with db.session() as session:
        # Refused: the blobs just stored stay unreferenced, for `backprop gc`.
        check_owner_bytes(session, settings, owner_id=owner_id, adding=row.size_bytes, loc=loc)
        session.add(row)
    return row


def store_dataset(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    *,
    owner_id: int,
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    feature_names: list[str] | None = None,
    loc: Loc = ("body",),
) -> Dataset:
    """Store validated arrays ``x`` (n, d) float32 and ``y`` (n,) | (n, k) with their stats."""
    _check_cells(x.shape[0], x.shape[1], settings, loc)
    with tempfile.TemporaryDirectory(prefix="backprop-dataset-") as folder:
        x_path, y_path = Path(folder) / "x.npy", Path(folder) / "y.npy"
        np.save(x_path, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
        np.save(y_path, np.ascontiguousarray(y), allow_pickle=False)
        return store_dataset_files(
            db,
            blobs,
            settings,
            owner_id=owner_id,
            name=name,
            x_path=x_path,
            y_path=y_path,
            feature_names=feature_names,
            loc=loc,
        )


def store_parsed(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    *,
    owner_id: int,
    name: str,
    parsed: ParsedUpload,
    y: np.ndarray,
) -> Dataset:
    """Store a parsed upload: x already on disk as float32 ``.npy`` (it goes to the blob
    store as it is), ``y`` validated (written next to it)."""
    y_path = parsed.x_path.with_name("y.npy")
    np.save(y_path, np.ascontiguousarray(y), allow_pickle=False)
    return store_dataset_files(
        db,
        blobs,
        settings,
        owner_id=owner_id,
        name=name,
        x_path=parsed.x_path,
        y_path=y_path,
        feature_names=parsed.feature_names,
        loc=FILE_LOC,
    )


def _json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def create_dataset(
    db: Database, blobs: BlobStore, settings: Settings, *, owner_id: int, name: str, x: Any, y: Any
) -> Dataset:
    """From JSON arrays: ``x`` rows of numbers, ``y`` scalars or rows of numbers."""
    if len(x) and len(x) * len(x[0]) > settings.max_dataset_cells:
        _check_cells(len(x), len(x[0]), settings, ("body", "x"))
    features = feature_matrix(x, ("body", "x"))
    labels = label_array(y, ("body", "y"))
    return store_dataset(db, blobs, settings, owner_id=owner_id, name=name, x=features, y=labels)


def generate_dataset(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    *,
    owner_id: int,
    kind: str,
    n_samples: int,
    noise: float,
    classes: int,
    seed: int,
    name: str | None,
) -> Dataset:
    """A toy dataset from the engine's generators (2 features)."""
    _check_cells(n_samples, 2, settings, ("body", "n_samples"))
    with invalid_at(("body",)):
        x, y = generate(kind, n_samples=n_samples, noise=noise, classes=classes, seed=seed)
    return store_dataset(
        db,
        blobs,
        settings,
        owner_id=owner_id,
        name=name or kind,
        x=feature_matrix(x, ("body",)),
        y=label_array(y, ("body",)),
    )


def get_dataset(db: Database, *, owner_id: int, dataset_id: str) -> Dataset:
    with db.read_session() as session:
        return get_owned(session, Dataset, dataset_id, owner_id=owner_id, loc=PATH_LOC)


def list_datasets(
    db: Database, *, owner_id: int, limit: int, offset: int
) -> tuple[list[Dataset], int]:
    with db.read_session() as session:
        return page(
            session,
            Dataset,
            owner_id=owner_id,
            limit=limit,
            offset=offset,
        )


def load_dataset_arrays(blobs: BlobStore, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The stored ``x`` (n, d) float32 and ``y`` arrays of ``dataset``, memory-mapped
    read-only (hash-checked on first use: BlobMissing / BlobCorrupt name a bad blob)."""
    return load_array(blobs, dataset.x_sha256), load_array(blobs, dataset.y_sha256)


def dataset_rows(
    db: Database, blobs: BlobStore, *, owner_id: int, dataset_id: str, limit: int
) -> tuple[list[list[float]], list[Any], int]:
    """The first ``limit`` rows of x and y as JSON-ready lists, and the dataset's row count."""
    with db.read_session() as session:
        dataset = get_owned(session, Dataset, dataset_id, owner_id=owner_id, loc=PATH_LOC)
    x, y = load_dataset_arrays(blobs, dataset)
    return jsoncodec.plain(x[:limit]), y[:limit].tolist(), dataset.n_samples


def download_dataset(
    db: Database, blobs: BlobStore, *, owner_id: int, dataset_id: str
) -> tuple[str, Iterator[bytes]]:
    """A file name and the dataset as npz chunks (``x`` float32 (n, d), ``y``), streamed
    from the blob store's memory-mapped files."""
    with db.read_session() as session:
        dataset = get_owned(session, Dataset, dataset_id, owner_id=owner_id, loc=PATH_LOC)
    x, y = load_dataset_arrays(blobs, dataset)
    return f"{dataset.id}.npz", npz_stream({"x": npy_file(x), "y": npy_file(y)})


def delete_dataset(db: Database, *, owner_id: int, dataset_id: str) -> None:
    """Delete, unless a queued or running job trains on it (409)."""
    with db.session() as session:
        dataset = get_owned(
            session,
            Dataset,
            dataset_id,
            owner_id=owner_id,
            loc=PATH_LOC,
            for_update=True,
        )
        uses = Job.dataset_id == dataset_id
        refuse_while_in_use(session, uses, what="on this dataset", loc=PATH_LOC)
        session.delete(dataset)
