"""The training rows of each epoch, in that epoch's order: their row numbers into x, their
targets and class numbers, and the features of each batch.

The permutation of epoch e is a pure function of (seed, e), so a resumed run shuffles
exactly like the uninterrupted one without carrying any generator state.

A batch's features (batch, n[0]) come one of two ways:

- direct: without shuffling, standardisation or a split the batches are plain slices of
  x (``xs``; an unaligned x, a view of stored npz bytes, is copied once here, as BLAS
  would otherwise copy every batch of it);
- gathered: each batch's rows are gathered into one reused (batch, n[0]) buffer (one
  ``np.take`` with ``mode="clip"``, which writes straight into it) and standardised there
  (``fill``); x is never copied nor written: it may be a read-only memory map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import metrics, preprocessing
from app.engine.trainingdata import TrainingData

Array = npt.NDArray[np.floating[Any]]
Index = npt.NDArray[np.intp]
SHUFFLE_STREAM = 1  # separates the shuffling stream from the validation split's


class EpochRows:
    """The rows of ``data`` trained on, per epoch, in batches of ``size`` rows.

    order: row numbers into x in this epoch's order (None: all rows, in order); ys
    (n, n[L]): the targets in that order; codes (n,): their class numbers when the
    targets are one-hot and ``codes`` is asked for (else None); source: the array the
    batches' features are views of (x itself, or the reused batch buffer).
    """

    def __init__(
        self, data: TrainingData, size: int, shuffle: bool, seed: int, codes: bool
    ) -> None:
        self.data, self.shuffle, self.seed = data, shuffle, seed
        n, width = data.train_count, data.x.shape[1]
        direct = not shuffle and data.standardizer is None and data.train_rows is None
        self.xs: Array | None = np.require(data.x, requirements="A") if direct else None
        self.gathers = self.xs is None  # each batch's rows are gathered by ``fill``
        self.source: Array = (
            self.xs if self.xs is not None else np.empty((size, width), dtype=data.x.dtype)
        )
        self.order: Index | None = data.train_rows
        labels = metrics.one_hot_codes(data.y) if codes else None
        self.all_codes = labels
        self.codes: Index | None = None
        if shuffle:
            self.order = np.empty(n, dtype=np.intp)
            self.ys = np.empty((n, data.y.shape[1]), dtype=data.y.dtype)
            self.codes = None if labels is None else np.empty(n, dtype=np.intp)
        else:
            self.ys = data.y if data.train_rows is None else data.y[data.train_rows]
            if labels is not None:
                self.codes = labels if data.train_rows is None else labels[data.train_rows]
        self._arranged: int | None = None  # the epoch whose order the buffers hold

    def fresh(self) -> list[npt.NDArray[Any]]:
        """The buffers made here (to take their first-write page faults up front)."""
        made: list[npt.NDArray[Any]] = [] if self.xs is not None else [self.source]
        if self.shuffle:
            made += [a for a in (self.order, self.ys, self.codes) if a is not None]
        return made

    def batch_x(self, start: int, stop: int) -> Array:
        """The features of the batch of rows start:stop of an epoch: a slice of x, or the
        first stop - start rows of the buffer that ``fill`` writes."""
        return self.source[: stop - start] if self.gathers else self.source[start:stop]

    def arrange(self, epoch: int) -> None:
        """Put the rows in epoch ``epoch``'s order (no-op without shuffling or when done)."""
        if not self.shuffle or self._arranged == epoch or self.order is None:
            return
        data = self.data
        permutation = np.random.default_rng([self.seed, SHUFFLE_STREAM, epoch]).permutation(
            data.train_count
        )
        if data.train_rows is None:
            self.order[...] = permutation
        else:
            data.train_rows.take(permutation, out=self.order, mode="clip")
        data.y.take(self.order, axis=0, out=self.ys, mode="clip")
        if self.codes is not None and self.all_codes is not None:
            self.all_codes.take(self.order, out=self.codes, mode="clip")
        self._arranged = epoch

    def fill(self, span: slice, out: Array) -> None:
        """The rows ``span`` of this epoch, gathered into ``out`` and standardised there."""
        rows = span if self.order is None else self.order[span]
        preprocessing.gather(self.data.x, rows, out, self.data.standardizer)
