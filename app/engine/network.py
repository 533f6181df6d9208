"""The network: a stack of dense layers, its parameters, and forward and backward
propagation — the primer's equations, each written as a comment beside its line.

Layer l computes z[l] = W[l]·a[l-1] + b[l] and a[l] = g[l](z[l]), with W[l] of shape
(n[l], n[l-1]) and b[l] of shape (n[l],) as in the primer. All parameters live in one
flat vector ``params`` laid out [W1, ..., WL, b1, ..., bL]; ``weights`` and ``biases`` are
views into it, so an optimizer updates every parameter with a few whole-vector ufunc
calls and the L2 penalty touches the weights as one contiguous slice.

Arrays hold one sample per row, so every matrix is the transpose of the primer's
column-per-sample one: Z (m, n[l]) = A_prev (m, n[l-1]) · W[l]ᵀ + b[l] is the primer's
z = W a + b for m samples at once, and dW = dZᵀ · A_prev is its dZ · a_prevᵀ. W[l] keeps
the primer's (n[l], n[l-1]) layout; BLAS reads W[l]ᵀ as a transposed view, no copy.

There is one forward loop, ``Network.propagate``. Inference lets it allocate each layer's
output; training hands it the buffers of a ``Workspace``, which keeps what backward needs
(every a[l]) for one batch size m, so a training step allocates nothing and makes a
handful of NumPy calls per layer: that call count, not arithmetic, is what bounds the
speed of small networks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.typing import DTypeLike

from app.engine import activations, architecture, initializers, losses
from app.engine.errors import ConfigError, DataError

Array = npt.NDArray[np.floating[Any]]
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """float32 (the default, fast) or float64; ConfigError for anything else."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in DTYPES:
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}", ("dtype",))
    return resolved


CACHE_LINE = 64  # bytes


def aligned_zeros(size: int, dtype: np.dtype[Any]) -> Array:
    """A zeroed 1-D array of ``size`` values that starts on a cache line.

    NumPy places a large array 16 bytes past a page boundary; OpenBLAS's dot and
    matrix-vector kernels run about a fifth faster over a vector that starts on a cache
    line (an sdot over 200,704 float32 values: 12.5 -> 10 us on the benchmark machine,
    BENCHMARKS.md "diagnostics-calls-1215"); the results do not depend on it.
    """
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(size + CACHE_LINE // itemsize, dtype=dtype)
    skip = (-raw.ctypes.data % CACHE_LINE) // itemsize
    return raw[skip : skip + size]


def _parse(
    input_size: int,
    layers: Sequence[Mapping[str, Any]],
    loss: str | None,
    init: str,
    seed: int,
) -> architecture.Architecture:
    """The checked architecture; ConfigError for it or for the seed."""
    arch = architecture.parse(input_size, layers, loss, init)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}", ("seed",))
    return arch


def _config(
    input_size: int,
    sizes: Sequence[int],
    kinds: Sequence[str],
    loss: str,
    init: str,
    seed: int,
) -> dict[str, Any]:
    """A network's JSON-safe description (``Network.get_config``)."""
    return {
        "input_size": input_size,
        "layers": [{"units": n, "activation": act} for n, act in zip(sizes, kinds, strict=True)],
        "loss": loss,
        "init": init,
        "seed": seed,
    }


