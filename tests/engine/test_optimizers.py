"""Optimizers against their textbook formulas and against PyTorch (trajectories stored by
make_optimizer_reference.py, recomputed when torch is installed), schedules, the L2
penalty, clipping, and the options' validation."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from app.engine import optimizers, schedules
from app.engine.errors import ConfigError
from app.engine.network import Network
from app.engine.options import (
    EarlyStoppingOptions,
    OptimizerOptions,
    ScheduleOptions,
    TrainingOptions,
)
from app.engine.training import Trainer
from tests.engine import make_optimizer_reference as reference_fixture

STEPS = 6


def reference(
    name: str, options: OptimizerOptions, p0: np.ndarray, grads: list[np.ndarray]
) -> np.ndarray:
    """The update rules written out naively in float64."""
    p, v, m, s = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
    lr, mu = options.learning_rate, options.momentum
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            p = p - lr * g
        elif name == "momentum":
            v = mu * v - lr * g
            p = p + (mu * v - lr * g if options.nesterov else v)
        else:
            m = options.beta1 * m + (1 - options.beta1) * g
            s = options.beta2 * s + (1 - options.beta2) * g * g
            m_hat, s_hat = m / (1 - options.beta1**t), s / (1 - options.beta2**t)
            p = p - lr * m_hat / (np.sqrt(s_hat) + options.epsilon)
    return p


@pytest.mark.parametrize(
    ("name", "nesterov"), [("sgd", False), ("momentum", False), ("momentum", True), ("adam", False)]
)
@pytest.mark.parametrize(
    "size", [7, 2 * optimizers.CHUNK, 3 * optimizers.CHUNK + 5]
)  # 1 piece; 1 piece at the limit; 4 chunks, the last one short
def test_optimizers_follow_their_formulas(name: str, nesterov: bool, size: int) -> None:
    rng = np.random.default_rng(size)
    options = OptimizerOptions(name=name, learning_rate=0.1, nesterov=nesterov, beta2=0.99)
    p0 = rng.standard_normal(size)
    grads = [rng.standard_normal(size) for _ in range(STEPS)]
    params = p0.copy()
    opt = optimizers.get(name)(params, options)
    for g in grads:
        opt.step(params, g.copy())
    np.testing.assert_allclose(params, reference(name, options, p0, grads), rtol=1e-12, atol=1e-12)


def our_trajectory(case: dict[str, Any], dtype: str) -> np.ndarray:
    """Our optimizer and update (L2, clipping, step) over the fixture's inputs, (STEPS, SIZE)."""
    p0, grads = reference_fixture.inputs()
    kind = np.dtype(dtype)
    settings = {k: v for k, v in case.items() if k not in ("l2", "clip_norm")}
    params, scratch = p0.astype(kind), np.empty(p0.size, dtype=kind)
    optimizer = optimizers.get(case["name"])(params, OptimizerOptions(**settings))
    update = optimizers.make_update(
        optimizer,
        params,
        scratch,
        reference_fixture.WEIGHTS,
        case.get("l2", 0.0),
        case.get("clip_norm"),
    )
    trajectory = []
    for g in grads:
        scratch[...] = g
        update()
        trajectory.append(params.copy())
    return np.stack(trajectory)


