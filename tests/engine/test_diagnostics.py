"""Per-layer statistics in the history: each against an independent reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.engine import diagnostics
from app.engine.activations import ACTIVATIONS
from app.engine.network import Network
from app.engine.training import OptimizerOptions, Trainer, TrainingOptions

STATS = (
    "weight_norm",
    "grad_norm",
    "update_ratio",
    "activation_mean",
    "activation_std",
    "dead_fraction",
    "saturated_fraction",
)


def dense(n_in: int, *spec: tuple[int, str], **kwargs: Any) -> Network:
    return Network(n_in, [{"units": u, "activation": a} for u, a in spec], **kwargs)


def sgd(rate: float, **kwargs: Any) -> TrainingOptions:
    base: dict[str, Any] = {
        "validation_split": 0.0,
        "standardize": False,
        "shuffle": False,
        "optimizer": OptimizerOptions(name="sgd", learning_rate=rate),
    }
    return TrainingOptions(**{**base, **kwargs})


def numeric_grad_norms(net: Network, x: np.ndarray, y: np.ndarray) -> list[float]:
    """‖dL/dW[l]‖ by central differences of the mean loss, float64."""
    eps, norms = 1e-6, []
    for w in net.weights:
        grad = np.zeros_like(w)
        for index in np.ndindex(w.shape):
            kept = w[index]
            w[index] = kept + eps
            up = net.loss_value(x, y)
            w[index] = kept - eps
            down = net.loss_value(x, y)
            w[index] = kept
            grad[index] = (up - down) / (2 * eps)
        norms.append(float(np.linalg.norm(grad)))
    return norms


def test_full_batch_grad_norms_equal_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    net = dense(3, (5, "tanh"), (4, "sigmoid"), (1, "linear"), dtype=np.float64, seed=3)
    # l2 is on to show that the statistic is the data loss's gradient, penalty left out.
    trainer = Trainer(net, x, y, sgd(0.1, epochs=1, batch_size=24, l2=0.5))
    before = net.copy()
    trainer.run()
    layers = trainer.history[0]["layers"]
    expected = numeric_grad_norms(before, trainer.data.x, trainer.data.y)
    np.testing.assert_allclose([layer["grad_norm"] for layer in layers], expected, rtol=1e-6)


@pytest.mark.parametrize(("direct_grads", "ring_rows"), [(16384, 256), (0, 2), (16384, 3)])
def test_grad_norms_average_every_batch_of_the_epoch(
    monkeypatch: pytest.MonkeyPatch, direct_grads: int, ring_rows: int
) -> None:
    """Mean of each batch's norm, the short last batch included, whichever way (ring or
    dot products, one flush or several) the norms were gathered."""
    monkeypatch.setattr(diagnostics, "DIRECT_GRADS", direct_grads)
    monkeypatch.setattr(diagnostics, "MAX_RING_ROWS", ring_rows)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    net = dense(4, (6, "relu"), (3, "softmax"), dtype=np.float64)
    reference = net.copy()
    trainer = Trainer(net, x, y, sgd(0.5, epochs=2, batch_size=16))
    trainer.run()
    xs, ys = trainer.data.x, trainer.data.y
    for entry in trainer.history:
        norms = []
        for start in range(0, 50, 16):  # sgd replayed by hand: W -= rate·dL/dW per batch
            dw, db = reference.backward(xs[start : start + 16], ys[start : start + 16])
            norms.append([np.linalg.norm(g) for g in dw])
            for param, grad in zip(
                [*reference.weights, *reference.biases], [*dw, *db], strict=True
            ):
                param -= 0.5 * grad
        got = [layer["grad_norm"] for layer in entry["layers"]]
        np.testing.assert_allclose(got, np.mean(norms, axis=0), rtol=1e-9)
    np.testing.assert_allclose(net.params, reference.params, rtol=1e-12)


def forward_by_hand(net: Network, x: np.ndarray) -> list[np.ndarray]:
    out, a = [], x
    for w, b, act in zip(net.weights, net.biases, net.activations, strict=True):
        z = a @ w.T + b
        a = np.empty_like(z)
        ACTIVATIONS[act](z, a)
        out.append(a)
    return out


def test_norms_update_ratio_and_activation_moments() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    net = dense(3, (6, "leaky_relu"), (5, "tanh"), (1, "sigmoid"), dtype=np.float64)
    trainer = Trainer(net, x, y, sgd(0.3, epochs=1, batch_size=30))
    start = [w.copy() for w in net.weights]
    activations = forward_by_hand(net, trainer.data.x)  # full batch: the epoch's only pass
    trainer.run()
    for layer, w0, w1, a in zip(
        trainer.history[0]["layers"], start, net.weights, activations, strict=True
    ):
        assert layer["weight_norm"] == pytest.approx(np.linalg.norm(w1), rel=1e-12)
        ratio = np.linalg.norm(w1 - w0) / np.linalg.norm(w1)
        assert layer["update_ratio"] == pytest.approx(ratio, rel=1e-9)
        assert layer["activation_mean"] == pytest.approx(a.mean(), rel=1e-9, abs=1e-12)
        assert layer["activation_std"] == pytest.approx(a.std(), rel=1e-6)


@pytest.mark.parametrize("kind", ["relu", "leaky_relu"])
def test_dead_units_are_those_never_positive(kind: str) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 2)), rng.integers(0, 2, 40)
    net = dense(2, (4, kind), (3, "linear"), (1, "sigmoid"))
    net.weights[0][...] *= 0.01
    net.biases[0][...] = [-50.0, 5.0, -50.0, 5.0]  # units 0 and 2: z < 0 for every row
    trainer = Trainer(net, x, y, sgd(1e-4, epochs=2, batch_size=8))
    trainer.run()
    first, second, third = trainer.history[-1]["layers"]
    assert first["dead_fraction"] == 0.5
    assert first["dead_units"] == [0, 2]  # the last epoch is a snapshot epoch
    assert second["dead_fraction"] is None and third["dead_fraction"] is None


@pytest.mark.parametrize(
    ("kind", "biases"), [("sigmoid", [8.0, -8.0, 0.0, 0.0]), ("tanh", [4.0, -4.0, 0.0, 0.0])]
)
def test_saturated_fraction_counts_values_near_the_bounds(kind: str, biases: list[float]) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 2)), rng.integers(0, 2, 20)
    net = dense(2, (4, kind), (1, "sigmoid"), dtype=np.float64)
    net.weights[0][...] = 0.0  # z = b: two units pinned near a bound, two at the centre
    net.biases[0][...] = biases
    trainer = Trainer(net, x, y, sgd(1e-9, epochs=1, batch_size=20))
    trainer.run()
    hidden, output = trainer.history[0]["layers"]
    assert hidden["saturated_fraction"] == 0.5
    assert hidden["dead_fraction"] is None
    assert 0.0 <= output["saturated_fraction"] <= 1.0


def test_histograms_and_dead_units_only_on_snapshot_epochs() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(16, 2)), rng.integers(0, 2, 16)
    net = dense(2, (3, "relu"), (1, "sigmoid"))
    trainer = Trainer(net, x, y, sgd(0.01, epochs=45, batch_size=16))
    trainer.run()
    every = diagnostics.snapshot_every(45)
    with_histograms = [e["epoch"] for e in trainer.history if "histogram" in e["layers"][0]]
    assert with_histograms == [*range(every, 45, every), 45]
    assert all(
        ("dead_units" in e["layers"][0]) == ("histogram" in e["layers"][0]) for e in trainer.history
    )
    last = trainer.history[-1]["layers"]
    for layer, w in zip(last, net.weights, strict=True):
        histogram = layer["histogram"]
        assert sum(histogram["counts"]) == w.size
        assert len(histogram["counts"]) == diagnostics.HISTOGRAM_BINS
        assert (histogram["low"], histogram["high"]) == (float(w.min()), float(w.max()))
    assert "dead_units" not in last[1]  # a sigmoid layer has no dead units


def test_diagnostics_off_leaves_the_history_as_it_was() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(16, 2)), rng.integers(0, 2, 16)
    on = Trainer(dense(2, (3, "relu"), (1, "sigmoid")), x, y, sgd(0.1, epochs=2, batch_size=4))
    off = Trainer(
        dense(2, (3, "relu"), (1, "sigmoid")),
        x,
        y,
        sgd(0.1, epochs=2, batch_size=4, diagnostics=False),
    )
    on.run()
    off.run()
    assert all("layers" not in entry for entry in off.history)
    assert [set(e["layers"][0]) >= set(STATS) for e in on.history] == [True, True]
    np.testing.assert_array_equal(on.network.params, off.network.params)


def test_a_checkpoint_keeps_the_layer_statistics() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(32, 2)), rng.integers(0, 2, 32)
    trainer = Trainer(dense(2, (3, "relu"), (1, "sigmoid")), x, y, sgd(0.1, epochs=4, batch_size=8))
    stops = iter([False] * 10 + [True])
    trainer.run(should_stop=lambda: next(stops, False))
    # The history (layer statistics included) is kept beside the checkpoint, not in it.
    resumed = Trainer.resume(trainer.checkpoint(), x, y, history=trainer.history)
    assert resumed.history == trainer.history
    resumed.run()
    assert [len(e["layers"]) for e in resumed.history] == [2, 2, 2, 2]


@pytest.mark.parametrize("large", [False, True])
def test_a_softmax_layers_moments(monkeypatch: pytest.MonkeyPatch, large: bool) -> None:
    # Its mean is 1/n (each row sums to 1), not summed; its std is measured as any layer's.
    if large:
        monkeypatch.setattr(diagnostics, "DIRECT_GRADS", 0)  # the per-step BLAS way
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 4, 40)
    net = dense(3, (6, "relu"), (4, "softmax"), dtype=np.float64)
    trainer = Trainer(net, x, y, sgd(0.1, epochs=1, batch_size=40))
    activations = forward_by_hand(net, trainer.data.x)
    trainer.run()
    assert (trainer.loop.watch is not None) and (trainer.loop.watch.gauge is not None) == large
    output, a = trainer.history[0]["layers"][-1], activations[-1]
    assert output["activation_mean"] == 1 / 4 == pytest.approx(a.mean(), rel=1e-12)
    assert output["activation_std"] == pytest.approx(a.std(), rel=1e-6)
    hidden = trainer.history[0]["layers"][0]
    assert hidden["activation_mean"] == pytest.approx(activations[0].mean(), rel=1e-9)
