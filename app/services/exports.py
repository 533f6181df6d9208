"""``GET /v1/models/{id}/export``: one model, three formats, produced as chunks to stream.

- ``onnx``: an ONNX graph (:mod:`app.services.export_onnx`), checked by onnxruntime in the
  tests against predict;
- ``python``: one NumPy-only ``.py`` file (:mod:`app.services.export_python`);
- ``npz``: the engine's own arrays, as ``/weights`` has always served them.

Everything that could refuse an export runs before the first chunk, so a refusal is a
4xx JSON answer, never a broken download.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from app.services import export_python
from app.services.export_source import load_export_source
from app.services.models import model_weights
from app.storage.blobs import BlobStore
from app.storage.database import Database

CHUNK_BYTES = 1 << 16


class ExportFormat(StrEnum):
    ONNX = "onnx"
    PYTHON = "python"
    NPZ = "npz"


BINARY_MEDIA_TYPE = "application/octet-stream"
MEDIA_TYPES = {
    ExportFormat.ONNX: BINARY_MEDIA_TYPE,
    ExportFormat.PYTHON: export_python.MEDIA_TYPE,
    ExportFormat.NPZ: BINARY_MEDIA_TYPE,
}
SUFFIXES = {ExportFormat.ONNX: "onnx", ExportFormat.PYTHON: "py", ExportFormat.NPZ: "npz"}


@dataclass(frozen=True)
class ExportFile:
    """A download: its file name, media type and content as an iterator of chunks."""

    filename: str
    media_type: str
    chunks: Iterator[bytes]


def _pieces(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK_BYTES):
        yield data[start : start + CHUNK_BYTES]


def export_model(
    db: Database, blobs: BlobStore, *, owner_id: int, model_id: str, export_format: ExportFormat
) -> ExportFile:
    """The owned model ``model_id`` in ``export_format`` (404 foreign or unknown id; 422
    with loc ``("query", "format")`` for a model that format cannot hold)."""
    if export_format is ExportFormat.NPZ:
        chunks = _pieces(model_weights(db, blobs, owner_id=owner_id, model_id=model_id))
    else:
        source = load_export_source(db, blobs, owner_id=owner_id, model_id=model_id)
        if export_format is ExportFormat.ONNX:
            # Imported here: importing onnx costs about 1.5 s of CPU (its ml_dtypes), which
            # every API process would pay at start for a route few requests take.
            from app.services import export_onnx

            chunks = _pieces(export_onnx.onnx_bytes(source))
        else:
            chunks = export_python.python_export(source)
    return ExportFile(
        filename=f"{model_id}.{SUFFIXES[export_format]}",
        media_type=MEDIA_TYPES[export_format],
        chunks=chunks,
    )