@pytest.fixture(scope="module")
def torch_reference() -> dict[str, np.ndarray]:
    with np.load(reference_fixture.FIXTURE, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def test_the_fixture_holds_every_case_and_its_inputs(
    torch_reference: dict[str, np.ndarray],
) -> None:
    p0, grads = reference_fixture.inputs()
    np.testing.assert_array_equal(torch_reference["p0"], p0)
    np.testing.assert_array_equal(torch_reference["grads"], grads)
    shape = (reference_fixture.STEPS, reference_fixture.SIZE)
    for name in reference_fixture.CASES:
        for dtype in reference_fixture.DTYPES:
            stored = torch_reference[f"{name}_{dtype}"]
            assert stored.shape == shape and stored.dtype == np.dtype(dtype)
    # Every clipped step is clipped; the penalty and the steps move every parameter.
    clip_norms = [c["clip_norm"] for c in reference_fixture.CASES.values() if "clip_norm" in c]
    assert np.linalg.norm(grads, axis=1).min() > max(clip_norms)
    weights = reference_fixture.WEIGHTS  # the penalty reached the weights, not the biases
    decayed, plain = torch_reference["sgd_l2_float64"], torch_reference["sgd_float64"]
    assert np.all(decayed[:, :weights] != plain[:, :weights])
    np.testing.assert_array_equal(decayed[:, weights:], plain[:, weights:])


@pytest.mark.parametrize("dtype", reference_fixture.DTYPES)
@pytest.mark.parametrize("name", list(reference_fixture.CASES))
def test_optimizers_match_pytorch(
    name: str, dtype: str, torch_reference: dict[str, np.ndarray]
) -> None:
    """Every step of every case against PyTorch's, stored by make_optimizer_reference.py."""
    case = reference_fixture.CASES[name]
    ours = our_trajectory(case, dtype)
    assert ours.dtype == np.dtype(dtype)
    if dtype == "float32":
        rtol, atol = 2e-6, 1e-6  # a few float32 roundings per step, over six steps
    elif "clip_norm" in case:
        rtol, atol = 1e-6, 1e-7  # torch divides by norm + 1e-6, we by the norm
    else:
        rtol, atol = 1e-10, 1e-12
    np.testing.assert_allclose(ours, torch_reference[f"{name}_{dtype}"], rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", list(reference_fixture.CASES))
def test_the_fixture_is_what_pytorch_computes(
    name: str, torch_reference: dict[str, np.ndarray]
) -> None:
    """With torch installed, the stored trajectories are recomputed and compared."""
    pytest.importorskip("torch")
    for dtype in reference_fixture.DTYPES:
        np.testing.assert_allclose(
            reference_fixture.torch_trajectory(reference_fixture.CASES[name], dtype),
            torch_reference[f"{name}_{dtype}"],
            rtol=1e-12 if dtype == "float64" else 1e-6,
            atol=0,
        )


def test_unknown_optimizer_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="sgd, momentum, adam"):
        optimizers.get("rmsprop")


def one_sgd_step(**overrides: Any) -> tuple[Network, Network, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    net = Network(
        3,
        [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "linear"}],
        dtype=np.float64,
    )
    before = net.copy()
    options = TrainingOptions(
        epochs=1,
        batch_size=8,
        shuffle=False,
        standardize=False,
        validation_split=0.0,
        optimizer=OptimizerOptions(name="sgd", learning_rate=0.1),
        **overrides,
    )
    Trainer(net, x, y, options).run()
    return before, net, x, y.reshape(-1, 1)


def test_l2_penalty_adds_l2_times_w_to_weight_gradients_only() -> None:
    before, after, x, y = one_sgd_step(l2=0.5)
    d_weights, d_biases = before.backward(x, y)
    for i in range(before.depth):
        expected = before.weights[i] - 0.1 * (d_weights[i] + 0.5 * before.weights[i])
        np.testing.assert_allclose(after.weights[i], expected, rtol=1e-12)
        np.testing.assert_allclose(
            after.biases[i], before.biases[i] - 0.1 * d_biases[i], rtol=1e-12
        )


def test_clipping_rescales_the_whole_gradient() -> None:
    before, after, x, y = one_sgd_step(clip_norm=1e-3)
    d_weights, d_biases = before.backward(x, y)
    grads = np.concatenate([*(g.ravel() for g in d_weights), *d_biases])
    assert np.linalg.norm(grads) > 1e-3
    expected = before.params - 0.1 * grads * (1e-3 / np.linalg.norm(grads))
    np.testing.assert_allclose(after.params, expected, rtol=1e-9)


def test_schedules() -> None:
    step = ScheduleOptions(name="step", step_size=3, factor=0.5, min_learning_rate=0.02)
    assert [schedules.step(0.1, e, 20, step) for e in (0, 2, 3, 6, 9)] == [
        0.1,
        0.1,
        0.05,
        0.025,
        0.02,
    ]
    cosine = ScheduleOptions(name="cosine", min_learning_rate=0.01)
    assert schedules.cosine(0.1, 0, 10, cosine) == pytest.approx(0.1)
    assert schedules.cosine(0.1, 5, 10, cosine) == pytest.approx(0.055)
    assert schedules.cosine(0.1, 9, 10, cosine) == pytest.approx(
        0.01 + 0.09 * 0.5 * (1 + math.cos(0.9 * math.pi))
    )
    assert schedules.constant(0.3, 7, 10, ScheduleOptions()) == 0.3
    with pytest.raises(ConfigError, match="constant, step, cosine"):
        schedules.get("linear")


def test_history_records_the_scheduled_rate() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 2)), rng.standard_normal(20)
    net = Network(2, [{"units": 1, "activation": "linear"}])
    options = TrainingOptions(
        epochs=4,
        optimizer=OptimizerOptions(learning_rate=0.1),
        lr_schedule=ScheduleOptions(name="step", step_size=2),
    )
    result = Trainer(net, x, y, options).run()
    assert [e["learning_rate"] for e in result.history] == [0.1, 0.1, 0.05, 0.05]


