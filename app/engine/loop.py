"""One epoch of minibatch steps, with every buffer allocated once per run.

Per epoch the training rows are permuted into a reused buffer (one ``np.take`` with
``mode="clip"``, which writes straight into ``out``), so each minibatch is a contiguous
slice of it; the slices, and the slices of the logits buffer that the output layer
writes z[L] into, are built once. A step is therefore: forward, backward, update — no
gathering, no allocation — and the epoch's training metrics are computed afterwards from
the logits the steps already produced, without another pass over the data.

The permutation of epoch e is a pure function of (seed, e), so a resumed run shuffles
exactly like the uninterrupted one without carrying any generator state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.network import Network
from app.engine.workspace import Workspace

Array = npt.NDArray[np.floating[Any]]
SHUFFLE_STREAM = 1  # separates the shuffling stream from the validation split's
CHECK_EVERY = 64  # batches between checks of the logits for NaN / inf


class NonFiniteOutput(ArithmeticError):
    """The output layer produced NaN or inf in the middle of an epoch."""


class EpochLoop:
    """Minibatches over x (n, n[0]) / y (n, n[L]) for ``network``, gradients into ``grads``."""

    def __init__(
        self,
        network: Network,
        x: Array,
        y: Array,
        batch_size: int,
        shuffle: bool,
        seed: int,
        grads: Array,
    ) -> None:
        n = x.shape[0]
        size = min(batch_size, n)
        self.x, self.y, self.seed, self.shuffle = x, y, seed, shuffle
        # Without shuffling the batches are slices of x itself. An unaligned x (a view of
        # stored npz bytes, when nothing else copied it) is copied once here: BLAS would
        # otherwise copy every batch of it.
        self.xs = np.empty_like(x) if shuffle else np.require(x, requirements="A")
        self.ys = np.empty_like(y) if shuffle else y
        self.logits = np.empty((n, network.output_size), dtype=network.dtype)
        full = Workspace(network, size, grads)
        tail = Workspace(network, n % size, grads) if n % size else full
        self.batches: list[tuple[Array, Array, Array, Workspace]] = []
        for start in range(0, n, size):
            stop = min(start + size, n)
            work = full if stop - start == size else tail
            self.batches.append(
                (self.xs[start:stop], self.ys[start:stop], self.logits[start:stop], work)
            )
        self.ends = [min(start + size, n) for start in range(0, n, size)]

    def rows(self, batches: int) -> int:
        """Rows covered by the first ``batches`` batches of an epoch."""
        return self.ends[batches - 1] if batches else 0

    def arrange(self, epoch: int) -> None:
        """Put the rows in epoch ``epoch``'s order (no-op without shuffling)."""
        if not self.shuffle:
            return
        order = np.random.default_rng([self.seed, SHUFFLE_STREAM, epoch]).permutation(
            self.x.shape[0]
        )
        np.take(self.x, order, axis=0, out=self.xs, mode="clip")
        np.take(self.y, order, axis=0, out=self.ys, mode="clip")

    def run(
        self, start: int, update: Callable[[], None], should_stop: Callable[[], bool] | None
    ) -> int:
        """Steps from batch ``start`` to the end of the epoch; returns the batches done.

        ``should_stop`` is asked before every batch; a True ends the epoch early. Raises
        NonFiniteOutput if the logits turn NaN / inf.
        """
        batches = self.batches
        for index in range(start, len(batches)):
            if should_stop is not None and should_stop():
                return index
            x, y, z, work = batches[index]
            work.forward(x, z)
            work.backward(x, y)
            update()
            if index % CHECK_EVERY == CHECK_EVERY - 1 and not np.isfinite(z).all():
                raise NonFiniteOutput
        return len(batches)
