"""The fit loop: learning, data handling, metrics, early stopping, callbacks, divergence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.engine import splitting
from app.engine.datasets import generate
from app.engine.errors import ConfigError, DataError, DivergenceError
from app.engine.model import Model
from app.engine.network import Network
from app.engine.training import (
    EarlyStoppingOptions,
    OptimizerOptions,
    Trainer,
    TrainingOptions,
)


def dense(n_in: int, *spec: tuple[int, str], **kwargs: Any) -> Network:
    return Network(n_in, [{"units": u, "activation": a} for u, a in spec], **kwargs)


def regression_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 3))
    y = np.sin(x[:, 0]) + x[:, 1] ** 2 - 0.5 * x[:, 2] + rng.normal(0, 0.1, n)
    return x, y


# --- it learns -----------------------------------------------------------------------


def test_learns_xor_with_2_4_1() -> None:
    x, y = generate("xor", n_samples=4)
    net = dense(2, (4, "tanh"), (1, "sigmoid"), seed=1)
    options = TrainingOptions(
        epochs=500,
        batch_size=4,
        optimizer=OptimizerOptions(learning_rate=0.05),
        validation_split=0.0,  # all four corners are needed to learn xor
    )
    result = Trainer(net, x, y, options).run()
    assert result.model.labels(result.model.predict(x)) == [0, 1, 1, 0]
    assert result.history[-1]["accuracy"] == 1.0


def test_learns_a_three_class_spiral() -> None:
    x, y = generate("spirals", n_samples=300, classes=3, noise=0.1, seed=0)
    net = dense(2, (64, "relu"), (64, "relu"), (3, "softmax"))
    result = Trainer(net, x, y, TrainingOptions(epochs=600, batch_size=32)).run()
    predicted = result.model.labels(result.model.predict(x))
    assert np.mean(np.array(predicted) == y) >= 0.95
    assert result.history[-1]["accuracy"] >= 0.95


def test_learns_a_noisy_regression() -> None:
    x, y = regression_data()
    net = dense(3, (32, "tanh"), (1, "linear"))
    result = Trainer(net, x, y, TrainingOptions(epochs=200, validation_split=0.2)).run()
    last = result.history[-1]
    assert last["val_r2"] >= 0.9 and last["r2"] >= 0.9
    assert last["mae"] < 0.3
    assert result.model.task == "regression" and result.model.classes is None


def test_multi_output_regression() -> None:
    x, y = regression_data(200)
    targets = np.stack([y, -2 * y], axis=1)
    net = dense(3, (16, "relu"), (2, "linear"))
    result = Trainer(net, x, targets, TrainingOptions(epochs=100)).run()
    assert result.model.predict(x).shape == (200, 2)
    assert result.history[-1]["r2"] > 0.8


# --- labels, standardisation, validation --------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        (["spam", "ham"], ["ham", "spam"]),
        ([True, False], [False, True]),
        ([3, 7], [3, 7]),
    ],
)
def test_binary_labels_of_any_json_type(labels: list[Any], classes: list[Any]) -> None:
    x, y01 = generate("moons", n_samples=120, seed=2)
    y = np.array([labels[int(v)] for v in y01])
    net = dense(2, (8, "tanh"), (1, "sigmoid"))
    result = Trainer(net, x, y, TrainingOptions(epochs=60)).run()
    assert result.model.classes == classes and result.model.task == "binary"
    predicted = result.model.labels(result.model.predict(x))
    assert set(predicted) <= set(classes)
    assert np.mean(np.array(predicted) == y) > 0.8


def test_multiclass_labels_map_back_in_unit_order() -> None:
    x, y = generate("blobs", n_samples=90, classes=3, noise=0.3, seed=3)
    names = np.array(["red", "green", "blue"])[y]
    net = dense(2, (3, "softmax"))
    result = Trainer(net, x, names, TrainingOptions(epochs=80)).run()
    assert result.model.classes == ["blue", "green", "red"]
    assert result.model.labels(result.model.predict(x)) == names.tolist()


def test_standardisation_is_fitted_on_the_training_rows_only() -> None:
    x, y = generate("moons", n_samples=100, seed=5)
    x = x * np.array([100.0, 0.01], dtype=np.float32) + 50.0
    options = TrainingOptions(epochs=2, validation_split=0.3, seed=9)
    result = Trainer(dense(2, (1, "sigmoid")), x, y, options).run()
    train, _ = splitting.split(100, 0.3, y, 9)
    assert result.model.x_mean is not None and result.model.x_std is not None
    np.testing.assert_allclose(result.model.x_mean, x[train].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(result.model.x_std, x[train].std(axis=0), rtol=1e-4)
    raw = Trainer(
        dense(2, (1, "sigmoid")), x, y, TrainingOptions(epochs=1, standardize=False)
    ).run()
    assert raw.model.x_mean is None and not raw.model.standardize


def test_validation_split_is_shuffled_and_stratified() -> None:
    y = np.array([0] * 80 + [1] * 20)
    train, val = splitting.split(100, 0.25, y, 0)
    assert len(val) == 25 and len(train) == 75
    assert np.sum(y[val] == 1) == 5  # the class proportions survive the split
    assert not np.array_equal(val, np.arange(75, 100))  # not "the last rows"
    assert set(train) | set(val) == set(range(100)) and not set(train) & set(val)
    _, val_again = splitting.split(100, 0.25, y, 0)
    assert np.array_equal(val, val_again)
    with pytest.raises(DataError):
        splitting.split(2, 0.9, None, 0)


def test_explicit_validation_set_and_metric_keys() -> None:
    x, y = generate("circles", n_samples=120, seed=1)
    xv, yv = generate("circles", n_samples=40, seed=2)
    net = dense(2, (8, "relu"), (1, "sigmoid"))
    entries: list[dict[str, Any]] = []
    Trainer(net, x, y, TrainingOptions(epochs=3), validation=(xv, yv)).run(on_epoch=entries.append)
    assert [e["epoch"] for e in entries] == [1, 2, 3]
    expected = {
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "seconds",
        "samples_per_second",
        "layers",  # per-layer statistics (diagnostics, on by default)
    }
    assert set(entries[0]) == expected
    with pytest.raises(DataError) as info:
        Trainer(net, x, y, TrainingOptions(), validation=(xv[:, :1], yv))
    assert info.value.loc == ("validation", "x")


def test_bad_training_data_is_refused_with_a_location() -> None:
    x, y = generate("moons", n_samples=20)
    net = dense(2, (1, "sigmoid"))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError) as info:
        Trainer(net, bad, y, TrainingOptions())
    assert info.value.loc == ("x", 3, 1)
    with pytest.raises(DataError) as info:
        Trainer(net, x, y[:-1], TrainingOptions())
    assert info.value.loc == ("y",)
    with pytest.raises(ConfigError) as refused:
        Trainer(dense(2, (3, "sigmoid")), x, y, TrainingOptions())
    assert "multi-label" in refused.value.message


# --- early stopping, callbacks, stop flag, divergence -----------------------------------------


def test_early_stopping_restores_the_best_weights() -> None:
    x, y = generate("moons", n_samples=60, noise=0.3, seed=0)
    net = dense(2, (32, "relu"), (1, "sigmoid"))
    snapshots: dict[int, np.ndarray] = {}
    options = TrainingOptions(
        epochs=300,
        validation_split=0.3,
        optimizer=OptimizerOptions(learning_rate=0.05),
        early_stopping=EarlyStoppingOptions(patience=5, min_delta=1e-3),
    )
    trainer = Trainer(net, x, y, options)

    def keep(entry: dict[str, float]) -> None:
        snapshots[int(entry["epoch"])] = net.params.copy()

    result = trainer.run(on_epoch=keep)
    assert result.early_stopped and result.epochs_run < 300
    losses = [e["val_loss"] for e in result.history]
    best = trainer.progress.best_epoch
    assert result.epochs_run - best == 5
    assert losses[best - 1] == pytest.approx(min(losses), abs=1e-3)
    np.testing.assert_array_equal(net.params, snapshots[best])
    np.testing.assert_array_equal(result.model.network.params, snapshots[best])


def test_best_weights_are_restored_even_without_the_early_stop() -> None:
    x, y = regression_data(100)
    net = dense(3, (8, "tanh"), (1, "linear"))
    options = TrainingOptions(
        epochs=30,
        validation_split=0.3,
        optimizer=OptimizerOptions(name="sgd", learning_rate=0.3),
        early_stopping=EarlyStoppingOptions(patience=100),
    )
    trainer = Trainer(net, x, y, options)
    result = trainer.run()
    assert not result.early_stopped and result.epochs_run == 30
    np.testing.assert_array_equal(net.params, trainer.best_params)


def test_stop_flag_is_checked_before_every_batch() -> None:
    x, y = generate("moons", n_samples=100)
    net = dense(2, (4, "relu"), (1, "sigmoid"))
    trainer = Trainer(net, x, y, TrainingOptions(epochs=5, batch_size=10))
    calls = 0

    def stop_after_23() -> bool:
        nonlocal calls
        calls += 1
        return calls > 23

    result = trainer.run(should_stop=stop_after_23)
    assert result.stopped and not result.early_stopped
    assert trainer.epoch == 2 and trainer.samples_trained == 230
    assert len(result.history) == 2
    assert isinstance(result.model, Model)


def test_divergence_is_reported_with_advice() -> None:
    x, y = regression_data(64)
    net = dense(3, (16, "relu"), (1, "linear"))
    options = TrainingOptions(
        epochs=50, optimizer=OptimizerOptions(name="sgd", learning_rate=10), standardize=False
    )
    with pytest.raises(DivergenceError) as info:
        Trainer(net, x, y * 1e3, options).run()
    assert "diverged" in info.value.message and "learning rate" in info.value.message
    assert info.value.loc == ("optimizer", "learning_rate")


def test_init_model_starts_from_its_weights_and_keeps_its_preprocessing() -> None:
    x, y = generate("moons", n_samples=80, seed=4)
    first = Trainer(dense(2, (8, "tanh"), (1, "sigmoid")), x, y, TrainingOptions(epochs=20)).run()
    net = dense(2, (8, "tanh"), (1, "sigmoid"), seed=99)
    trainer = Trainer(net, x * 3, y, TrainingOptions(epochs=1), init_model=first.model)
    np.testing.assert_array_equal(net.params, first.model.network.params)
    assert trainer.data.standardizer is not None
    np.testing.assert_array_equal(trainer.data.standardizer.mean, first.model.x_mean)
    with pytest.raises(ConfigError) as info:
        Trainer(
            dense(2, (9, "tanh"), (1, "sigmoid")), x, y, TrainingOptions(), init_model=first.model
        )
    assert info.value.loc == ("init_model",)


def test_float64_training() -> None:
    x, y = generate("moons", n_samples=50)
    net = dense(2, (4, "tanh"), (1, "sigmoid"), dtype=np.float64)
    result = Trainer(net, x, y, TrainingOptions(epochs=3)).run()
    assert result.model.predict(x).dtype == np.float64
