"""The issue's yardstick: a careful, hand-written NumPy MLP with no engine around it.

Independent of ``app.engine`` on purpose. It is what the engine issue calls "a careful
hand-written NumPy MLP": float32 throughout, every per-batch buffer preallocated, in-place
ufuncs (``out=``), rows shuffled once per epoch into a reused buffer with
``np.take(..., out=buf, mode="clip")`` so that batches are contiguous slices, and BLAS
doing the matrix products. It has no metrics, no stop flag, no callbacks, no
checkpoints, no divergence checks: the bare loop the engine must lose nothing to.

Relu hidden layers; a sigmoid unit with binary cross-entropy or a softmax with
categorical cross-entropy (fused output delta a - y); plain SGD or bias-corrected Adam.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

F32 = np.float32


class ReferenceMLP:
    def __init__(
        self,
        sizes: tuple[int, ...],
        batch: int,
        x: np.ndarray,
        targets: np.ndarray,
        optimizer: str,
        learning_rate: float,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.weights = [
            (rng.standard_normal((n, n_prev)) * np.sqrt(2.0 / n_prev)).astype(F32)
            for n_prev, n in pairwise(sizes)
        ]
        self.biases = [np.zeros((1, n), F32) for n in sizes[1:]]
        self.sigmoid = sizes[-1] == 1
        self.x, self.y = x, targets
        self.xs, self.ys = np.empty_like(x), np.empty_like(targets)
        self.rng = rng
        self.m = batch
        self.batches = x.shape[0] // batch  # whole batches only: one set of buffers
        self.position = self.batches  # start with a shuffle
        self.a = [np.empty((batch, n), F32) for n in sizes[1:]]
        self.delta = [np.empty((batch, n), F32) for n in sizes[1:]]
        self.mask = [np.empty((batch, n), F32) for n in sizes[1:]]
        self.d_weights = [np.empty_like(w) for w in self.weights]
        self.d_biases = [np.empty((n,), F32) for n in sizes[1:]]
        self.column = np.empty((batch, 1), F32)
        self.ones = np.ones(batch, F32)
        self.inv_m = F32(1.0 / batch)
        self.zero = F32(0.0)
        self.adam = optimizer == "adam"
        self.lr = F32(learning_rate)
        self.t = 0
        params = [*self.weights, *self.biases]
        self.moments = [np.zeros_like(p) for p in params] if self.adam else []
        self.squares = [np.zeros_like(p) for p in params] if self.adam else []
        self.scratch = [np.empty_like(p) for p in params] if self.adam else []

    def shuffle(self) -> None:
        order = self.rng.permutation(self.x.shape[0])
        np.take(self.x, order, axis=0, out=self.xs, mode="clip")
        np.take(self.y, order, axis=0, out=self.ys, mode="clip")
        self.position = 0

    def step(self) -> int:
        """One minibatch: forward, backward, update. Returns the rows trained."""
        if self.position >= self.batches:
            self.shuffle()
        start = self.position * self.m
        self.position += 1
        xb, yb = self.xs[start : start + self.m], self.ys[start : start + self.m]
        a, delta, w, b = self.a, self.delta, self.weights, self.biases
        last = len(w) - 1
        a_prev = xb
        for i in range(last + 1):
            np.dot(a_prev, w[i].T, out=a[i])
            np.add(a[i], b[i], out=a[i])
            if i < last:
                np.maximum(a[i], self.zero, out=a[i])
            a_prev = a[i]
        out = a[last]
        if self.sigmoid:
            np.negative(out, out=out)
            np.exp(out, out=out)
            np.add(out, 1.0, out=out)
            np.reciprocal(out, out=out)
        else:
            np.max(out, axis=1, keepdims=True, out=self.column)
            np.subtract(out, self.column, out=out)
            np.exp(out, out=out)
            np.sum(out, axis=1, keepdims=True, out=self.column)
            np.divide(out, self.column, out=out)
        np.subtract(out, yb, out=delta[last])
        np.multiply(delta[last], self.inv_m, out=delta[last])
        for i in range(last, -1, -1):
            a_prev = xb if i == 0 else a[i - 1]
            np.dot(delta[i].T, a_prev, out=self.d_weights[i])
            np.dot(self.ones, delta[i], out=self.d_biases[i])
            if i > 0:
                np.dot(delta[i], w[i], out=delta[i - 1])
                np.greater(a[i - 1], self.zero, out=self.mask[i - 1])
                np.multiply(delta[i - 1], self.mask[i - 1], out=delta[i - 1])
        self.update()
        return self.m

    def update(self) -> None:
        params = [*self.weights, *(b.reshape(-1) for b in self.biases)]
        grads = [*self.d_weights, *self.d_biases]
        if not self.adam:
            for p, g in zip(params, grads, strict=True):
                np.multiply(g, self.lr, out=g)
                np.subtract(p, g, out=p)
            return
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        # p -= lr·m̂/(√v̂ + ε), with both bias corrections folded into two scalars
        step = F32(self.lr * np.sqrt(1 - b2**self.t) / (1 - b1**self.t))
        eps_hat = F32(eps * np.sqrt(1 - b2**self.t))
        for p, g, m, v, s in zip(
            params, grads, self.moments, self.squares, self.scratch, strict=True
        ):
            v_flat, m_flat, s_flat = v.reshape(p.shape), m.reshape(p.shape), s.reshape(p.shape)
            np.multiply(m_flat, F32(b1), out=m_flat)
            np.multiply(g, F32(1 - b1), out=s_flat)
            np.add(m_flat, s_flat, out=m_flat)
            np.multiply(g, g, out=g)
            np.multiply(g, F32(1 - b2), out=g)
            np.multiply(v_flat, F32(b2), out=v_flat)
            np.add(v_flat, g, out=v_flat)
            np.sqrt(v_flat, out=s_flat)
            np.add(s_flat, eps_hat, out=s_flat)
            np.divide(m_flat, s_flat, out=s_flat)
            np.multiply(s_flat, step, out=s_flat)
            np.subtract(p, s_flat, out=p)
