"""Per-layer statistics of a training run, gathered from the arrays each step already has.

Every epoch's history entry gets ``layers``: one dict per layer l = 1..L, in order, with

- ``weight_norm``: ‖W[l]‖_F at the end of the epoch;
- ``grad_norm``: ‖dL/dW[l]‖_F of each batch (the data loss's gradient, before L2 and
  clipping), averaged over the epoch's batches; with one full batch, exactly its value;
- ``update_ratio``: ‖W_end - W_start‖_F / ‖W_end‖_F over the epoch;
- ``activation_mean`` / ``activation_std``: over every a[l] value the epoch computed (a
  softmax layer's mean is 1/n[l]: each of its rows sums to 1);
- ``dead_fraction`` (relu, leaky_relu; else None): the share of units whose z was ≤ 0
  for every sample of the epoch (a > 0 exactly when z > 0 for both);
- ``saturated_fraction`` (sigmoid, tanh; else None): the share of a[l] values within 1% of
  the activation's range from its bounds (sigmoid: a ≤ 0.01 or a ≥ 0.99; tanh: |a| ≥ 0.98).

Snapshot epochs (every ``snapshot_every(epochs)`` epochs, and the run's last) add
``histogram`` ({"low", "high", "counts"}: HISTOGRAM_BINS equal bins of W[l]'s values) and,
for relu / leaky_relu layers, ``dead_units`` (the indices of the dead units, at most
MAX_DEAD_LISTED), so a long job's history stays small.

Cost (see ``LayerWatch``): on a small network a step adds one NumPy call whatever the
depth (from RING_GRADS weights, plus one dot per weight matrix in the update); on a
large one two BLAS calls per layer over the activations backward has just
read and one dot per weight matrix, which the update then reads from cache; no second
forward pass is made. A run resumed from a checkpoint in mid-epoch
counts that epoch's statistics from the batch it resumed at.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.network import Network, Workspace, aligned_zeros
from app.engine.optimizers import Gauge, cells_of

Array = npt.NDArray[np.floating[Any]]

HISTOGRAM_BINS = 20
SNAPSHOTS = 20  # snapshot epochs per run (plus the last)
MAX_DEAD_LISTED = 1024
DIRECT_GRADS = 16384  # weights (or activation values per batch, DIRECT_VALUES) from
DIRECT_VALUES = 16384  # which the per-layer BLAS calls of each step beat the ring
RING_GRADS = 1024  # weights from which the gradient's norms are dots in the update, not
# copies in the ring: a ring of whole gradients outgrows the core's cache and evicts what
# the next steps read (measured on 64-64-10 / 64-64-64-10, batch 32)
RING_VALUES = 1 << 20  # values in the ring (4 MiB in float32)
MAX_RING_ROWS = 256  # at most this many steps per reduction of the ring
FOLD_STEPS = 64  # a large network's per-step sums are folded into the epoch's this often
SATURATION_MARGIN = 0.01  # "within 1% of the bounds", as a share of the activation's range
BOUNDED = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}  # the activations' bounds
RECTIFIED = ("relu", "leaky_relu")


def saturation_bounds(kind: str) -> tuple[float, float]:
    """(low, high): a value of a ``kind`` layer is saturated when a <= low or a >= high."""
    bottom, top = BOUNDED[kind]
    margin = SATURATION_MARGIN * (top - bottom)
    return bottom + margin, top - margin


def snapshot_every(epochs: int) -> int:
    """Epochs between two snapshot epochs (histograms, dead units)."""
    return max(1, epochs // SNAPSHOTS)


class LayerWatch:
    """Accumulates the statistics of one epoch at a time, for batches of m rows.

    The training loop takes its flat gradient vector from ``grads`` and keeps the
    activations of its full batches in ``block``, which follows the gradient in one
    array: each step then copies the gradient and the activations into a ring of
    ``rows`` rows with a single call, and the ring is reduced when full (at the next
    step) and at the end of the epoch, with a few calls for every layer at once (on a
    small network the number of NumPy calls is what costs). From RING_GRADS weights a
    ring row holds the activations alone, and ``gauge`` has the update leave each step's
    ‖dW[l]‖² in the row's line of ``_ring_norms`` (a short last batch's in
    ``_tail_norms``): whole gradients in the ring would outgrow the core's cache and
    evict what the steps read. A larger network (DIRECT_GRADS weights or DIRECT_VALUES
    activation values per batch) has no ring, whose copies would stream its arrays
    through memory: after backward each step writes each a[l]'s column sums and Σa²
    (two BLAS calls per layer, the same kernels backward and the gauge call around
    them) into row k of ``_column_rows`` and ``_square_rows``, and ``gauge`` has the
    update leave ‖dW[l]‖² in row k of ``_norm_rows`` (one dot per matrix before the
    optimizer's pass). Every FOLD_STEPS steps, and at the end of the epoch, the rows are
    folded into the epoch's sums, with no call in the other steps. A short last batch is
    read in place (``observe``).

    What is kept per epoch: Σ‖dW[l]‖ and the batch count; Σa² per layer and the rows
    seen; Σa per unit (float64), from which the end of the epoch takes each layer's mean
    (a softmax layer's is 1/n: the large path does not sum it) and, for relu (a >= 0), the
    dead units: those whose sum stayed 0; leaky_relu units
    are alive once some a > 0; bounded layers count their saturated values.
    """

    def __init__(self, network: Network, m: int) -> None:
        self.network = network
        self.kinds = kinds = list(network.activations)
        self.sizes = sizes = list(network.layer_sizes)
        count, depth = network.weight_count, len(sizes)
        block = m * sum(sizes)
        params = network.params.size
        per_line = 64 // network.dtype.itemsize
        skip = -(-params // per_line) * per_line  # the block starts on a cache line
        joint = aligned_zeros(skip + block, network.dtype)
        self.grads: Array = joint[:params]
        self.block: Array = joint[skip:]  # a[1..L] of a full batch, one after another
        ends = np.cumsum([0, *(w.size for w in network.weights)]).tolist()
        self._w_bounds = list(pairwise(ends))
        self._gw_parts = [self.grads[start:stop] for start, stop in self._w_bounds]
        self._m = m
        # A ring row: the whole gradient (weights, then biases) and the block; or, from
        # RING_GRADS weights, the block alone, the gradient's norms left by the update in
        # the row's line of ``_ring_norms``. Larger networks skip the ring (rows = 0):
        # per-call costs do not matter to them.
        small = count < DIRECT_GRADS and block < DIRECT_VALUES
        self._large = not small
        ring_grads = small and count < RING_GRADS
        self._source = joint if ring_grads else self.block  # what a step copies
        self._skip = skip if ring_grads else 0  # where the block starts in a ring row
        self._ring_count = count if ring_grads else 0  # weights' gradients in a ring row
        self.rows = max(1, min(MAX_RING_ROWS, RING_VALUES // self._source.size)) if small else 0
        self._ring = np.empty((self.rows, self._source.size), dtype=network.dtype)
        self._ring_rows = list(self._ring)
        gauged = small and not ring_grads
        self._ring_norms = np.zeros((self.rows if gauged else 0, depth), network.dtype)
        # each row's 0-d views for the gauge, made at the row's first use (~0.4 us each)
        self._ring_cells: list[list[Array] | None] = [None] * len(self._ring_norms)
        self._tail_norms = np.zeros(depth, network.dtype)  # a short last batch's (gauged)
        self._tail_cells = cells_of(self._tail_norms)
        self._tail_pending = False  # _tail_norms holds a batch not yet added
        self._ones = np.ones(self.rows, dtype=network.dtype)
        self._batch_ones = np.ones(m, dtype=network.dtype)
        # For the ring: which layer each weight of a ring row belongs to, where each
        # layer's values start in a block, and the unit of each value of a block.
        ring_m = m if small else 0
        self._w_layer = np.zeros((self._ring_count, depth), network.dtype)
        for i, (start, stop) in enumerate(self._w_bounds if self._ring_count else []):
            self._w_layer[start:stop, i] = 1
        self._value_starts = np.cumsum([0, *(ring_m * n for n in sizes[:-1])])
        first = np.cumsum([0, *sizes[:-1]])
        self._unit_at = np.concatenate(
            [np.tile(np.arange(n) + f, ring_m) for n, f in zip(sizes, first, strict=True)]
        )
        self._units = sum(sizes)
        units = np.cumsum([0, *sizes]).tolist()
        self._unit_slices = [slice(a, b) for a, b in pairwise(units)]
        # Slices of a block: those of the leaky_relu layers, and those of the bounded
        # layers with the values at which they count as saturated.
        values = np.cumsum([0, *(m * n for n in sizes)]).tolist()
        parts = [slice(a, b) for a, b in pairwise(values)]
        self._leaky = [(i, parts[i]) for i, kind in enumerate(kinds) if kind == "leaky_relu"]
        self._bounded = [
            (i, parts[i], *saturation_bounds(kind))
            for i, kind in enumerate(kinds)
            if kind in BOUNDED
        ]
        # For the direct path: per layer, the column sums' buffer and what else to count.
        self._columns = [np.empty(n, dtype=network.dtype) for n in sizes]
        self._direct = [
            (
                i,
                kind == "leaky_relu",
                saturation_bounds(kind) if kind in BOUNDED else None,
            )
            for i, kind in enumerate(kinds)
        ]
        # A large network's per-step sums, FOLD_STEPS steps of them, as the BLAS calls
        # leave them (network dtype; folded in float64): ‖dW[l]‖² (left by the update,
        # ``gauge``, which runs after ``step``), Σa²[l], and the column sums of each a[l].
        folds = 0 if small else FOLD_STEPS
        self._norm_rows = np.zeros((folds, depth), network.dtype)
        self._square_rows = np.zeros((folds, depth), network.dtype)
        self._column_rows = np.zeros((folds, self._units), network.dtype)
        self._folds = 0  # steps in those buffers
        # Per row k: the layers' (a[l] (m, n[l]), its column sums' place in row k), but a
        # softmax layer's (its mean is known: each row sums to 1), then every layer's
        # (a[l] flat, its Σa²'s cell in row k), and the row and cells of ‖dW[l]‖² for
        # the gauge.
        flat = [self.block[part] for part in parts]
        self._plans = [
            (
                [
                    (flat[i].reshape(m, n), self._column_rows[k, self._unit_slices[i]])
                    for i, n in enumerate(sizes)
                    if kinds[i] != "softmax"
                ],
                [(flat[i], self._square_rows[k, i, ...]) for i in range(depth)],
                self._norm_rows[k],
                cells_of(self._norm_rows[k]),
            )
            for k in range(folds)
        ]
        self._blocks = [
            (i, self.block[part].reshape(m, sizes[i]), *self._direct[i][1:])
            for i, part in enumerate(parts)
            if self._direct[i][1] or self._direct[i][2] is not None
        ]
        self.gauge = None if ring_grads else Gauge(self._w_bounds, np.zeros(depth, network.dtype))
        # For the histograms of all layers at once: each weight's bin offset (its layer's
        # first bin), and where each layer's weights start.
        self._w_sizes = [w.size for w in network.weights]
        self._bin_base = np.repeat(np.arange(depth) * HISTOGRAM_BINS, self._w_sizes)
        self._edge_base = np.repeat(np.arange(depth) * (HISTOGRAM_BINS + 1), self._w_sizes)
        self._w_starts = np.array([start for start, _ in self._w_bounds])
        self._filled = 0
        self._start = network.params[:count].copy()
        # The epoch's sums, zeroed by ``_reset``: Σ‖dW[l]‖ over batches, Σa²[l], the
        # saturated values' count per layer, then Σa per unit.
        self._sums = np.zeros(3 * depth + self._units)
        self._grad_sum, self._squares, self._saturated, self._unit_sum = np.split(
            self._sums, [depth, 2 * depth, 3 * depth]
        )
        self._unit_sums = [self._unit_sum[part] for part in self._unit_slices]
        self._alive_all = np.zeros(self._units, dtype=bool)  # leaky_relu units only
        self._alive = [self._alive_all[part] for part in self._unit_slices]
        # The end of the epoch's ‖W[l]‖² and ‖ΔW[l]‖² (network dtype), and their cells.
        self._weight_squares = np.zeros(2 * depth, network.dtype)
        self._weight_cells = cells_of(self._weight_squares)
        self._reset()

    def _reset(self) -> None:
        self._sums.fill(0.0)
        self._alive_all.fill(False)
        self._batches = 0
        self._rows = 0  # rows (samples) whose activations were counted

    def step(self, work: Workspace) -> None:
        """After a batch's backward, before the update (which uses the gradient as
        scratch); ``work`` is the batch's workspace. The gradient's norms go to ``gauge``
        in the update when there is one (a large network's, and from RING_GRADS weights a
        small one's: in the line of the ring row this step fills)."""
        gauge = self.gauge
        if self._large:
            assert gauge is not None
            self._large_step(work, gauge)
            return
        if work.m != self._m:  # a short last batch
            self._direct_step(work)
            return
        j = self._filled
        if j == self.rows:  # full: reduced now, the last row's norms being in (gauged)
            self.flush()
            j = 0
        if gauge is not None:
            cells = self._ring_cells[j]
            if cells is None:
                cells = self._ring_cells[j] = cells_of(self._ring_norms[j])
            gauge.use(self._ring_norms[j], cells)
        self._ring_rows[j][...] = self._source  # 0.32 us against np.copyto's 0.45 (dispatch)
        self._filled = j + 1

    def _large_step(self, work: Workspace, gauge: Gauge) -> None:
        """A large network's step: each a[l]'s column sums and Σa² into row k of the
        fold buffers, and row k of ``_norm_rows`` for the gauge to fill."""
        k = self._folds
        if k == FOLD_STEPS:
            self._fold()
            k = 0
        summed, squared, norms, cells = self._plans[k]
        gauge.use(norms, cells)
        if work.m == self._m:
            # The BLAS kernels of backward's last call (db = Σ over the rows of dZ) and
            # of the gauge's next ones (‖g‖²): measured cheaper here than in the forward
            # pass, where a[l] is in cache but these kernels are not. The methods with
            # out= skip np.dot's dispatch and a scalar's boxing (~0.5 us a call).
            ones = self._batch_ones
            for a, columns in summed:
                ones.dot(a, out=columns)  # Σ over the rows, (n[l],)
            for values, square in squared:
                values.dot(values, out=square)
            for i, a, leaky, bounds in self._blocks:
                self._count(i, a, leaky, bounds)
        else:  # a short last batch: read in place
            self._square_rows[k].fill(0.0)
            self._column_rows[k].fill(0.0)
            for i, a in enumerate(work.a):
                self.observe(i, a)
        self._folds = k + 1
        self._batches += 1
        self._rows += work.m

    def _fold(self) -> None:
        """Add a large network's per-step sums of the last steps to the epoch's."""
        k, self._folds = self._folds, 0
        if not k:
            return
        # In float64 from the stored values, as when the rows were float64.
        self._grad_sum += np.sqrt(self._norm_rows[:k], dtype=np.float64).sum(axis=0)
        self._squares += self._square_rows[:k].sum(axis=0, dtype=np.float64)
        self._unit_sum += self._column_rows[:k].sum(axis=0, dtype=np.float64)

    def _count(self, i: int, a: Array, leaky: bool, bounds: tuple[float, float] | None) -> None:
        """leaky_relu: mark the units of layer i with some a > 0 alive; bounded: count a's
        saturated values."""
        if leaky:
            self._alive[i] |= a.max(axis=0) > 0
        elif bounds is not None:
            low, high = bounds
            self._saturated[i] += np.count_nonzero(a <= low) + np.count_nonzero(a >= high)

    def observe(self, i: int, a: Array) -> None:
        """Add layer i's a (m, n[i]) of a batch, C-contiguous, to the epoch's sums (two
        BLAS calls and an add; a few more for leaky_relu and bounded layers)."""
        columns, total = self._columns[i], self._unit_sums[i]
        np.dot(self._batch_ones[: a.shape[0]], a, out=columns)  # Σ over the rows, (n,)
        np.add(total, columns, out=total)
        self._squares[i] += np.vdot(a, a)
        self._count(i, a, *self._direct[i][1:])

    def _direct_step(self, work: Workspace) -> None:
        """A small network's short last batch, read in place: each layer's a, and
        ‖dW[l]‖ of every layer (gauged: left by the update, added at the next flush)."""
        for i, a in enumerate(work.a):
            self.observe(i, a)
        gauge = self.gauge
        if gauge is not None:
            if self._tail_pending:  # not expected: one short batch an epoch
                self.flush()
            gauge.use(self._tail_norms, self._tail_cells)
            self._tail_pending = True
        else:
            for i, g in enumerate(self._gw_parts):
                self._grad_sum[i] += math.sqrt(float(np.dot(g, g)))
        self._batches += 1
        self._rows += work.m

    def flush(self) -> None:
        """Reduce the filled ring rows: over the rows first (one call per quantity for
        all layers), then per unit (``np.bincount``) and per layer (``np.add.reduceat``).
        Called at a step's start and at the end of an epoch, never between a step and
        its update (whose gradient norms a gauged ring row still waits for)."""
        k, self._filled = self._filled, 0
        if self._tail_pending:
            self._tail_pending = False
            self._grad_sum += np.sqrt(self._tail_norms, dtype=np.float64)
        if not k:
            return
        ring, count = self._ring[:k], self._ring_count
        if count:
            per_batch = np.square(ring[:, :count]) @ self._w_layer  # (k, L) ‖dW[l]‖²
            self._grad_sum += np.sqrt(per_batch).sum(axis=0, dtype=np.float64)
        else:  # left by the update, as the large way's
            self._grad_sum += np.sqrt(self._ring_norms[:k], dtype=np.float64).sum(axis=0)
        self._batches += k
        self._rows += k * self._m
        rows = ring[:, self._skip :]  # (k, m·Σn): the activation blocks of k batches
        sums = np.dot(self._ones[:k], rows)  # (m·Σn,) Σ over the k batches
        self._unit_sum += np.bincount(self._unit_at, sums, self._units)
        squares = np.einsum("ij,ij->j", rows, rows)  # (m·Σn,) Σ a² in one pass
        # each layer's values are contiguous in a block: one reduceat (np.bincount by
        # layer took 17-23 us here)
        self._squares += np.add.reduceat(squares, self._value_starts, dtype=np.float64)
        for i, part in self._leaky:  # leaky_relu: alive once any a (so any z) is > 0
            n = self.sizes[i]
            self._alive[i] |= rows[:, part].reshape(-1, n).max(axis=0) > 0
        for i, part, low, high in self._bounded:
            values = rows[:, part]
            self._saturated[i] += np.count_nonzero(values <= low)
            self._saturated[i] += np.count_nonzero(values >= high)

    def end_epoch(self, snapshot: bool) -> list[dict[str, Any]]:
        """The finished epoch's statistics (see the module docstring); starts the next.
        Values that overflowed (a run about to diverge) come out as None."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self._statistics(snapshot)

    def _statistics(self, snapshot: bool) -> list[dict[str, Any]]:
        self.flush()
        self._fold()
        depth = len(self.sizes)
        flat = self.network.params[: self.network.weight_count]
        delta = np.subtract(flat, self._start, out=self._start)  # in place: no 940 KB allocation
        cells = self._weight_cells
        for i, (start, stop) in enumerate(self._w_bounds):
            own, step = flat[start:stop], delta[start:stop]
            own.dot(own, out=cells[i])
            step.dot(step, out=cells[depth + i])
        # ‖v‖ as np.linalg.norm computes it (sqrt of the flat vector's dot with itself,
        # in its dtype), without its per-call checks: the same float.
        roots = np.sqrt(self._weight_squares).tolist()
        norms, moves = roots[:depth], roots[depth:]
        grad_sums, squares, saturated = (
            self._grad_sum.tolist(),
            self._squares.tolist(),
            self._saturated.tolist(),
        )
        batches = max(self._batches, 1)
        # relu: a >= 0, so a unit is alive (some z > 0) exactly when its Σa is above 0.
        positive = self._unit_sum > 0
        histograms = self._histograms(flat) if snapshot else []
        layers = []
        for i, (kind, n) in enumerate(zip(self.kinds, self.sizes, strict=True)):
            norm, values = norms[i], max(self._rows * n, 1)
            # softmax: each row of a sums to 1, so the mean is 1/n (its sums are not kept)
            mean = 1.0 / n if kind == "softmax" else float(self._unit_sums[i].sum()) / values
            variance = max(squares[i] / values - mean * mean, 0.0)
            alive = self._alive[i] if kind == "leaky_relu" else positive[self._unit_slices[i]]
            layer: dict[str, Any] = {
                "weight_norm": _finite(norm),
                "grad_norm": _finite(grad_sums[i] / batches),
                "update_ratio": _finite(moves[i] / norm) if norm > 0 else None,
                "activation_mean": _finite(mean),
                "activation_std": _finite(math.sqrt(variance)),
                "dead_fraction": ((n - np.count_nonzero(alive)) / n if kind in RECTIFIED else None),
                "saturated_fraction": saturated[i] / values if kind in BOUNDED else None,
            }
            if snapshot:
                layer["histogram"] = histograms[i]
                if kind in RECTIFIED:
                    layer["dead_units"] = np.flatnonzero(~alive)[:MAX_DEAD_LISTED].tolist()
            layers.append(layer)
        np.copyto(self._start, flat)
        self._reset()
        return layers

    def _histograms(self, flat: Array) -> list[dict[str, Any]]:
        """``histogram`` of every W[l], from the flat weights: the same counts. A small
        network's take the same two dozen NumPy calls whatever its depth (np.histogram's
        own checks cost ~40 us a layer: 117 -> 36 us on 64-64-64-10); a large one's go
        through np.histogram, whose float32 passes beat these float64 ones (1.1 against
        2.1 ms on 784-256-128-10)."""
        weights = self.network.weights
        if self._large:
            return [histogram(w) for w in weights]
        lows = np.minimum.reduceat(flat, self._w_starts).astype(np.float64)
        highs = np.maximum.reduceat(flat, self._w_starts).astype(np.float64)
        spans = highs - lows
        if not np.isfinite(spans).all():  # not expected: the loop ends such a run first
            return [histogram(w) for w in weights]
        # np.histogram's edges: np.linspace(low, high, BINS + 1) in the weights' dtype.
        edges = (_EDGE_STEPS * (spans / HISTOGRAM_BINS)[:, None] + lows[:, None]).astype(flat.dtype)
        edges[:, -1] = highs
        if not (np.diff(edges[spans > 0], axis=1) > 0).all():  # a span of a few ulps
            return [histogram(w) for w in weights]
        # Each value's bin from its position, then moved by one where that is across an
        # edge (rounding), as np.histogram does: bins are [edge_i, edge_i+1), the last
        # one closed.
        spread = np.where(spans > 0, spans, 1.0)
        position = np.subtract(flat, np.repeat(lows, self._w_sizes))  # float64
        position /= np.repeat(spread, self._w_sizes)
        position *= HISTOGRAM_BINS
        bins = position.astype(np.intp)
        np.minimum(bins, HISTOGRAM_BINS - 1, out=bins)
        at = bins + self._edge_base  # each value's left edge in the flat edges
        flat_edges = edges.reshape(-1)
        below = flat < flat_edges[at]
        bins -= below
        at -= below
        at += 1  # the right edge
        bins += (flat >= flat_edges[at]) & (bins < HISTOGRAM_BINS - 1)
        bins += self._bin_base
        counts = np.bincount(bins, minlength=len(weights) * HISTOGRAM_BINS)
        counts = counts.reshape(-1, HISTOGRAM_BINS)
        for i in np.flatnonzero(spans == 0):  # equal values: the middle bin, as np.histogram
            counts[i] = 0
            counts[i, HISTOGRAM_BINS // 2] = weights[i].size
        return [
            {"low": low, "high": high, "counts": row}
            for low, high, row in zip(lows.tolist(), highs.tolist(), counts.tolist(), strict=True)
        ]


_EDGE_STEPS = np.arange(HISTOGRAM_BINS + 1, dtype=np.float64)


def histogram(w: Array) -> dict[str, Any]:
    """HISTOGRAM_BINS equal bins from min(w) to max(w): {"low", "high", "counts"}, the
    counts np.histogram gives; equal values all in the middle bin; a span of a few ulps
    (no distinct edges in w's dtype, where np.histogram refuses) by each value's
    position, ⌊BINS·(v - low)/(high - low)⌋ (the top value in the last bin)."""
    low, high = float(w.min()), float(w.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        return {"low": None, "high": None, "counts": []}
    if high == low:  # np.histogram's range would be (low - 0.5, high + 0.5)
        counts = [0] * HISTOGRAM_BINS
        counts[HISTOGRAM_BINS // 2] = int(w.size)
        return {"low": low, "high": high, "counts": counts}
    try:
        binned, _ = np.histogram(w, bins=HISTOGRAM_BINS, range=(low, high))
    except ValueError:  # a span of a few ulps: no distinct edges in w's dtype
        position = (w.astype(np.float64).ravel() - low) * (HISTOGRAM_BINS / (high - low))
        bins = np.minimum(position.astype(np.intp), HISTOGRAM_BINS - 1)
        binned = np.bincount(bins, minlength=HISTOGRAM_BINS)
    return {"low": low, "high": high, "counts": binned.tolist()}


def _finite(value: float) -> float | None:
    """value as a float, or None when it is NaN or infinite (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None
