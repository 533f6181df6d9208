"""Optimizers over the flat parameter vector, from the simplest to the most complex, and
the whole parameter update of a training step.

Each optimizer builds its state aligned with ``params`` (same shape and dtype) in
``__init__`` and updates ``params`` in place in ``step(params, grads)``; ``grads`` is
used as scratch space and holds garbage afterwards. The learning rate is an attribute so
that a schedule can change it between epochs. ``state()`` / ``load_state()`` expose the
arrays and counters a checkpoint must keep.

Large vectors are updated in chunks of 64 Ki elements: each chunk goes through every ufunc
of the update while it is still in cache, instead of streaming all of memory once per
ufunc. Smaller chunks fit L2 better but cost more ufunc calls (about a microsecond each):
on a 2.1 M parameter Adam step, 16 Ki chunks took 4.3 ms and 64 Ki chunks 2.5 ms.

The update runs on the calling thread. Sharing the chunks out among threads was measured
and dropped: inside a training run it gained nothing (1024-1024-1024-10, batch 256, Adam:
10,372 samples/s on one thread, 10,321 on two; SGD 12,449 and 12,419) and lost up to 10%
when the machine was busy, because OpenBLAS's own threads spin on the other core for a
while after every matrix product.

The update after backward (``make_update``), with the flat gradient g of the mean data
loss laid out like ``Network.params``:

1. L2 (l2 > 0): g_W += l2·W for every weight matrix — the gradient of the penalty
   (l2 / 2)·Σ_l ‖W[l]‖²_F; biases are not penalised. The weights are the first
   ``weight_count`` entries of the flat vector, so this is one slice, not L slices.
2. Clipping (clip_norm = c): if ‖g‖₂ > c, g ← g·c/‖g‖₂ (one global norm over all layers,
   penalty included).
3. The optimizer's step.

With a ``Gauge`` (the per-layer statistics of ``app.engine.diagnostics``) the update
first leaves each weight matrix's ‖g_W‖² of the data loss: with neither penalty nor
clipping one dot per matrix before the optimizer's pass (which then reads the gradient
from cache), else chunk by chunk in the first pass; the update's result is the same with
and without it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.engine.errors import ConfigError


class Hyperparameters(Protocol):
    """What an optimizer reads of its options (``app.engine.options.Hyperparameters``)."""

    @property
    def learning_rate(self) -> float: ...
    @property
    def momentum(self) -> float: ...
    @property
    def nesterov(self) -> bool: ...
    @property
    def beta1(self) -> float: ...
    @property
    def beta2(self) -> float: ...
    @property
    def epsilon(self) -> float: ...


Array = npt.NDArray[np.floating[Any]]
Pieces = list[tuple[Array, ...]]
CHUNK = 65536  # elements per piece of a large update (see the module docstring)


def _chunks(*arrays: Array, cuts: Sequence[int] = ()) -> list[tuple[Array, ...]]:
    """Aligned views of the arrays in CHUNK-sized pieces (one piece for small vectors);
    no piece straddles a position in ``cuts``."""
    size = arrays[0].size
    pieces: list[tuple[Array, ...]] = []
    for low, high in pairwise(sorted({0, size, *cuts})):
        step = high - low if high - low <= 2 * CHUNK else CHUNK
        pieces += [
            tuple(a[start : min(start + step, high)] for a in arrays)
            for start in range(low, high, step)
        ]
    return pieces


class Gauge:
    """Where a step leaves ‖g[start:stop]‖² for each (start, stop) in ``bounds`` (the
    weight matrices of the flat vector): the per-layer gradient norms of the diagnostics.

    squares: (len(bounds),) of the gradient's dtype, overwritten at every step, and
    ``cells``, its 0-d views, one per bound, which a dot writes into (``g.dot(g, out=)``
    skips NumPy's function dispatch and the boxing of a scalar: ~0.5 us of a dot's ~1
    us of overhead). Its owner may point both at another row between steps (``use``).
    """

    def __init__(self, bounds: Sequence[tuple[int, int]], squares: Array) -> None:
        self.bounds = list(bounds)
        self.cuts = sorted({edge for bound in self.bounds for edge in bound})
        self.squares = squares
        self.cells = cells_of(squares)

    def use(self, squares: Array, cells: list[Array]) -> None:
        """Leave the next steps' squares in ``squares`` (``cells``: ``cells_of(squares)``)."""
        self.squares, self.cells = squares, cells

    def layers_of(self, pieces: Pieces) -> list[int]:
        """For consecutive pieces from offset 0, cut at ``cuts``: the index of the bound
        that holds each, or -1."""
        layers, start = [], 0
        for piece in pieces:
            layers.append(next((i for i, (a, b) in enumerate(self.bounds) if a <= start < b), -1))
            start += piece[0].size
        return layers

    def measure(self, pieces: Pieces, layers: Sequence[int], sums: npt.NDArray[np.float64]) -> None:
        """squares[l] = Σ ‖g‖² over the pieces of bound l (g: each piece's second array),
        summed in ``sums`` (float64 scratch, (len(bounds),))."""
        sums.fill(0.0)
        for piece, layer in zip(pieces, layers, strict=True):
            if layer >= 0:
                sums[layer] += piece[1].dot(piece[1])
        self.squares[...] = sums


