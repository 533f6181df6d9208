"""What every export of a model starts from: the engine model, its id, the names of its
features and the Backprop version that wrote it.

Read from the database once (owner-checked: a foreign id is a 404 like an unknown one);
the exporters (:mod:`app.services.export_onnx`, :mod:`app.services.export_python`) then
work on this alone, without a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from sqlalchemy import select

from app.engine.model import Model
from app.services.models import PATH_LOC
from app.services.ownership import get_owned
from app.storage import tables
from app.storage.blobs import BlobStore, read_verified
from app.storage.database import Database
from app.storage.tables import Dataset, Job

FORMAT_LOC = ("query", "format")


def backprop_version() -> str:
    """The installed Backprop's version (the package metadata ``pip install`` wrote)."""
    try:
        return metadata.version("backprop")
    except metadata.PackageNotFoundError:  # running from a bare source tree
        return "unknown"


def default_feature_names(input_size: int) -> list[str]:
    """x1..xn: the names the dashboard also gives features of a dataset without names."""
    return [f"x{i}" for i in range(1, input_size + 1)]


@dataclass(frozen=True)
class ExportSource:
    """A model ready to export.

    model: the engine model (weights W[l] (n[l], n[l-1]), b[l] (n[l],), and x_mean /
    x_std (n[0],) when standardised). feature_names: n[0] names, the training dataset's
    when it has them, else x1..xn.
    """

    model_id: str
    model: Model
    feature_names: list[str]
    version: str

    @property
    def classes(self) -> list[Any] | None:
        return self.model.classes


def load_export_source(
    db: Database, blobs: BlobStore, *, owner_id: int, model_id: str
) -> ExportSource:
    """The owned model ``model_id`` as an :class:`ExportSource` (404 for a foreign id)."""
    with db.read_session() as session:
        row = get_owned(session, tables.Model, model_id, owner_id=owner_id, loc=PATH_LOC)
        names = None
        if row.job_id is not None:
            names = session.scalar(
                select(Dataset.feature_names)
                .join(Job, Job.dataset_id == Dataset.id)
                .where(Job.id == row.job_id, Dataset.owner_id == owner_id)
            )
        weights_sha256, config = row.weights_sha256, row.config
    model = Model.from_export(read_verified(blobs, weights_sha256), config)
    size = model.network.input_size
    feature_names = (
        [str(name) for name in names]
        if isinstance(names, list) and len(names) == size
        else default_feature_names(size)
    )
    return ExportSource(
        model_id=model_id, model=model, feature_names=feature_names, version=backprop_version()
    )
