"""The incremental findings equal a full re-read of the history, at every epoch.

:class:`app.engine.findings.Findings` carries running aggregates and bounded windows so
that an epoch costs O(layers); ``tests/engine/findings_reference.py`` is the previous
implementation, which re-read the whole history each time. Both read the same
histories — synthetic ones that pass through every regime the rules look for (falling,
overfitting, oscillating, exploding, flat), with damaged values among them, and a real
training run's — and must give the same findings after every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.engine import findings
from app.engine.datasets import generate
from app.engine.network import Network
from app.engine.training import OptimizerOptions, Trainer, TrainingOptions
from tests.engine import findings_reference as reference

REGIMES = ("fall", "overfit", "oscillate", "explode", "flat")


def _value(rng: np.random.Generator, value: float) -> Any:
    """``value``, now and then damaged (missing, None, NaN, a bool, a string)."""
    roll = rng.random()
    if roll < 0.01:
        return None
    if roll < 0.02:
        return float("nan")
    if roll < 0.025:
        return True
    if roll < 0.03:
        return "x"
    return value


def _layer(rng: np.random.Generator, regime: str, grad_scale: float) -> dict[str, Any]:
    return {
        "dead_fraction": _value(rng, float(rng.choice([0.1, 0.3, 0.6, 0.9]))),
        "saturated_fraction": _value(rng, float(rng.choice([0.05, 0.4, 0.7]))),
        "grad_norm": _value(rng, float(grad_scale * rng.lognormal(0.0, 0.5))),
        "update_ratio": _value(rng, 1e-7 if regime == "flat" else float(rng.uniform(1e-4, 1e-2))),
    }


def synthetic(seed: int, epochs: int = 160) -> list[dict[str, Any]]:
    """A history moving through regimes of 10-40 epochs each, 3 layers of statistics."""
    rng = np.random.default_rng(seed)
    history: list[dict[str, Any]] = []
    loss, val = 1.0, 1.0
    regime, left = "fall", 0
    for epoch in range(1, epochs + 1):
        if left == 0:
            regime, left = str(rng.choice(REGIMES)), int(rng.integers(10, 40))
        left -= 1
        if regime == "fall":
            loss, val = loss * 0.95, val * float(rng.uniform(0.93, 1.0))
        elif regime == "overfit":
            loss, val = loss * 0.97, val * 1.04
        elif regime == "oscillate":
            loss = loss * (1.3 if epoch % 2 else 0.75)
        elif regime == "explode":
            loss = loss * 1.6
        else:
            loss = loss * (1 + float(rng.uniform(-1e-5, 1e-5)))
        # vanishing / exploding gradients: the first layer's norm far from the last's
        scales = [float(rng.choice([1.0, 1e-5, 1e5])), 1.0, 1.0]
        entry: dict[str, Any] = {
            "epoch": epoch,
            "loss": _value(rng, loss),
            "val_loss": _value(rng, val),
            "layers": [_layer(rng, regime, scale) for scale in scales],
        }
        if rng.random() < 0.02:
            entry["layers"] = "damaged"
        history.append(entry)
    return history


def assert_same_at_every_epoch(history: list[dict[str, Any]]) -> set[str]:
    """Feed ``history`` one entry at a time; the kinds found along the way."""
    tracker = findings.Findings()
    kinds: set[str] = set()
    for end, entry in enumerate(history, start=1):
        tracker.add(entry)
        for diverged in (False, True):
            expected = reference.evaluate(history[:end], diverged=diverged)
            assert tracker.current(diverged=diverged) == expected, (end, diverged)
        kinds.update(f["kind"] for f in expected if f["epoch"] <= end)
    assert findings.evaluate(history) == reference.evaluate(history)
    return kinds


def test_synthetic_histories_give_the_same_findings_at_every_epoch() -> None:
    seen: set[str] = set()
    for seed in range(12):
        seen |= assert_same_at_every_epoch(synthetic(seed))
    assert seen == set(findings.KINDS)  # every rule fired somewhere: none compared idly


@pytest.mark.parametrize("learning_rate", [0.05, 5.0])
def test_a_real_run_gives_the_same_findings_at_every_epoch(learning_rate: float) -> None:
    x, y = generate("moons", n_samples=200, noise=0.3, seed=0)
    net = Network(2, [{"units": 32, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}])
    options = TrainingOptions(
        epochs=60,
        batch_size=200,
        optimizer=OptimizerOptions(name="sgd", learning_rate=learning_rate),
    )
    trainer = Trainer(net, x, y, options)
    trainer.run()
    assert_same_at_every_epoch(trainer.history)


def test_an_empty_history_has_no_findings_unless_it_diverged() -> None:
    tracker = findings.Findings()
    assert tracker.current() == [] == reference.evaluate([])
    assert tracker.current(diverged=True) == reference.evaluate([], diverged=True)