def cells_of(row: Array) -> list[Array]:
    """The 0-d views of a 1-D array's entries, for ``dot(..., out=)``."""
    return [row[i, ...] for i in range(row.shape[0])]


class Optimizer:
    """Base class: the learning rate, kept as a 0-d array of the parameter dtype, and the
    aligned chunks of (params, grads, *state) that ``step`` works through."""

    def __init__(self, params: Array, options: Hyperparameters) -> None:
        self._neg_lr = np.zeros((), dtype=params.dtype)
        self._rate = 0.0  # the learning rate as stored (in the parameter dtype), as a float
        self.learning_rate = options.learning_rate
        self._cut_for: tuple[Array, Array] | None = None
        self._pieces: Pieces = []
        self._gauge: Gauge | None = None
        self._gauged: list[Array] = []  # the gradient's views of the gauge's bounds

    @property
    def learning_rate(self) -> float:
        return self._rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._neg_lr[...] = -value
        self._rate = -float(self._neg_lr)

    def gauge(self, gauge: Gauge | None) -> None:
        """Have every later step fill ``gauge`` from the gradient it is given, as that
        step reads it (before it is used as scratch); None stops."""
        self._gauge, self._cut_for = gauge, None

    def _cut(self, params: Array, grads: Array) -> Pieces:
        """Chunks of (params, grads, *state arrays), cut once for this pair of vectors."""
        if self._cut_for is None or self._cut_for[0] is not params or self._cut_for[1] is not grads:
            # Not cut at the gauge's bounds: it reads whole matrices before the pass.
            self._pieces = _chunks(params, grads, *self.state()[1].values())
            self._cut_for = (params, grads)
            if self._gauge is not None:
                self._gauged = [grads[start:stop] for start, stop in self._gauge.bounds]
        return self._pieces

    def step(self, params: Array, grads: Array) -> None:
        """Update ``params`` in place from ``grads`` (which is left as scratch)."""
        pieces = self._cut(params, grads)
        if self._gauge is not None:
            # Whole matrices, before the pass: fewer calls than one dot per chunk just
            # before the pass reads it, and measured cheaper inside the training loop.
            for g, cell in zip(self._gauged, self._gauge.cells, strict=True):
                g.dot(g, out=cell)
        self._update(pieces)

    def _update(self, pieces: Pieces) -> None:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, Array]]:
        """(JSON-safe counters, arrays) to checkpoint."""
        return {}, {}

    def load_state(self, counters: dict[str, Any], arrays: dict[str, Array]) -> None:
        """Restore what ``state()`` returned."""


class SGD(Optimizer):
    """p ← p - lr·g."""

    def _update(self, pieces: Pieces) -> None:
        for p, g in pieces:
            sgd_pass(p, g, self._neg_lr)