def test_options_round_trip_through_json() -> None:
    options = TrainingOptions(
        epochs=7,
        optimizer=OptimizerOptions(name="momentum", nesterov=True),
        clip_norm=2.0,
        lr_schedule=ScheduleOptions(name="cosine"),
        early_stopping=EarlyStoppingOptions(patience=3),
    )
    data = json.loads(json.dumps(options.to_dict()))
    assert data["optimizer"]["name"] == "momentum" and data["early_stopping"] == {
        "patience": 3,
        "min_delta": 0.0,
    }
    assert TrainingOptions.from_dict(data) == options
    assert TrainingOptions.from_dict({}) == TrainingOptions()
    assert TrainingOptions.from_dict({"optimizer": {"learning_rate": 0.5}}).optimizer.name == "adam"


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"epochs": 0}, ("epochs",)),
        ({"epochs": True}, ("epochs",)),
        ({"epochs": 2.5}, ("epochs",)),
        ({"batch_size": -1}, ("batch_size",)),
        ({"optimizer": {"learning_rate": 0}}, ("optimizer", "learning_rate")),
        ({"optimizer": {"learning_rate": float("nan")}}, ("optimizer", "learning_rate")),
        ({"optimizer": {"name": "rmsprop"}}, ("optimizer", "name")),
        ({"optimizer": {"momentum": 1.0}}, ("optimizer", "momentum")),
        ({"optimizer": {"beta2": -0.1}}, ("optimizer", "beta2")),
        ({"optimizer": {"nesterov": "yes"}}, ("optimizer", "nesterov")),
        ({"optimizer": {"lr": 0.1}}, ("optimizer", "lr")),
        ({"optimizer": 3}, ("optimizer",)),
        ({"l2": -1}, ("l2",)),
        ({"clip_norm": 0}, ("clip_norm",)),
        ({"validation_split": 1.0}, ("validation_split",)),
        ({"lr_schedule": {"name": "linear"}}, ("lr_schedule", "name")),
        ({"lr_schedule": {"factor": 0}}, ("lr_schedule", "factor")),
        ({"lr_schedule": {"step_size": 0}}, ("lr_schedule", "step_size")),
        ({"lr_schedule": {"min_learning_rate": 1.0}}, ("lr_schedule", "min_learning_rate")),
        ({"early_stopping": {"patience": 0}}, ("early_stopping", "patience")),
        ({"early_stopping": {"min_delta": -1}}, ("early_stopping", "min_delta")),
        ({"standardize": 1}, ("standardize",)),
        ({"seed": -1}, ("seed",)),
        ({"dropout": 0.5}, ("dropout",)),
    ],
)
def test_bad_options_are_refused_with_a_location(
    data: dict[str, Any], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as info:
        TrainingOptions.from_dict(data)
    assert info.value.loc == loc
