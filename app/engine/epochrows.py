"""The training rows of each epoch, in that epoch's order: their row numbers into x, their
targets and class numbers, and the features of each batch.

The permutation of epoch e is a pure function of (seed, e), so a resumed run shuffles
exactly like the uninterrupted one without carrying any generator state. The rule
(``SHUFFLE_RULE``, recorded in checkpoints): one PCG64 per run is seeded from (seed,
SHUFFLE_STREAM), and epoch e draws from its start advanced by e·2⁶⁴ steps (EPOCH_STRIDE;
an epoch draws far fewer numbers, so epochs never overlap). The rule before it
(``SEEDED_RULE``: a generator seeded per epoch, ``default_rng([seed, stream, e])``) ran
the seed sequence's hashing every epoch: ~50 µs of an epoch's ~3 ms on small data, ~165
µs inside a training run, where the epoch's steps leave that code's caches cold. It is
kept for checkpoints that name it, so that they resume as they would have.

A batch's features (batch, n[0]) come one of three ways:

- direct: without shuffling, standardisation or a split the batches are plain slices of
  x (``xs``; an unaligned x, a view of stored npz bytes, is copied once here, as BLAS
  would otherwise copy every batch of it);
- staged: when the training rows take at most STAGE_BYTES, they are gathered and
  standardised once per run (``staged``); each epoch then takes them in its order into
  one (n, n[0]) buffer with a single ``np.take``, and the batches are slices of it (of
  ``staged`` itself without shuffling): a step does no copying at all. On small data this
  is most of the cost of gathering (a 32-row batch's take and standardisation cost 3-8 µs
  a step, the whole epoch's take of 1,150 rows of 64 about 20 µs);
- gathered: otherwise each batch's rows are gathered into one reused (batch, n[0]) buffer
  (one ``np.take`` with ``mode="clip"``, which writes straight into it) and standardised
  there (``fill``): x is never copied, and it may be a read-only memory map of any size.

Standardisation is elementwise, so the three give the same features, bit for bit; x is
never written.
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
EPOCH_STRIDE = 1 << 64  # draws between the starts of two epochs' streams
SHUFFLE_RULE = "numpy PCG64(SeedSequence([seed, 1])) advanced by epoch * 2**64, permutation(rows)"
SEEDED_RULE = "numpy default_rng([seed, 1, epoch]).permutation(rows)"
SHUFFLE_RULES = (SHUFFLE_RULE, SEEDED_RULE)
STAGE_BYTES = 16 << 20  # training rows at most this large are staged (twice, if shuffled)


class EpochRows:
    """The rows of ``data`` trained on, per epoch, in batches of ``size`` rows.

    order: row numbers into x in this epoch's order (None: all rows, in order); ys
    (n, n[L]): the targets in that order; codes (n,): their class numbers when the
    targets are one-hot and ``codes`` is asked for (else None); source: the array the
    batches' features are views of (x itself, the epoch's staged rows, or the reused
    batch buffer); staged (n, n[0]): the training rows standardised, in row order, when
    they are staged (else None).
    """

    def __init__(
        self,
        data: TrainingData,
        size: int,
        shuffle: bool,
        seed: int,
        codes: bool,
        rule: str = SHUFFLE_RULE,
    ) -> None:
        if rule not in SHUFFLE_RULES:
            raise ValueError(f"unknown shuffle rule {rule!r}")
        self.data, self.shuffle, self.seed, self.rule = data, shuffle, seed, rule
        n, width = data.train_count, data.x.shape[1]
        direct = not shuffle and data.standardizer is None and data.train_rows is None
        self.xs: Array | None = np.require(data.x, requirements="A") if direct else None
        self.staged: Array | None = None
        if self.xs is None and n * width * data.x.itemsize <= STAGE_BYTES:
            rows = slice(0, n) if data.train_rows is None else data.train_rows
            staged = np.empty((n, width), dtype=data.x.dtype)
            self.staged = preprocessing.gather(data.x, rows, staged, data.standardizer)
        self.gathers = self.xs is None and self.staged is None  # batches gathered by ``fill``
        if self.xs is not None:
            self.source = self.xs
        elif self.staged is not None:
            self.source = np.empty_like(self.staged) if shuffle else self.staged
        else:
            self.source = np.empty((size, width), dtype=data.x.dtype)
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
        self._bits = np.random.PCG64(np.random.SeedSequence([seed, SHUFFLE_STREAM]))
        self._start = self._bits.state
        self._shuffler = np.random.Generator(self._bits)

    def fresh(self) -> list[npt.NDArray[Any]]:
        """The buffers made here (to take their first-write page faults up front)."""
        made: list[npt.NDArray[Any]] = []
        if self.source is not self.xs and self.source is not self.staged:
            made.append(self.source)
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
        if self.rule == SHUFFLE_RULE:
            self._bits.state = self._start
            self._bits.advance(epoch * EPOCH_STRIDE)
            permutation = self._shuffler.permutation(data.train_count)
        else:
            seeded = np.random.default_rng([self.seed, SHUFFLE_STREAM, epoch])
            permutation = seeded.permutation(data.train_count)
        if data.train_rows is None:
            self.order[...] = permutation
        else:
            data.train_rows.take(permutation, out=self.order, mode="clip")
        data.y.take(self.order, axis=0, out=self.ys, mode="clip")
        if self.codes is not None and self.all_codes is not None:
            self.all_codes.take(self.order, out=self.codes, mode="clip")
        if self.staged is not None:
            self.staged.take(permutation, axis=0, out=self.source, mode="clip")
        self._arranged = epoch

    def fill(self, span: slice, out: Array) -> None:
        """The rows ``span`` of this epoch, gathered into ``out`` and standardised there."""
        rows = span if self.order is None else self.order[span]
        preprocessing.gather(self.data.x, rows, out, self.data.standardizer)
