"""Write a float32 (n, d) ``.npy`` file row block by row block, n unknown until the end.

The header is written first with room for any shape and rewritten, at the same length,
when the file is closed; NumPy reads such a file like any other (the header is padded
with spaces, as ``np.save`` pads it). Per-feature statistics and the finiteness check are
computed on each block as it passes, so nothing needs a second read of the data.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

MAGIC = b"\x93NUMPY\x01\x00"
HEADER_LENGTH = 118  # magic (8) + length (2) + 118 = 128 bytes: a multiple of 64
DTYPE = np.dtype("<f4")


class NonFinite(ValueError):
    """A NaN or infinite value at (row, col) of the data written so far."""

    def __init__(self, row: int, col: int) -> None:
        super().__init__(f"non-finite value at row {row}, column {col}")
        self.row = row
        self.col = col


def _header(rows: int, width: int) -> bytes:
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {width}), }}"
    return (
        MAGIC + HEADER_LENGTH.to_bytes(2, "little") + text.ljust(HEADER_LENGTH - 1).encode() + b"\n"
    )


class NpyWriter:
    """``with NpyWriter(path, width) as w: w.write(block)`` for blocks of shape (k, width)."""

    def __init__(self, path: Path, width: int) -> None:
        self.path = path
        self.width = width
        self.rows = 0
        self._file: BinaryIO = path.open("wb")
        self._file.write(_header(0, width))
        # Mean and sum of squared deviations, merged block by block (Chan et al.), so that
        # a large mean does not cancel the variance as sum(x^2) - n*mean^2 would.
        self._mean = np.zeros(width, dtype=np.float64)
        self._m2 = np.zeros(width, dtype=np.float64)
        self._min = np.full(width, np.inf)
        self._max = np.full(width, -np.inf)

    def write(self, block: np.ndarray) -> None:
        """Append rows ``block`` (k, width), any real dtype; converted to float32 here.
        Raises NonFinite (with the row counted over the whole file) for NaN, inf or a value
        that overflows float32."""
        if block.ndim != 2 or block.shape[1] != self.width:
            raise ValueError(f"block of shape {block.shape}, expected (k, {self.width})")
        with np.errstate(over="ignore", invalid="ignore"):
            rows32 = np.ascontiguousarray(block, dtype=DTYPE)
        finite = np.isfinite(rows32)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            raise NonFinite(self.rows + int(row), int(col))
        if len(rows32):
            self._merge_stats(rows32)
        self._file.write(rows32.data)
        self.rows += len(rows32)

    def _merge_stats(self, rows32: np.ndarray) -> None:
        """Fold a block's mean and squared deviations (float64 sums over float32 rows)
        into the running ones."""
        count = len(rows32)
        block_mean = rows32.mean(axis=0, dtype=np.float64)
        deviations = rows32 - block_mean.astype(np.float32)
        block_m2 = np.square(deviations).sum(axis=0, dtype=np.float64)
        total = self.rows + count
        delta = block_mean - self._mean
        self._mean += delta * (count / total)
        self._m2 += block_m2 + np.square(delta) * (self.rows * count / total)
        np.minimum(self._min, rows32.min(axis=0), out=self._min)
        np.maximum(self._max, rows32.max(axis=0), out=self._max)

    def stats(self) -> dict[str, list[float]]:
        """Per-feature mean / std / min / max of everything written, in float64."""
        variance = self._m2 / max(self.rows, 1)
        return {
            "mean": self._mean.tolist(),
            "std": np.sqrt(variance).tolist(),
            "min": self._min.tolist(),
            "max": self._max.tolist(),
        }

    def close(self) -> None:
        """Write the final shape into the header and close the file."""
        if self._file.closed:
            return
        self._file.seek(0)
        self._file.write(_header(self.rows, self.width))
        self._file.close()

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
