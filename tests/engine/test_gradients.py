"""Backward against central differences in float64, and the primer's worked result."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.network import Network
from tests.engine.gradcheck import (
    HIDDEN,
    OUTPUT_PAIRS,
    kink_free,
    numerical_gradient,
    pre_activations,
    random_case,
    relative_error,
    targets,
)

RANDOM_ARCHITECTURES = 80


def check_gradients(net: Network, x: np.ndarray, y: np.ndarray) -> None:
    d_weights, d_biases = net.backward(x, y)
    numerical_w, numerical_b = net.split_flat(numerical_gradient(net, x, y))
    for i in range(net.depth):
        for name, ana, num in (
            ("W", d_weights[i], numerical_w[i]),
            ("b", d_biases[i], numerical_b[i]),
        ):
            assert ana.shape == num.shape
            err = relative_error(num, ana)
            assert err < 1e-6, f"d{name}{i + 1}: relative error {err:.2e} ({net.get_config()})"
            np.testing.assert_allclose(ana, num, rtol=1e-4, atol=1e-9)


def test_random_architectures_match_central_differences() -> None:
    seen_activations: set[str] = set()
    seen_losses: set[str] = set()
    for seed in range(RANDOM_ARCHITECTURES):
        net, x, y = random_case(seed)
        check_gradients(net, x, y)
        seen_activations.update(net.activations)
        seen_losses.add(net.loss)
    assert seen_activations == {*HIDDEN, "softmax"}
    assert seen_losses == {"binary_crossentropy", "categorical_crossentropy", "mse"}


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(("output", "loss"), OUTPUT_PAIRS)
def test_every_hidden_activation_with_every_output_and_loss(
    hidden: str, output: str, loss: str
) -> None:
    rng = np.random.default_rng(len(hidden) * 31 + len(output) * 7 + len(loss))
    k = 3 if output in ("softmax", "sigmoid") else 2
    layers = [{"units": 5, "activation": hidden}, {"units": 4, "activation": hidden}]
    net = Network(
        3, [*layers, {"units": k, "activation": output}], loss=loss, seed=7, dtype=np.float64
    )
    x = rng.standard_normal((6, 3))
    while not kink_free(net, x):
        x = rng.standard_normal((6, 3))
    check_gradients(net, x, targets(rng, loss, 6, k))


def test_soft_targets_for_cross_entropy() -> None:
    rng = np.random.default_rng(3)
    net = Network(
        4,
        [{"units": 6, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
        dtype=np.float64,
    )
    x = rng.standard_normal((5, 4))
    check_gradients(net, x, rng.dirichlet(np.ones(3), size=5))
    net = Network(4, [{"units": 2, "activation": "sigmoid"}], dtype=np.float64)
    check_gradients(net, x, rng.random((5, 2)))


def test_primer_worked_result_for_sigmoid_and_bce() -> None:
    """dL/dW[L] = (1/m)(a[L] - y)·a[L-1]ᵀ and dL/db[L] = mean(a[L] - y) (primer, vectorised)."""
    rng = np.random.default_rng(11)
    net = Network(
        3,
        [
            {"units": 4, "activation": "sigmoid"},
            {"units": 5, "activation": "sigmoid"},
            {"units": 1, "activation": "sigmoid"},
        ],
        dtype=np.float64,
    )
    m = 8
    x = rng.standard_normal((m, 3))
    y = (rng.random((m, 1)) > 0.5).astype(np.float64)
    layers = pre_activations(net, x)
    a_prev = 1.0 / (1.0 + np.exp(-layers[-2][1]))  # a[L-1], (m, n[L-1])
    a_out = 1.0 / (1.0 + np.exp(-layers[-1][1]))  # a[L], (m, 1)
    # Column-per-sample primer form: a[L] - y is (1, m), a[L-1]ᵀ is (m, n[L-1]).
    expected_w = (a_out - y).T @ a_prev / m
    d_weights, d_biases = net.backward(x, y)
    np.testing.assert_allclose(d_weights[-1], expected_w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d_biases[-1], np.mean(a_out - y, axis=0), rtol=1e-12, atol=1e-15)


def test_float32_backward_agrees_with_float64() -> None:
    net64, x, y = random_case(5)
    net32 = Network.from_config(net64.get_config(), dtype=np.float32)
    net32.params[...] = net64.params
    w64, _ = net64.backward(x, y)
    w32, _ = net32.backward(x.astype(np.float32), y.astype(np.float32))
    assert w32[0].dtype == np.float32
    for a, b in zip(w32, w64, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
