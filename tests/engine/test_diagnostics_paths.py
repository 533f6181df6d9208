"""The per-layer statistics are gathered four ways (a ring of whole steps for small
networks; from RING_GRADS weights a ring of activations beside the update's gradient norms;
for large ones the gradient norms in the update (or the penalty's first chunked
pass) and the activation sums after backward, in rows folded every few steps; the short
last batch read in place). Every way gives
the same statistics, and none changes what training computes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from app.engine import diagnostics, optimizers
from app.engine.network import Network
from app.engine.training import OptimizerOptions, Trainer, TrainingOptions

OPTIMIZERS = [
    {"name": "sgd", "learning_rate": 0.1},
    {"name": "momentum", "learning_rate": 0.05, "momentum": 0.9},
    {"name": "momentum", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
    {"name": "adam", "learning_rate": 0.01},
]
UPDATES = [{}, {"l2": 0.01}, {"clip_norm": 0.05}, {"l2": 0.01, "clip_norm": 0.05}]


def train(
    optimizer: dict[str, Any], update: dict[str, Any], on: bool, dtype: Any = np.float64
) -> Trainer:
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    net = Network(
        4,
        [
            {"units": 7, "activation": "relu"},
            {"units": 5, "activation": "tanh"},
            {"units": 3, "activation": "softmax"},
        ],
        seed=2,
        dtype=dtype,
    )
    options = TrainingOptions(
        epochs=3,
        batch_size=16,  # 3 full batches and a short one of 2 rows
        validation_split=0.0,
        optimizer=OptimizerOptions(**optimizer),
        diagnostics=on,
        **update,
    )
    trainer = Trainer(net, x, y, options)
    trainer.run()
    return trainer


def statistics(trainer: Trainer) -> np.ndarray:
    """(epochs, layers, 5): grad_norm, activation_mean, activation_std, weight_norm,
    update_ratio; plus the dead and saturated fractions compared exactly."""
    keys = ("grad_norm", "activation_mean", "activation_std", "weight_norm", "update_ratio")
    return np.array([[[layer[k] for k in keys] for layer in e["layers"]] for e in trainer.history])


COUNTED = ("dead_fraction", "saturated_fraction")  # compared exactly, as counts
LISTED = ("dead_units", "histogram")  # snapshot epochs only


def assert_same_counts(a: Trainer, b: Trainer, keys: tuple[str, ...] = COUNTED) -> None:
    """Every epoch's layers of a and b agree exactly on ``keys``: the counts are in every
    layer's entry; a listed key absent from both (not a snapshot epoch) agrees."""
    for entry_a, entry_b in zip(a.history, b.history, strict=True):
        for la, lb in zip(entry_a["layers"], entry_b["layers"], strict=True):
            for key in keys:
                if key in COUNTED:
                    assert la[key] == lb[key], key
                else:
                    assert la.get(key) == lb.get(key), key


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("update", UPDATES, ids=lambda u: "-".join(u) or "plain")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_large_network_way_changes_no_weight_and_no_statistic(
    monkeypatch: pytest.MonkeyPatch, optimizer: dict[str, Any], update: dict[str, Any], dtype: Any
) -> None:
    off = train(optimizer, update, on=False, dtype=dtype)
    ring = train(optimizer, update, on=True, dtype=dtype)
    monkeypatch.setattr(diagnostics, "DIRECT_GRADS", 0)  # every network counts as large
    fused = train(optimizer, update, on=True, dtype=dtype)
    assert fused.loop.watch is not None and fused.loop.watch.gauge is not None
    assert ring.loop.watch is not None and ring.loop.watch.gauge is None
    np.testing.assert_array_equal(ring.network.params, off.network.params)
    np.testing.assert_array_equal(fused.network.params, off.network.params)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(statistics(fused), statistics(ring), rtol=rtol, atol=1e-7)
    assert_same_counts(fused, ring, COUNTED + LISTED)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_grad_norms_of_a_network_cut_into_many_chunks(l2: float) -> None:
    """Weights of 400·400 + 400 values: the first layer spans three chunks of the update
    and the second starts inside what would otherwise be one; each batch's norm is still
    ‖dL/dW[l]‖ of the data loss alone, the penalty left out."""
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(24, 400)), rng.integers(0, 2, 24)
    net = Network(
        400,
        [{"units": 400, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
        dtype=np.float64,
    )
    assert net.weight_count > 2 * optimizers.CHUNK
    reference = net.copy()
    options = TrainingOptions(
        epochs=1,
        batch_size=8,
        validation_split=0.0,
        standardize=False,
        shuffle=False,
        l2=l2,
        optimizer=OptimizerOptions(name="sgd", learning_rate=0.2),
    )
    trainer = Trainer(net, x, y, options)
    trainer.run()
    xs, ys = trainer.data.x, trainer.data.y
    norms = []
    for start in range(0, 24, 8):  # sgd replayed by hand: W -= rate·(dL/dW + l2·W)
        dw, db = reference.backward(xs[start : start + 8], ys[start : start + 8])
        norms.append([np.linalg.norm(g) for g in dw])
        for w, g in zip(reference.weights, dw, strict=True):
            w -= 0.2 * (g + l2 * w)
        for b, g in zip(reference.biases, db, strict=True):
            b -= 0.2 * g
    got = [layer["grad_norm"] for layer in trainer.history[0]["layers"]]
    np.testing.assert_allclose(got, np.mean(norms, axis=0), rtol=1e-10)
    np.testing.assert_allclose(net.params, reference.params, rtol=1e-10, atol=1e-14)


def test_chunks_never_straddle_a_cut_and_gauge_finds_each_piece_layer() -> None:
    size = 3 * optimizers.CHUNK + 1000
    cuts = [10, 2 * optimizers.CHUNK + 5, size - 7]
    a = np.arange(size, dtype=np.float64)
    pieces = optimizers._chunks(a, a, cuts=cuts)
    starts = np.cumsum([0, *(p[0].size for p in pieces)])
    assert starts[-1] == size and all(p[0].size <= 2 * optimizers.CHUNK for p in pieces)
    assert set(cuts) <= set(starts.tolist())
    np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), a)
    bounds = [(0, 10), (10, 2 * optimizers.CHUNK + 5)]
    gauge = optimizers.Gauge(bounds, np.zeros(2))
    layers = gauge.layers_of(pieces)
    gauge.measure(pieces, layers, np.zeros(2))
    expected = [float(a[lo:hi] @ a[lo:hi]) for lo, hi in bounds]
    np.testing.assert_allclose(gauge.squares, expected, rtol=1e-12)
    assert layers[0] == 0 and layers[-1] == -1


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_the_gauge_leaves_the_optimizers_pieces_as_they_are(name: str) -> None:
    """Two 300 x 300 layers (90,000 weights each, more than a chunk): the gauge reads whole
    matrices, so the optimizer's pieces are the same with diagnostics on and off (none
    cut at a matrix's bound), each fits Adam's scratch, and on and off train the same."""
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(16, 300)), rng.integers(0, 2, 16)
    layers = [{"units": 300, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]
    params, pieces = [], []
    for on in (False, True):
        net = Network(300, [{"units": 300, "activation": "relu"}, *layers], seed=1)
        options = TrainingOptions(
            epochs=2,
            batch_size=8,
            validation_split=0.0,
            optimizer=OptimizerOptions(name=name, learning_rate=0.01),
            diagnostics=on,
        )
        trainer = Trainer(net, x, y, options)
        trainer.run()
        params.append(net.params)
        pieces.append([p[0].size for p in trainer.loop.optimizer._pieces])
    assert trainer.loop.watch is not None and trainer.loop.watch.gauge is not None
    assert pieces[0] == pieces[1] and max(pieces[1]) <= 2 * optimizers.CHUNK
    assert sum(pieces[1]) == params[1].size
    np.testing.assert_array_equal(params[0], params[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_way_folded_every_few_steps_equals_the_ring(
    monkeypatch: pytest.MonkeyPatch, dtype: Any
) -> None:
    """A large network's per-step rows folded every 2 steps (so mid-epoch, and with the
    short last batch in a row of its own) give the ring's statistics; leaky_relu and
    sigmoid layers included."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(70, 6)), rng.integers(0, 2, 70)
    layers = [
        {"units": 9, "activation": "leaky_relu"},
        {"units": 4, "activation": "relu"},
        {"units": 5, "activation": "sigmoid"},
        {"units": 1, "activation": "sigmoid"},
    ]

    def run() -> Trainer:
        options = TrainingOptions(
            epochs=3,
            batch_size=16,  # 4 full batches and one of 6 rows
            validation_split=0.0,
            optimizer=OptimizerOptions(name="sgd", learning_rate=0.1),
        )
        trainer = Trainer(Network(6, layers, seed=4, dtype=dtype), x, y, options)
        trainer.run()
        return trainer

    ring = run()
    monkeypatch.setattr(diagnostics, "DIRECT_GRADS", 0)
    monkeypatch.setattr(diagnostics, "FOLD_STEPS", 2)
    folded = run()
    assert folded.loop.watch is not None and folded.loop.watch.gauge is not None
    np.testing.assert_array_equal(folded.network.params, ring.network.params)
    # float32: both ways are ~2.5e-5 from float64 on the sigmoid layers' std here
    # (E[a²] - mean² of near-constant values), in different directions.
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(statistics(folded), statistics(ring), rtol=rtol, atol=1e-7)
    assert_same_counts(folded, ring)


@pytest.mark.parametrize("way", ["large", "ring-without-gradients"])
def test_gauged_norms_are_the_exact_floats_of_their_definition(
    monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """float32, plain SGD, the gradient norms left by the update (the large way, and a
    small network's ring without gradients, whose short last batch has a line of its
    own): grad_norm is the float64 mean of each batch's √‖dW[l]‖² (the float32 dot, as
    np.linalg.norm takes it), weight_norm and update_ratio are np.linalg.norm's floats:
    equal, not close, so that a change in how the BLAS results are stored or reduced
    shows."""
    threshold = "DIRECT_GRADS" if way == "large" else "RING_GRADS"
    monkeypatch.setattr(diagnostics, threshold, 0)
    rng = np.random.default_rng(21)
    x, y = rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
    layers = [{"units": 9, "activation": "relu"}, {"units": 3, "activation": "softmax"}]
    net = Network(6, layers, seed=5, dtype=np.float32)
    reference, start = net.copy(), [w.copy() for w in net.weights]
    options = TrainingOptions(
        epochs=1,
        batch_size=16,  # two full batches and one of 8 rows
        validation_split=0.0,
        standardize=False,
        shuffle=False,
        optimizer=OptimizerOptions(name="sgd", learning_rate=0.3),
    )
    trainer = Trainer(net, x, y, options)
    trainer.run()
    watch = trainer.loop.watch
    assert watch is not None and watch.gauge is not None and watch._large == (way == "large")
    xs, ys = trainer.data.x, trainer.data.y
    sums = [0.0, 0.0]
    for begin in range(0, 40, 16):  # sgd replayed by hand
        dw, db = reference.backward(xs[begin : begin + 16], ys[begin : begin + 16])
        for i, g in enumerate(dw):
            sums[i] += math.sqrt(float(np.dot(g.ravel(), g.ravel())))
        for param, grad in zip([*reference.weights, *reference.biases], [*dw, *db], strict=True):
            param -= np.float32(0.3) * grad
    np.testing.assert_array_equal(net.params, reference.params)
    for i, layer in enumerate(trainer.history[0]["layers"]):
        w0, w1 = start[i], net.weights[i]
        assert layer["grad_norm"] == sums[i] / 3
        assert layer["weight_norm"] == float(np.linalg.norm(w1))
        assert layer["update_ratio"] == float(np.linalg.norm(w1 - w0)) / float(np.linalg.norm(w1))


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("update", UPDATES, ids=lambda u: "-".join(u) or "plain")
@pytest.mark.parametrize("ring_values", [diagnostics.RING_VALUES, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_ring_without_gradients_changes_no_weight_and_no_statistic(
    monkeypatch: pytest.MonkeyPatch,
    optimizer: dict[str, Any],
    update: dict[str, Any],
    ring_values: int,
    dtype: Any,
) -> None:
    """From RING_GRADS weights the ring holds the activations alone and the update leaves
    each step's ‖dW[l]‖² in the ring row's line (the short last batch's in a line of its
    own): the same statistics as the ring of whole gradients, whether the ring is reduced
    once an epoch or at every step (a ring of one row)."""
    monkeypatch.setattr(diagnostics, "RING_VALUES", ring_values)
    off = train(optimizer, update, on=False, dtype=dtype)
    ring = train(optimizer, update, on=True, dtype=dtype)
    monkeypatch.setattr(diagnostics, "RING_GRADS", 0)  # every network's norms are gauged
    gauged = train(optimizer, update, on=True, dtype=dtype)
    watch = gauged.loop.watch
    assert watch is not None and watch.gauge is not None and not watch._large
    assert ring.loop.watch is not None and ring.loop.watch.gauge is None
    assert (watch.rows == 1) == (ring_values == 1)
    np.testing.assert_array_equal(gauged.network.params, off.network.params)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(statistics(gauged), statistics(ring), rtol=rtol, atol=1e-7)
    assert_same_counts(gauged, ring, COUNTED + LISTED)


def _np_histogram(w: np.ndarray) -> dict[str, Any]:
    """np.histogram's counts of w (20 bins from min to max; equal values in the middle
    bin; a span too narrow for distinct edges in w's dtype, which np.histogram refuses,
    by each value's position)."""
    low, high = float(w.min()), float(w.max())
    if high == low:
        counts = [0] * diagnostics.HISTOGRAM_BINS
        counts[diagnostics.HISTOGRAM_BINS // 2] = w.size
        return {"low": low, "high": high, "counts": counts}
    try:
        binned = np.histogram(w, bins=diagnostics.HISTOGRAM_BINS, range=(low, high))[0]
    except ValueError:
        position = (w.astype(np.float64).ravel() - low) / (high - low) * 20
        binned = np.bincount(np.minimum(position.astype(int), 19), minlength=20)
    return {"low": low, "high": high, "counts": binned.tolist()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("values", ["normal", "edges", "grid", "equal", "ulps"])
def test_histograms_of_all_layers_at_once_equal_np_histogram(dtype: Any, values: str) -> None:
    """A small network's histograms, taken for every layer in one pass, have
    np.histogram's counts and the layers' min and max, values on or next to the bins'
    edges and on a regular grid included; a layer of equal weights has them all in the
    middle bin; one whose span is a few ulps (no distinct edges in its dtype) is binned
    by position, without an error. The one-layer-at-a-time way (a large network's)
    gives the same."""
    rng = np.random.default_rng(8)
    layers = [(9, "leaky_relu"), (4, "tanh"), (5, "sigmoid"), (3, "softmax")]
    net = Network(6, [{"units": u, "activation": a} for u, a in layers], seed=3, dtype=dtype)
    for i, w in enumerate(net.weights):
        low, high = -rng.uniform(0.1, 2), rng.uniform(0.1, 2)
        edges = np.linspace(low, high, 21, dtype=dtype)
        if values == "edges":
            near = [edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)]
            w[...] = rng.choice(np.concatenate(near), size=w.shape).clip(edges[0], edges[-1])
        elif values == "grid":
            w[...] = np.round(rng.uniform(0, 20, w.shape)) / 20
        elif values == "equal" and i == 1:
            w[...] = 0.25
        elif values == "ulps":
            w[...] = rng.choice([1e7, np.nextafter(dtype(1e7), np.inf)], size=w.shape)
    watch = diagnostics.LayerWatch(net, 8)
    assert not watch._large
    got = watch._histograms(net.params[: net.weight_count])
    assert got == [_np_histogram(w) for w in net.weights]
    assert [diagnostics.histogram(w) for w in net.weights] == got
