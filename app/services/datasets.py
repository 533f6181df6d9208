"""Dataset verbs: create (JSON, file, generated), read, list, sample rows, delete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sqlalchemy.orm import defer

from app.config import Settings
from app.engine import npzio
from app.engine.datasets import generate
from app.engine.labels import describe_labels
from app.services import jsoncodec
from app.services.arrays import content_hash, feature_matrix, feature_stats, label_array
from app.services.errors import Invalid, Loc, invalid_at
from app.services.ownership import get_owned, page, refuse_while_in_use
from app.services.quota import check_owner_bytes
from app.services.uploads.download import npy_file, npz_stream
from app.services.uploads.limits import UploadLimits
from app.services.uploads.parsed import FILE_LOC, ParsedUpload
from app.storage.database import Database
from app.storage.tables import Dataset, Job

PATH_LOC = ("path", "dataset_id")
NO_DATA = (defer(Dataset.data),)


def _check_cells(rows: int, width: int, settings: Settings, loc: Loc) -> None:
    UploadLimits(max_cells=settings.max_dataset_cells).check_cells(rows, width, loc)


def store_dataset(
    db: Database,
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
    if y.shape[0] != x.shape[0]:
        raise Invalid(f"x has {x.shape[0]} rows but y has {y.shape[0]} labels", (*loc, "y"))
    label_kind, classes = describe_labels(y)
    row = Dataset(
        owner_id=owner_id,
        name=name,
        n_samples=int(x.shape[0]),
        n_features=int(x.shape[1]),
        n_targets=int(y.shape[1]) if y.ndim == 2 else 1,
        label_kind=label_kind,
        classes=None if classes is None else [_json_scalar(c) for c in classes],
        feature_names=feature_names,
        stats=feature_stats(x),
        sha256=content_hash(x, y),
        data=npzio.dump({"x": x, "y": y}),
    )
    with db.session() as session:
        check_owner_bytes(session, settings, owner_id=owner_id, adding=len(row.data), loc=loc)
        session.add(row)
    return row


def store_parsed(
    db: Database,
    settings: Settings,
    *,
    owner_id: int,
    name: str,
    parsed: ParsedUpload,
    y: np.ndarray,
) -> Dataset:
    """Store a parsed upload: x already on disk as float32 ``.npy``, ``y`` validated."""
    x = np.load(parsed.x_path, mmap_mode="r")
    return store_dataset(
        db,
        settings,
        owner_id=owner_id,
        name=name,
        x=x,
        y=y,
        feature_names=parsed.feature_names,
        loc=FILE_LOC,
    )


def _json_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def create_dataset(
    db: Database, settings: Settings, *, owner_id: int, name: str, x: Any, y: Any
) -> Dataset:
    """From JSON arrays: ``x`` rows of numbers, ``y`` scalars or rows of numbers."""
    if len(x) and len(x) * len(x[0]) > settings.max_dataset_cells:
        _check_cells(len(x), len(x[0]), settings, ("body", "x"))
    features = feature_matrix(x, ("body", "x"))
    labels = label_array(y, ("body", "y"))
    return store_dataset(db, settings, owner_id=owner_id, name=name, x=features, y=labels)


def generate_dataset(
    db: Database,
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
        settings,
        owner_id=owner_id,
        name=name or kind,
        x=feature_matrix(x, ("body",)),
        y=label_array(y, ("body",)),
    )


def get_dataset(db: Database, *, owner_id: int, dataset_id: str) -> Dataset:
    with db.read_session() as session:
        return get_owned(
            session, Dataset, dataset_id, owner_id=owner_id, loc=PATH_LOC, options=NO_DATA
        )


def list_datasets(
    db: Database, *, owner_id: int, limit: int, offset: int
) -> tuple[list[Dataset], int]:
    with db.read_session() as session:
        return page(
            session, Dataset, owner_id=owner_id, limit=limit, offset=offset, options=NO_DATA
        )


def load_dataset_arrays(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The stored ``x`` (n, d) float32 and ``y`` arrays of ``dataset``."""
    arrays = npzio.load(dataset.data, required=("x", "y"))
    return arrays["x"], arrays["y"]


def dataset_rows(
    db: Database, *, owner_id: int, dataset_id: str, limit: int
) -> tuple[list[list[float]], list[Any], int]:
    """The first ``limit`` rows of x and y as JSON-ready lists, and the dataset's row count."""
    with db.read_session() as session:
        dataset = get_owned(session, Dataset, dataset_id, owner_id=owner_id, loc=PATH_LOC)
    x, y = load_dataset_arrays(dataset)
    return jsoncodec.plain(x[:limit]), y[:limit].tolist(), dataset.n_samples


def download_dataset(
    db: Database, *, owner_id: int, dataset_id: str
) -> tuple[str, Iterator[bytes]]:
    """A file name and the dataset as npz chunks (``x`` float32 (n, d), ``y``)."""
    with db.read_session() as session:
        dataset = get_owned(session, Dataset, dataset_id, owner_id=owner_id, loc=PATH_LOC)
    x, y = load_dataset_arrays(dataset)
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
            options=NO_DATA,
        )
        uses = Job.dataset_id == dataset_id
        refuse_while_in_use(session, uses, what="on this dataset", loc=PATH_LOC)
        session.delete(dataset)
