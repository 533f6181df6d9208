"""Forward and backward propagation over a minibatch, in preallocated buffers.

Arrays hold one sample per row, so every matrix is the transpose of the primer's
column-per-sample one: Z (m, n[l]) = A_prev (m, n[l-1]) · W[l]ᵀ + b[l] is the primer's
z = W a + b for m samples at once, and dW = dZᵀ · A_prev is its dZ · a_prevᵀ. W[l] keeps
the primer's (n[l], n[l-1]) layout; BLAS reads W[l]ᵀ as a transposed view, no copy.

A ``Workspace`` owns the buffers for one batch size m and is reused for every batch of
that size, so a training step allocates nothing and makes a handful of NumPy calls per
layer: that call count, not arithmetic, is what bounds the speed of small networks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from app.engine import activations, losses

if TYPE_CHECKING:
    from app.engine.network import Network

Array = npt.NDArray[np.floating[Any]]


class Workspace:
    """Buffers and the forward / backward pass for batches of exactly ``m`` rows.

    ``grads`` is the flat gradient vector, laid out like ``network.params``; backward
    writes dL/dW[l] and dL/db[l] into views of it.
    """

    def __init__(self, network: Network, m: int, grads: Array) -> None:
        dtype = network.dtype
        sizes = network.layer_sizes
        self.m = m
        self.weights = network.weights
        self.biases = network.bias_rows
        self.weights_t = [w.T for w in network.weights]
        self.forward_fns = [activations.ACTIVATIONS[name] for name in network.activations]
        self.derivatives = [activations.DERIVATIVES[name] for name in network.activations]
        loss = losses.LOSSES[network.loss]
        self.fused = loss.fused_activation == network.activations[-1]
        self.scale = np.array(loss.delta_scale(m, sizes[-1]), dtype=dtype)
        # Forward keeps what backward needs: each layer's output a[l]; hidden layers
        # compute z in place and overwrite it with a = g(z), as g' is computed from a.
        self.a = [np.empty((m, n), dtype=dtype) for n in sizes]
        self.z_out = np.empty((m, sizes[-1]), dtype=dtype)
        self.delta = [np.empty((m, n), dtype=dtype) for n in sizes]
        self.delta_t = [d.T for d in self.delta]
        self.da = [np.empty((m, n), dtype=dtype) for n in sizes]
        self.ones = np.ones(m, dtype=dtype)
        self.dw, self.db = network.split_flat(grads)

    def forward(self, x: Array, z_out: Array | None = None) -> Array:
        """x (m, n[0]) C-contiguous, network dtype -> a[L] (m, n[L]) (a buffer, reused).

        The output layer's z[L] goes to ``z_out`` (m, n[L]) when given, so the trainer can
        keep the logits of a whole epoch for its metrics without copying them.
        """
        last = len(self.weights) - 1
        a_prev = x
        for i in range(last):
            a = self.a[i]
            np.dot(a_prev, self.weights_t[i], out=a)  # z = a_prev·Wᵀ
            np.add(a, self.biases[i], out=a)  #        + b
            self.forward_fns[i](a, a)  # a = g(z), in place
            a_prev = a
        z = self.z_out if z_out is None else z_out
        np.dot(a_prev, self.weights_t[last], out=z)
        np.add(z, self.biases[last], out=z)
        self.forward_fns[last](z, self.a[last])
        return self.a[last]

    def backward(self, x: Array, y: Array) -> None:
        """Gradients of the mean loss for the batch last passed to ``forward``.

        x (m, n[0]) as given to forward; y (m, n[L]) encoded targets. Writes dL/dW[l]
        (n[l], n[l-1]) and dL/db[l] (n[l],) into the flat gradient vector.
        """
        last = len(self.weights) - 1
        d = self.delta[last]
        if self.fused:
            # sigmoid + binary_crossentropy, softmax + categorical_crossentropy: g'(z)
            # cancels the loss's 1/(a(1-a)) and dL/dz is simply (a - y)·s (s holds the 1/m).
            np.subtract(self.a[last], y, out=d)
            np.multiply(d, self.scale, out=d)
        else:
            # mse: dL/da = 2(a - y)/(m·k), then dZ = dA * g'(z).
            da = self.da[last]
            np.subtract(self.a[last], y, out=da)
            np.multiply(da, self.scale, out=da)
            self.derivatives[last](self.a[last], da, d)
        for i in range(last, -1, -1):
            a_prev = x if i == 0 else self.a[i - 1]
            # The 1/m of the primer's dW = (1/m)·dZ·a_prevᵀ and db = mean(dZ) is in d.
            np.dot(self.delta_t[i], a_prev, out=self.dw[i])  # dW = dZᵀ·A_prev
            np.dot(self.ones, self.delta[i], out=self.db[i])  # db = Σ_i dZ_i
            if i > 0:
                np.dot(self.delta[i], self.weights[i], out=self.da[i - 1])  # dA_prev = dZ·W
                self.derivatives[i - 1](self.a[i - 1], self.da[i - 1], self.delta[i - 1])
