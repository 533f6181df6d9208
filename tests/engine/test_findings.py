"""Findings: each one caused by a run built to cause it, and none on a healthy run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.engine import findings
from app.engine.datasets import generate
from app.engine.errors import DivergenceError
from app.engine.network import Network
from app.engine.training import OptimizerOptions, Trainer, TrainingOptions


def dense(n_in: int, *spec: tuple[int, str], **kwargs: Any) -> Network:
    return Network(n_in, [{"units": u, "activation": a} for u, a in spec], **kwargs)


def moons() -> tuple[np.ndarray, np.ndarray]:
    return generate("moons", n_samples=400, noise=0.1, seed=0)


def kinds(history: list[dict[str, Any]], **kwargs: Any) -> list[tuple[str, int | None]]:
    return [(f["kind"], f["layer"]) for f in findings.evaluate(history, **kwargs)]


@pytest.mark.parametrize("hidden", ["relu", "tanh"])
def test_a_healthy_run_has_no_findings(hidden: str) -> None:
    x, y = moons()
    net = dense(2, (16, hidden), (16, hidden), (1, "sigmoid"))
    trainer = Trainer(net, x, y, TrainingOptions(epochs=60, batch_size=32))
    trainer.run()
    assert trainer.history[-1]["val_accuracy"] >= 0.95
    assert findings.evaluate(trainer.history) == []


def test_a_large_negative_bias_kills_a_layer() -> None:
    x, y = moons()
    net = dense(2, (16, "relu"), (16, "relu"), (1, "sigmoid"))
    net.biases[0][...] = -100.0  # as an imported model with a broken first layer would have
    trainer = Trainer(net, x, y, TrainingOptions(epochs=5, batch_size=32))
    trainer.run()
    found = findings.evaluate(trainer.history)
    dead = [f for f in found if f["kind"] == "dead_units" and f["layer"] == 1]
    assert len(dead) == 1 and dead[0]["epoch"] == 5
    assert "100% of layer 1's units" in dead[0]["message"]
    assert "leaky_relu" in dead[0]["message"]
    # No gradient reaches any weight, so no learning rate would help: not "too low".
    assert all(f["kind"] != "learning_rate_low" for f in found)


def test_huge_weights_saturate_a_tanh_layer() -> None:
    x, y = moons()
    net = dense(2, (16, "tanh"), (1, "sigmoid"))
    net.weights[0][...] *= 100.0
    trainer = Trainer(net, x, y, TrainingOptions(epochs=5, batch_size=32))
    trainer.run()
    assert kinds(trainer.history) == [("saturation", 1)]


def test_a_large_network_on_tiny_data_overfits() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 5)), rng.integers(0, 2, 40)  # labels are noise
    net = dense(5, (256, "relu"), (256, "relu"), (1, "sigmoid"))
    trainer = Trainer(net, x, y, TrainingOptions(epochs=150, batch_size=16, validation_split=0.3))
    trainer.run()
    (found,) = [f for f in findings.evaluate(trainer.history) if f["kind"] == "overfitting"]
    best = min(trainer.history, key=lambda e: e["val_loss"])["epoch"]
    assert found["epoch"] == 150
    assert f"Early stopping would have kept epoch {best}'s model" in found["message"]


def test_a_huge_learning_rate_diverges() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((200, 3)), rng.standard_normal(200)
    options = TrainingOptions(
        epochs=50, batch_size=200, optimizer=OptimizerOptions(name="sgd", learning_rate=10.0)
    )
    trainer = Trainer(dense(3, (16, "relu"), (1, "linear")), x, y, options)
    with pytest.raises(DivergenceError):
        trainer.run()
    assert kinds(trainer.history, diverged=True) == [("learning_rate_high", None)]
    assert kinds([], diverged=True) == [("learning_rate_high", None)]  # gone in epoch 1


def test_a_learning_rate_past_the_stability_limit_makes_the_loss_explode() -> None:
    """Full-batch gradient descent on a linear model above 2/λmax: the loss grows every
    epoch (still finite), which the curve alone shows."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((200, 3)), rng.standard_normal(200)
    options = TrainingOptions(
        epochs=40,
        batch_size=200,
        validation_split=0.0,
        optimizer=OptimizerOptions(name="sgd", learning_rate=1.1),
    )
    trainer = Trainer(dense(3, (1, "linear")), x, y, options)
    trainer.run()
    (found,) = findings.evaluate(trainer.history)
    assert (found["kind"], found["epoch"]) == ("learning_rate_high", 40)
    assert "Divide the learning rate by 10" in found["message"]


def test_oscillating_loss_reads_as_a_learning_rate_too_high() -> None:
    history = [
        {"epoch": e + 1, "loss": 1.0 if e % 2 else 0.6} for e in range(findings.OSCILLATION_WINDOW)
    ]
    assert kinds(history) == [("learning_rate_high", None)]
    calm = [{"epoch": e + 1, "loss": 1.0 / (e + 1)} for e in range(findings.OSCILLATION_WINDOW)]
    assert kinds(calm) == []


def test_a_tiny_learning_rate_barely_moves_anything() -> None:
    x, y = moons()
    options = TrainingOptions(
        epochs=10, batch_size=32, optimizer=OptimizerOptions(name="sgd", learning_rate=1e-7)
    )
    trainer = Trainer(dense(2, (16, "relu"), (1, "sigmoid")), x, y, options)
    trainer.run()
    assert kinds(trainer.history) == [("learning_rate_low", None)]


def test_deep_sigmoid_layers_make_the_gradient_vanish() -> None:
    x, y = moons()
    net = dense(2, *[(16, "sigmoid")] * 8, (1, "sigmoid"), init="xavier")
    trainer = Trainer(net, x, y, TrainingOptions(epochs=5, batch_size=32))
    trainer.run()
    assert ("vanishing_gradients", 1) in kinds(trainer.history)


def test_a_tiny_first_layer_under_large_ones_makes_the_gradient_explode() -> None:
    """The first layer's gradient dwarfs the last's when its weights are tiny and the
    later ones are not: the forward signal shrinks, the backward one does not."""
    x, y = moons()
    net = dense(2, *[(16, "relu")] * 6, (1, "sigmoid"))
    net.weights[0][...] *= 1e-4
    options = TrainingOptions(
        epochs=1,
        batch_size=400,
        validation_split=0.0,
        optimizer=OptimizerOptions(name="sgd", learning_rate=1e-9),
    )
    trainer = Trainer(net, x, y, options)
    trainer.run()
    assert ("exploding_gradients", 1) in kinds(trainer.history)


def test_findings_read_only_what_the_history_has() -> None:
    """No layer statistics (diagnostics off), damaged values: no findings, no errors."""
    plain = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.0 / e} for e in range(1, 30)]
    assert findings.evaluate(plain) == []
    odd = [{"epoch": 1, "loss": None, "layers": "x"}, {"epoch": 2, "loss": 1.0, "layers": [1]}]
    assert findings.evaluate(odd) == []
