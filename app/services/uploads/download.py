"""A dataset back as an npz archive (``x.npy``, ``y.npy``), streamed: the archive is
written chunk by chunk into a queue the response drains, never assembled in memory."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

CHUNK_BYTES = 1 << 20


class _Sink(io.RawIOBase):
    """A write-only, unseekable file that keeps what was written until it is drained
    (zipfile then writes data descriptors instead of seeking back)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def npz_stream(members: dict[str, BinaryIO]) -> Iterator[bytes]:
    """An uncompressed npz of ``members`` (name -> a readable ``.npy`` file), in chunks."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, source in members.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                while chunk := source.read(CHUNK_BYTES):
                    member.write(chunk)
                    yield sink.drain()
            yield sink.drain()
    yield sink.drain()


def npy_file(array: np.ndarray) -> BinaryIO:
    """A small array as an in-memory ``.npy`` file (for y, which is one value per row)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    buffer.seek(0)
    return buffer