class Momentum(Optimizer):
    """v ← μ·v - lr·g, then p ← p + v, or with nesterov p ← p + μ·v - lr·g (using the new v).

    The velocity formulation of Sutskever et al. (also scikit-learn's and Keras's).
    """

    def __init__(self, params: Array, options: Hyperparameters) -> None:
        super().__init__(params, options)
        self.velocity = np.zeros_like(params)
        self.nesterov = options.nesterov
        self._mu = np.array(options.momentum, dtype=params.dtype)

    def _update(self, pieces: Pieces) -> None:
        for p, g, v in pieces:
            momentum_pass(p, g, v, self._neg_lr, self._mu, self.nesterov)

    def state(self) -> tuple[dict[str, Any], dict[str, Array]]:
        return {}, {"velocity": self.velocity}

    def load_state(self, counters: dict[str, Any], arrays: dict[str, Array]) -> None:
        self.velocity[...] = arrays["velocity"]


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), ε added to the corrected √v̂:

    m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²;  t ← t + 1
    p ← p - lr·m̂ / (√v̂ + ε) with m̂ = m / (1-β1^t), v̂ = v / (1-β2^t),

    evaluated as p ← p - lr·(√(1-β2^t) / (1-β1^t))·m / (√v + ε·√(1-β2^t)), which is the
    same expression with the corrections folded into two scalars.
    """

    def __init__(self, params: Array, options: Hyperparameters) -> None:
        super().__init__(params, options)
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.t = 0
        self.beta1, self.beta2, self.epsilon = options.beta1, options.beta2, options.epsilon
        dtype = params.dtype
        self._one_minus_b1 = np.array(1.0 - self.beta1, dtype=dtype)
        self._one_minus_b2 = np.array(1.0 - self.beta2, dtype=dtype)
        self._neg_step = np.zeros((), dtype=dtype)
        self._eps_hat = np.zeros((), dtype=dtype)
        self._scratch = np.empty(min(params.size, 2 * CHUNK), dtype=dtype)  # the largest piece

    def step(self, params: Array, grads: Array) -> None:
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = math.sqrt(1.0 - self.beta2**self.t)  # correctly rounded, as np.sqrt is
        self._neg_step[...] = -self._rate * c2 / c1
        self._eps_hat[...] = self.epsilon * c2
        super().step(params, grads)

    def _update(self, pieces: Pieces) -> None:
        b1, b2, eps, step = self._one_minus_b1, self._one_minus_b2, self._eps_hat, self._neg_step
        for p, g, m, v in pieces:
            adam_pass(p, g, m, v, self._scratch[: p.size], b1, b2, eps, step)

    def state(self) -> tuple[dict[str, Any], dict[str, Array]]:
        return {"t": self.t}, {"m": self.m, "v": self.v}

    def load_state(self, counters: dict[str, Any], arrays: dict[str, Array]) -> None:
        self.t = int(counters["t"])
        self.m[...] = arrays["m"]
        self.v[...] = arrays["v"]


# --- the elementwise passes, over any arrays that broadcast: a flat piece with 0-d
# constants here, the stacked members of a pack with a column of rates (app/engine/pack.py)


def sgd_pass(p: Array, g: Array, neg_lr: Array) -> None:
    """p ← p - lr·g (``g`` left as scratch)."""
    np.multiply(g, neg_lr, out=g)
    np.add(p, g, out=p)


def momentum_pass(p: Array, g: Array, v: Array, neg_lr: Array, mu: Array, nesterov: bool) -> None:
    """v ← μ·v - lr·g; p ← p + v, or p + μ·v - lr·g with nesterov (``g`` as scratch)."""
    np.multiply(g, neg_lr, out=g)  # g ← -lr·g
    np.multiply(v, mu, out=v)
    np.add(v, g, out=v)  # v ← μ·v - lr·g
    if nesterov:
        np.add(p, g, out=p)
        np.multiply(v, mu, out=g)
        np.add(p, g, out=p)  # p ← p + μ·v - lr·g
    else:
        np.add(p, v, out=p)  # p ← p + v


def adam_pass(
    p: Array,
    g: Array,
    m: Array,
    v: Array,
    tmp: Array,
    one_minus_b1: Array,
    one_minus_b2: Array,
    eps_hat: Array,
    neg_step: Array,
) -> None:
    """Adam's step with the corrections folded into ``eps_hat`` and ``neg_step`` (see
    ``Adam``); ``g`` and ``tmp`` (p's shape) are scratch."""
    np.subtract(g, m, out=tmp)
    np.multiply(tmp, one_minus_b1, out=tmp)
    np.add(m, tmp, out=m)  # m ← m + (1-β1)(g - m)
    np.multiply(g, g, out=g)
    np.subtract(g, v, out=g)
    np.multiply(g, one_minus_b2, out=g)
    np.add(v, g, out=v)  # v ← v + (1-β2)(g² - v)
    np.sqrt(v, out=g)
    np.add(g, eps_hat, out=g)
    np.divide(m, g, out=g)
    np.multiply(g, neg_step, out=g)
    np.add(p, g, out=p)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def get(name: str) -> type[Optimizer]:
    """The optimizer class called ``name``; ConfigError listing the valid names if none."""
    if name not in OPTIMIZERS:
        valid = ", ".join(OPTIMIZERS)
        raise ConfigError(
            f"unknown optimizer {name!r}; valid optimizers: {valid}", ("optimizer", "name")
        )
    return OPTIMIZERS[name]


# --- the whole update: L2 penalty, clipping, then the optimizer's step ---------------------


class NonFiniteGradient(ArithmeticError):
    """The gradient norm is NaN or infinite (only computed when clipping)."""


def make_update(
    optimizer: Optimizer,
    params: Array,
    grads: Array,
    weight_count: int,
    l2: float,
    clip_norm: float | None,
    gauge: Gauge | None = None,
) -> Callable[[], None]:
    """A no-argument function applying steps 1-3 (module docstring) to ``params``.

    params / grads: flat vectors laid out like ``Network.params``, the weights in the
    first ``weight_count`` entries. Without penalty and clipping the function is the
    optimizer's step itself (no Python in between). The penalty goes through the weights
    in chunks, like the optimizers, with one chunk of scratch space.

    ``gauge`` (the diagnostics' gradient norms) is filled from the data loss's gradient,
    before penalty and clipping: by the optimizer's step (one dot per matrix before its
    pass) without either, else by the penalty's first chunked pass; clipping alone
    (whose norm is one call over the whole vector, kept as it is so that diagnostics
    change no result) gets a pass of its own.
    """
    step = optimizer.step
    if not l2 and clip_norm is None:
        optimizer.gauge(gauge)
        return functools.partial(step, params, grads)
    optimizer.gauge(None)
    cuts = gauge.cuts if gauge is not None else ()
    penalised = _chunks(params[:weight_count], grads[:weight_count], cuts=cuts)
    layers = gauge.layers_of(penalised) if gauge is not None else [-1] * len(penalised)
    scratch = np.empty(max(w.size for w, _ in penalised), dtype=params.dtype)
    l2_array = np.array(l2, dtype=params.dtype)
    sums = np.zeros(len(gauge.bounds) if gauge is not None else 0)  # the chunks' ‖g‖², float64

    def update() -> None:
        if gauge is not None:
            if l2:
                sums.fill(0.0)
            else:
                gauge.measure(penalised, layers, sums)
        if l2:
            for (w, g), layer in zip(penalised, layers, strict=True):
                if layer >= 0 and gauge is not None:
                    sums[layer] += g.dot(g)  # ‖dL/dW‖², before the penalty
                decay = scratch[: w.size]
                np.multiply(w, l2_array, out=decay)
                np.add(g, decay, out=g)  # g_W += l2·W
            if gauge is not None:
                gauge.squares[...] = sums
        if clip_norm is not None:
            norm = math.sqrt(float(np.dot(grads, grads)))
            if not math.isfinite(norm):
                raise NonFiniteGradient
            if norm > clip_norm:
                np.multiply(grads, clip_norm / norm, out=grads)  # g ← g·c/‖g‖₂
        step(params, grads)

    return update