class Network:
    """A fully connected network (see the module docstring for the layout).

    layers: [{"units": n[l], "activation": name}, ...] for l = 1..L. ``loss`` defaults
    from the output activation. Raises ConfigError naming the layer for impossible
    combinations (softmax in a hidden layer or over one unit, cross-entropy on an output
    it cannot apply to, unknown names).
    """

    def __init__(
        self,
        input_size: int,
        layers: Sequence[Mapping[str, Any]],
        loss: str | None = None,
        init: str = "auto",
        seed: int = 0,
        dtype: DTypeLike = np.float32,
    ) -> None:
        arch = _parse(input_size, layers, loss, init, seed)
        self.dtype = check_dtype(dtype)
        self.input_size = arch.input_size
        self.layer_sizes = list(arch.layer_sizes)
        self.activations = list(arch.activations)
        self.loss = arch.loss
        self.init = arch.init
        self.seed = seed
        fan_in = [self.input_size, *self.layer_sizes[:-1]]
        self.weight_count = sum(
            n * n_prev for n, n_prev in zip(self.layer_sizes, fan_in, strict=True)
        )
        self._adopt(np.zeros(self.weight_count + sum(self.layer_sizes), dtype=self.dtype))
        initializers.initialize(self.weights, self.biases, self.activations, self.init, seed)

    def _adopt(self, params: Array) -> None:
        """Make ``params`` (laid out as described above) this network's parameters."""
        self.params: Array = params
        self.weights, self.biases = self.split_flat(self.params)
        # b[l] as (1, n[l]) rows: adding a row to z (m, n[l]) skips NumPy's dimension
        # padding, which is most of the cost of a bias add when m is small.
        self.bias_rows = [b.reshape(1, -1) for b in self.biases]
        self.weights_t = [w.T for w in self.weights]
        self.activation_fns = [activations.ACTIVATIONS[name] for name in self.activations]
        self._no_buffers: list[Array | None] = [None] * (self.depth - 1)

    # --- shape bookkeeping -----------------------------------------------------------

    @property
    def parameter_count(self) -> int:
        """Number of trainable scalars, Σ n[l]·(n[l-1] + 1)."""
        return int(self.params.size)

    @property
    def output_size(self) -> int:
        """n[L]."""
        return self.layer_sizes[-1]

    @property
    def depth(self) -> int:
        """L, the number of layers with parameters."""
        return len(self.layer_sizes)

    def split_flat(self, flat: Array) -> tuple[list[Array], list[Array]]:
        """Views W[l] (n[l], n[l-1]) and b[l] (n[l],) into a flat vector laid out like params."""
        weights, biases = [], []
        offset = 0
        for n, n_prev in zip(
            self.layer_sizes, [self.input_size, *self.layer_sizes[:-1]], strict=True
        ):
            weights.append(flat[offset : offset + n * n_prev].reshape(n, n_prev))
            offset += n * n_prev
        for n in self.layer_sizes:
            biases.append(flat[offset : offset + n])
            offset += n
        return weights, biases

    # --- configuration ---------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """JSON-safe description; ``Network.from_config`` rebuilds the same network."""
        return _config(
            self.input_size, self.layer_sizes, self.activations, self.loss, self.init, self.seed
        )

    @staticmethod
    def describe(
        input_size: int,
        layers: Sequence[Mapping[str, Any]],
        loss: str | None = None,
        init: str = "auto",
        seed: int = 0,
    ) -> dict[str, Any]:
        """The ``get_config()`` of ``Network(input_size, layers, loss, init, seed)``, with
        the same checks and errors, but no weights allocated or initialised: a sweep
        checks every trial's network (1,000 trials of 784-256-128-10 took 3 s to build)."""
        arch = _parse(input_size, layers, loss, init, seed)
        return _config(
            arch.input_size, arch.layer_sizes, arch.activations, arch.loss, arch.init, seed
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dtype: DTypeLike = np.float32) -> Network:
        """A freshly initialised network from ``get_config()`` output (ConfigError if bad)."""
        if not isinstance(config, Mapping):
            raise ConfigError("network config must be an object", ())
        unknown = set(config) - {"input_size", "layers", "loss", "init", "seed"}
        if unknown:
            raise ConfigError(
                f"unknown network config key {sorted(unknown)[0]!r}", (sorted(unknown)[0],)
            )
        for key in ("input_size", "layers"):
            if key not in config:
                raise ConfigError(f"network config is missing {key!r}", (key,))
        return cls(
            config["input_size"],
            config["layers"],
            loss=config.get("loss"),
            init=config.get("init", "auto"),
            seed=config.get("seed", 0),
            dtype=dtype,
        )

    def copy(self) -> Network:
        """An independent network with the same configuration and parameters.

        Built without running the initializer, whose random draws would be overwritten at
        once: 46 ms of a 1024-1024-1024-10 copy, paid each time a trainer hands out a model.
        """
        twin = Network.__new__(Network)
        twin.dtype = self.dtype
        twin.input_size = self.input_size
        twin.layer_sizes = list(self.layer_sizes)
        twin.activations = list(self.activations)
        twin.loss, twin.init, twin.seed = self.loss, self.init, self.seed
        twin.weight_count = self.weight_count
        twin._adopt(self.params.copy())
        return twin

    def set_parameters(
        self, weights: Sequence[npt.ArrayLike], biases: Sequence[npt.ArrayLike]
    ) -> None:
        """Copy W[l] (n[l], n[l-1]) and b[l] (n[l],) in; ConfigError on any shape mismatch."""
        if len(weights) != self.depth or len(biases) != self.depth:
            raise ConfigError(
                f"expected {self.depth} weight matrices and bias vectors", ("weights",)
            )
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            w_arr, b_arr = np.asarray(w), np.asarray(b)
            if w_arr.shape != self.weights[i].shape:
                raise ConfigError(
                    f"W{i + 1} has shape {w_arr.shape}, the network needs {self.weights[i].shape}",
                    ("weights", i),
                )
            if b_arr.shape != self.biases[i].shape:
                raise ConfigError(
                    f"b{i + 1} has shape {b_arr.shape}, the network needs {self.biases[i].shape}",
                    ("biases", i),
                )
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            self.weights[i][...] = w
            self.biases[i][...] = b

    # --- computation -----------------------------------------------------------------

    def as_input(self, x: npt.ArrayLike, name: str = "x") -> Array:
        """x as a C-contiguous (m, n[0]) array of the network dtype; DataError if it is not."""
        if (  # the fast path: already what we need
            type(x) is np.ndarray
            and x.dtype == self.dtype
            and x.ndim == 2
            and x.shape[1] == self.input_size
            and x.flags.c_contiguous
        ):
            return x
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] != self.input_size:
            raise DataError(
                f"{name} must have shape (m, {self.input_size}), got {arr.shape}", (name,)
            )
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise DataError(f"{name} must be real numbers, got dtype {arr.dtype}", (name,))
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def propagate(
        self,
        x: Array,
        hidden: Sequence[Array | None],
        z_out: Array | None,
        a_out: Array | None,
    ) -> tuple[Array, Array]:
        """The forward pass: x (m, n[0]) C-contiguous, network dtype -> (z[L], a[L]).

        hidden[l-1] (m, n[l]) receives a[l] of hidden layer l (z[l] is computed in place
        and overwritten by g(z[l]), as g' is computed from a); z_out and a_out (m, n[L])
        receive z[L] and a[L]. A None buffer is allocated.
        """
        weights_t, biases, g = self.weights_t, self.bias_rows, self.activation_fns
        last = len(weights_t) - 1
        a = x  # a[0] = x
        for i in range(last):
            z = np.dot(a, weights_t[i], out=hidden[i])  # z[l] = a[l-1]·W[l]ᵀ
            np.add(z, biases[i], out=z)  # z[l] += b[l]
            g[i](z, z)  # a[l] = g[l](z[l]), in place
            a = z
        z = np.dot(a, weights_t[last], out=z_out)  # z[L] = a[L-1]·W[L]ᵀ
        np.add(z, biases[last], out=z)  # z[L] += b[L]
        out = np.empty_like(z) if a_out is None else a_out
        g[last](z, out)  # a[L] = g[L](z[L])
        return z, out

    def forward_output(self, x: npt.ArrayLike) -> tuple[Array, Array]:
        """x (m, n[0]) -> (z[L], a[L]), both (m, n[L]): logits and outputs."""
        return self.propagate(self.as_input(x), self._no_buffers, None, None)

    def forward(self, x: npt.ArrayLike) -> Array:
        """x (m, n[0]) -> a[L] (m, n[L])."""
        return self.forward_output(x)[1]

    def loss_value(self, x: npt.ArrayLike, y: npt.ArrayLike) -> float:
        """Mean loss (without any L2 penalty) of encoded targets y (m, n[L]) for inputs x."""
        z, a = self.forward_output(x)
        return losses.LOSSES[self.loss].value(z, a, np.asarray(y, dtype=self.dtype))

    def workspace(self, m: int, grads: Array, block: Array | None = None) -> Workspace:
        """Preallocated forward / backward buffers for batches of m rows (see Workspace)."""
        return Workspace(self, m, grads, block)

    def backward(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[list[Array], list[Array]]:
        """Gradients of the mean loss over the batch: ([dL/dW[l]], [dL/db[l]]).

        x (m, n[0]); y (m, n[L]) encoded targets (0/1, one-hot or real values).
        dL/dW[l] has W[l]'s shape (n[l], n[l-1]) and is (1/m)·dZ[l]·a[l-1]ᵀ in primer
        notation; dL/db[l] (n[l],) is the mean of dZ[l] over the batch.
        """
        xs = self.as_input(x)
        ys = np.ascontiguousarray(y, dtype=self.dtype)
        if ys.shape != (xs.shape[0], self.output_size):
            raise DataError(
                f"y must have shape ({xs.shape[0]}, {self.output_size}), got {ys.shape}", ("y",)
            )
        grads = np.zeros_like(self.params)
        work = self.workspace(xs.shape[0], grads)
        work.forward(xs)
        work.backward(xs, ys)
        return self.split_flat(grads)


class Workspace:
    """What a training step keeps between forward and backward, for batches of exactly
    ``m`` rows, and the backward pass.

    ``grads`` is the flat gradient vector, laid out like ``network.params``; backward
    writes dL/dW[l] and dL/db[l] into views of it. ``block`` (m·Σn values), when given,
    holds the activations a[1..L] one after another: the per-layer statistics
    (``diagnostics``) place it right after the gradient, so that one copy takes both.
    """

    def __init__(self, network: Network, m: int, grads: Array, block: Array | None = None) -> None:
        dtype, sizes = network.dtype, network.layer_sizes
        self.propagate = network.propagate
        self.weights = network.weights
        self.derivatives = [activations.DERIVATIVES[name] for name in network.activations]
        loss = losses.LOSSES[network.loss]
        self.fused = loss.fused_activation == network.activations[-1]
        self.scale = np.array(loss.delta_scale(m, sizes[-1]), dtype=dtype)
        self.m, self.sizes = m, sizes
        # Forward keeps what backward needs: each layer's output a[l], here as views of
        # one block (a[1], a[2], ... a[L] one after another).
        self.block = aligned_zeros(m * sum(sizes), dtype) if block is None else block
        ends = np.cumsum([0, *(m * n for n in sizes)]).tolist()
        self.a = [
            self.block[start:stop].reshape(m, n)
            for start, stop, n in zip(ends[:-1], ends[1:], sizes, strict=True)
        ]
        self.hidden: list[Array] = self.a[:-1]
        self.output = self.a[-1]
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
        z = self.z_out if z_out is None else z_out
        return self.propagate(x, self.hidden, z, self.output)[1]

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
            np.subtract(self.a[last], y, out=d)  # dZ[L] = a[L] - y
            np.multiply(d, self.scale, out=d)  # dZ[L] ·= s
        else:
            # mse: dL/da = 2(a - y)/(m·k), then dZ = dA * g'(z).
            da = self.da[last]
            np.subtract(self.a[last], y, out=da)  # dA[L] = a[L] - y
            np.multiply(da, self.scale, out=da)  # dA[L] ·= s
            self.derivatives[last](self.a[last], da, d)  # dZ[L] = dA[L] * g'(z[L])
        for i in range(last, -1, -1):
            a_prev = x if i == 0 else self.a[i - 1]
            # The 1/m of the primer's dW = (1/m)·dZ·a_prevᵀ and db = mean(dZ) is in d.
            np.dot(self.delta_t[i], a_prev, out=self.dw[i])  # dW[l] = dZ[l]ᵀ·A[l-1]
            np.dot(self.ones, self.delta[i], out=self.db[i])  # db[l] = Σ_i dZ[l]_i
            if i > 0:
                np.dot(self.delta[i], self.weights[i], out=self.da[i - 1])  # dA[l-1] = dZ[l]·W[l]
                # dZ[l-1] = dA[l-1] * g'(z[l-1])
                self.derivatives[i - 1](self.a[i - 1], self.da[i - 1], self.delta[i - 1])
