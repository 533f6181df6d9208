"""A prediction run's output: a ``.npy`` file of known shape, written block by block, with
the rows since the last save kept as a separate piece that can be stored as a blob.

A run saves its pieces (``[{"rows", "sha256"}, ...]``) with its progress; a later attempt
rebuilds the file from them and continues after their rows, so the finished file is
byte for byte what one uninterrupted run writes. Memory holds one block at a time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from app.storage.blobs import CHUNK_BYTES, BlobCorrupt, BlobRef, BlobStore


class OutputFile:
    """``rows`` x ``width`` values of ``dtype`` in a ``.npy`` at ``folder/outputs.npy``."""

    def __init__(self, folder: Path, *, rows: int, width: int, dtype: np.dtype[Any]) -> None:
        self.path = folder / "outputs.npy"
        self._piece_path = folder / "piece.bin"
        self.rows_total = rows
        self.row_bytes = width * dtype.itemsize
        self.rows = 0  # written so far
        self._piece_rows = 0
        self._file: BinaryIO = self.path.open("wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (rows, width),
        }
        np.lib.format.write_array_header_1_0(self._file, header)
        self._data_start = self._file.tell()
        self._piece: BinaryIO = self._piece_path.open("wb")

    def restore(self, blobs: BlobStore, parts: list[dict[str, Any]]) -> int:
        """Append the stored pieces ``parts`` (each checked against its hash); the rows
        they hold. BlobMissing / BlobCorrupt propagate (the caller starts over)."""
        for part in parts:
            sha256, rows = str(part["sha256"]), int(part["rows"])
            digest = hashlib.sha256()
            with blobs.open(sha256) as reader:
                while chunk := reader.read(CHUNK_BYTES):
                    digest.update(chunk)
                    self._file.write(chunk)
            if digest.hexdigest() != sha256:
                raise BlobCorrupt(sha256, digest.hexdigest())
            self.rows += rows
        if self._file.tell() != self._data_start + self.rows * self.row_bytes:
            raise BlobCorrupt(str(parts[-1]["sha256"]), "a piece of the wrong length")
        return self.rows

    def start_over(self) -> None:
        """Drop everything written (restored pieces included)."""
        self._file.truncate(self._data_start)
        self._file.seek(self._data_start)
        self._piece.truncate(0)
        self._piece.seek(0)
        self.rows = self._piece_rows = 0

    def append(self, block: np.ndarray) -> None:
        """Write outputs ``block`` (k, width) of the file's dtype, C order."""
        data = np.ascontiguousarray(block).data
        self._file.write(data)
        self._piece.write(data)
        self.rows += block.shape[0]
        self._piece_rows += block.shape[0]

    def store_piece(self, blobs: BlobStore) -> dict[str, Any] | None:
        """The rows since the last piece as a blob, ``{"rows", "sha256"}``; None if none."""
        if self._piece_rows == 0:
            return None
        self._piece.close()
        ref = blobs.put_file(self._piece_path)
        part = {"rows": self._piece_rows, "sha256": ref.sha256}
        # A new file, not the stored one truncated: the file store may have hard-linked it.
        self._piece_path.unlink()
        self._piece = self._piece_path.open("wb")
        self._piece_rows = 0
        return part

    def store(self, blobs: BlobStore) -> BlobRef:
        """The finished file as a blob (every row must have been written)."""
        if self.rows != self.rows_total:
            raise ValueError(f"{self.rows} of {self.rows_total} output rows written")
        self.close()
        return blobs.put_file(self.path)

    def read(self) -> np.ndarray:
        """The finished outputs (rows, width), read whole (every row must be written)."""
        if self.rows != self.rows_total:
            raise ValueError(f"{self.rows} of {self.rows_total} output rows written")
        self.close()
        return np.load(self.path)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._file.close()
        self._piece.close()
