"""Architecture validation, initialisation, configuration and numerical stability."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from app.engine import activations, architecture, losses
from app.engine.errors import ConfigError, DataError, EngineError
from app.engine.network import CACHE_LINE, Network, aligned_zeros

RELU = {"units": 4, "activation": "relu"}


def layers(*spec: tuple[int, str]) -> list[dict[str, Any]]:
    return [{"units": units, "activation": act} for units, act in spec]


def refusal(input_size: Any, spec: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Network(input_size, spec, **kwargs)
    return info.value


def test_shapes_follow_the_primer() -> None:
    net = Network(3, layers((5, "relu"), (4, "tanh"), (2, "softmax")))
    assert [w.shape for w in net.weights] == [(5, 3), (4, 5), (2, 4)]
    assert [b.shape for b in net.biases] == [(5,), (4,), (2,)]
    assert net.parameter_count == 5 * 4 + 4 * 6 + 2 * 5
    # The count the service checks against its limit, without building the network.
    assert architecture.parameter_count(3, [5, 4, 2]) == net.parameter_count
    assert net.output_size == 2 and net.layer_sizes == [5, 4, 2]
    assert net.loss == "categorical_crossentropy"
    assert net.params.dtype == np.float32 and net.weights[0].dtype == np.float32
    out = net.forward(np.ones((7, 3)))
    assert out.shape == (7, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)


def test_weights_are_views_of_the_flat_parameters() -> None:
    net = Network(2, layers((3, "relu"), (1, "sigmoid")))
    net.weights[1][...] = 7.0
    assert np.count_nonzero(net.params == 7.0) == 3
    net.params[:] = 0.0
    assert not net.weights[0].any()


@pytest.mark.parametrize(
    ("output", "loss"),
    [
        ("sigmoid", "binary_crossentropy"),
        ("softmax", "categorical_crossentropy"),
        ("linear", "mse"),
        ("tanh", "mse"),
        ("relu", "mse"),
    ],
)
def test_loss_follows_the_output_activation(output: str, loss: str) -> None:
    assert Network(2, layers((2 if output == "softmax" else 1, output))).loss == loss


def test_forward_matches_the_primer_equations() -> None:
    rng = np.random.default_rng(0)
    net = Network(3, layers((4, "tanh"), (2, "linear")), dtype=np.float64)
    x = rng.standard_normal((5, 3))
    a1 = np.tanh(x @ net.weights[0].T + net.biases[0])
    np.testing.assert_allclose(net.forward(x), a1 @ net.weights[1].T + net.biases[1], rtol=1e-12)


def test_init_is_reproducible_and_scaled() -> None:
    a = Network(400, layers((300, "relu"), (300, "tanh")), seed=3)
    b = Network(400, layers((300, "relu"), (300, "tanh")), seed=3)
    c = Network(400, layers((300, "relu"), (300, "tanh")), seed=4)
    assert np.array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)
    assert not any(bias.any() for bias in a.biases)
    # auto: he (std sqrt(2/400)) for relu, xavier (U(±sqrt(6/600))) for tanh
    assert a.weights[0].std() == pytest.approx(np.sqrt(2 / 400), rel=0.03)
    assert np.abs(a.weights[1]).max() <= np.sqrt(6 / 600)
    assert a.weights[1].std() == pytest.approx(np.sqrt(6 / 600) / np.sqrt(3), rel=0.03)
    he = Network(400, layers((300, "tanh")), init="he")
    assert he.weights[0].std() == pytest.approx(np.sqrt(2 / 400), rel=0.03)
    xavier = Network(400, layers((300, "relu")), init="xavier")
    assert np.abs(xavier.weights[0]).max() <= np.sqrt(6 / 700)


def test_float64_selectable_with_the_same_initial_values() -> None:
    a = Network(5, layers((6, "relu"), (1, "sigmoid")), seed=2)
    b = Network(5, layers((6, "relu"), (1, "sigmoid")), seed=2, dtype="float64")
    assert b.params.dtype == np.float64
    np.testing.assert_array_equal(a.params, b.params.astype(np.float32))


def test_config_round_trip() -> None:
    net = Network(3, layers((5, "leaky_relu"), (3, "softmax")), init="xavier", seed=9)
    config = net.get_config()
    assert config == {
        "input_size": 3,
        "layers": [{"units": 5, "activation": "leaky_relu"}, {"units": 3, "activation": "softmax"}],
        "loss": "categorical_crossentropy",
        "init": "xavier",
        "seed": 9,
    }
    twin = Network.from_config(config)
    assert np.array_equal(twin.params, net.params)
    copy = net.copy()
    copy.params[0] += 1
    assert copy.params[0] != net.params[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_copy_is_the_same_network_with_its_own_parameters(dtype: type) -> None:
    net = Network(3, layers((5, "tanh"), (2, "sigmoid")), loss="mse", seed=4, dtype=dtype)
    net.params[...] = np.random.default_rng(1).standard_normal(net.params.size)
    twin = net.copy()
    assert twin.get_config() == net.get_config() and twin.dtype == net.dtype
    assert np.array_equal(twin.params, net.params) and twin.params is not net.params
    x = np.random.default_rng(2).standard_normal((4, 3))
    assert np.array_equal(twin.forward(x), net.forward(x))
    # The views (weights, biases, bias rows) are the twin's own, not the original's.
    twin.weights[0][...] = 0
    twin.bias_rows[1][...] = 7
    assert np.all(twin.params[: twin.weight_count - 10] == 0) and twin.biases[1][0] == 7
    assert not np.any(net.weights[0] == 0) and net.biases[1][0] != 7
    assert twin.layer_sizes is not net.layer_sizes


# --- refusals ------------------------------------------------------------------------


def test_softmax_with_one_unit_is_refused() -> None:
    err = refusal(2, layers((4, "relu"), (1, "softmax")))
    assert err.loc == ("layers", 1, "units")
    assert "layer 2 of 2" in err.message and "sigmoid" in err.message


def test_softmax_in_a_hidden_layer_is_refused() -> None:
    err = refusal(2, layers((4, "relu"), (4, "softmax"), (3, "softmax")))
    assert err.loc == ("layers", 1, "activation")
    assert "layer 2 of 3 (hidden layer)" in err.message and "relu" in err.message


@pytest.mark.parametrize("output", ["relu", "linear", "tanh", "leaky_relu", "softmax"])
def test_bce_needs_a_sigmoid_output(output: str) -> None:
    err = refusal(2, layers((4, "relu"), (2, output)), loss="binary_crossentropy")
    assert err.loc == ("loss",)
    assert "layer 2 of 2 (output layer)" in err.message and "sigmoid" in err.message


@pytest.mark.parametrize("output", ["sigmoid", "linear", "relu"])
def test_cce_needs_a_softmax_output(output: str) -> None:
    err = refusal(2, layers((3, output)), loss="categorical_crossentropy")
    assert err.loc == ("loss",) and "softmax" in err.message and "layer 1 of 1" in err.message


@pytest.mark.parametrize(
    ("input_size", "spec", "kwargs", "loc", "words"),
    [
        (0, [RELU], {}, ("input_size",), "positive integer"),
        (True, [RELU], {}, ("input_size",), "positive integer"),
        (2.0, [RELU], {}, ("input_size",), "positive integer"),
        (2, [], {}, ("layers",), "non-empty"),
        (2, "relu", {}, ("layers",), "non-empty"),
        (2, [RELU, 3], {}, ("layers", 1), "layer 2 of 2"),
        (2, [{"units": 0, "activation": "relu"}], {}, ("layers", 0, "units"), "positive integer"),
        (2, [{"units": 2.5, "activation": "relu"}], {}, ("layers", 0, "units"), "positive integer"),
        (2, [{"units": 2}], {}, ("layers", 0, "activation"), "missing"),
        (
            2,
            [{"units": 2, "activation": "relu", "dropout": 0.5}],
            {},
            ("layers", 0, "dropout"),
            "unknown key",
        ),
        (2, [{"units": 2, "activation": "swish"}], {}, ("layers", 0, "activation"), "leaky_relu"),
        (2, [RELU], {"loss": "hinge"}, ("loss",), "categorical_crossentropy"),
        (2, [RELU], {"loss": 3}, ("loss",), "name"),
        (2, [RELU], {"init": "lecun"}, ("init",), "xavier"),
        (2, [RELU], {"seed": -1}, ("seed",), "non-negative"),
        (2, [RELU], {"dtype": np.float16}, ("dtype",), "float32"),
        (2, [RELU], {"dtype": "int"}, ("dtype",), "float32"),
    ],
)
def test_bad_descriptions_are_refused_with_a_location(
    input_size: Any, spec: Any, kwargs: dict[str, Any], loc: tuple[Any, ...], words: str
) -> None:
    err = refusal(input_size, spec, **kwargs)
    assert err.loc == loc
    assert words in err.message
    assert isinstance(err, ValueError) and isinstance(err, EngineError)
    assert str(err).startswith(".".join(str(p) for p in loc))


def test_table_lookups_list_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="sigmoid, tanh, relu, leaky_relu, softmax, linear"):
        activations.get("gelu")
    with pytest.raises(ConfigError, match="binary_crossentropy, categorical_crossentropy, mse"):
        losses.get("hinge")


def test_from_config_refuses_unknown_and_missing_keys() -> None:
    with pytest.raises(ConfigError) as info:
        Network.from_config({"input_size": 2, "layers": [RELU], "dropout": 0.1})
    assert info.value.loc == ("dropout",)
    with pytest.raises(ConfigError) as info:
        Network.from_config({"layers": [RELU]})
    assert info.value.loc == ("input_size",)


def test_inputs_of_the_wrong_shape_are_refused() -> None:
    net = Network(3, [RELU])
    with pytest.raises(DataError) as info:
        net.forward(np.ones((2, 4)))
    assert info.value.loc == ("x",)
    with pytest.raises(DataError):
        net.forward(np.ones(3))
    with pytest.raises(DataError):
        net.forward(np.array([["a", "b", "c"]]))
    with pytest.raises(DataError) as info:
        net.backward(np.ones((2, 3)), np.ones((3, 4)))
    assert info.value.loc == ("y",)


def test_set_parameters_checks_shapes() -> None:
    net = Network(3, layers((2, "relu"), (1, "sigmoid")))
    with pytest.raises(ConfigError) as info:
        net.set_parameters([np.ones((2, 3)), np.ones((2, 1))], [np.ones(2), np.ones(1)])
    assert info.value.loc == ("weights", 1) and "W2" in info.value.message
    net.set_parameters([np.ones((2, 3)), np.ones((1, 2))], [np.ones(2), np.zeros(1)])
    assert net.params.sum() == 6 + 2 + 2


# --- numerical stability ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "loss"),
    [
        ("sigmoid", "binary_crossentropy"),
        ("softmax", "categorical_crossentropy"),
        *[(a, "mse") for a in activations.ACTIVATIONS],
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_stay_finite_without_warnings(output: str, loss: str, dtype: type) -> None:
    """|z| = 1e4 in every layer: no overflow, no log(0), no NaN, no NumPy warning."""
    hidden = ["sigmoid", "tanh", "relu", "leaky_relu", "linear"]
    spec = [{"units": 2, "activation": act} for act in hidden]
    net = Network(1, [*spec, {"units": 2, "activation": output}], loss=loss, dtype=dtype)
    for w, b in zip(net.weights, net.biases, strict=True):
        w[...] = 0.0
        b[...] = [1e4, -1e4]  # every z[l] is exactly ±1e4, whatever the layer below did
    x = np.array([[0.5], [-0.5]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        z, a = net.forward_output(x)
        value = net.loss_value(x, y)
        d_weights, d_biases = net.backward(x, y)
    assert np.all(np.abs(z) == 1e4)
    assert np.all(np.isfinite(a)) and np.isfinite(value)
    assert all(np.all(np.isfinite(g)) for g in [*d_weights, *d_biases])
    # Row 1 is right with margin 2e4, row 2 wrong: BCE (0 + 0 + 1e4 + 1e4) / 4, CCE (0 + 2e4) / 2.
    expected = {"binary_crossentropy": 5e3, "categorical_crossentropy": 1e4}.get(loss)
    if expected is not None:
        assert value == pytest.approx(expected, rel=1e-6)


def test_saturated_cross_entropy_values_are_exact() -> None:
    z = np.array([[1e4], [-1e4], [0.0]])
    y = np.array([[0.0], [0.0], [1.0]])
    value = losses.binary_crossentropy(z, np.zeros_like(z), y)
    assert value == pytest.approx((1e4 + 0.0 + np.log(2)) / 3)
    z2 = np.array([[1e4, -1e4], [0.0, 0.0]])
    y2 = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert losses.categorical_crossentropy(z2, np.zeros_like(z2), y2) == pytest.approx(
        (2e4 + np.log(2)) / 2
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_one_row_equals_its_row_in_a_batch(dtype: type) -> None:
    """The single-row softmax (the 1-row predict path) agrees with the batched one, and
    stays finite and warning-free at |z| = 1e4."""
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((6, 7)) * 30).astype(dtype)
    z[5] = [1e4, -1e4, 0, 1e4, -1e4, 5, 1e4 - 1]
    batch = np.empty_like(z)
    activations.softmax(z, batch)
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        for i in range(z.shape[0]):
            single = np.empty((1, z.shape[1]), dtype=dtype)
            activations.softmax(z[i : i + 1], single)
            np.testing.assert_allclose(single[0], batch[i], rtol=1e-6, atol=1e-30)
            assert single.sum() == pytest.approx(1.0, rel=1e-6)
    in_place = z[5:6].copy()
    activations.softmax(in_place, in_place)
    np.testing.assert_allclose(in_place[0], batch[5], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 17, 4096, 200_704])
def test_aligned_zeros_start_on_a_cache_line(dtype: Any, size: int) -> None:
    a = aligned_zeros(size, np.dtype(dtype))
    assert a.shape == (size,) and a.dtype == dtype and a.flags.c_contiguous
    assert a.ctypes.data % CACHE_LINE == 0
    assert not a.any()


@pytest.mark.parametrize(
    ("spec", "kwargs"),
    [
        ([RELU, {"units": 3, "activation": "softmax"}], {}),
        ([{"units": 1, "activation": "sigmoid"}], {"seed": 7}),
        ([RELU, {"units": 2, "activation": "linear"}], {"init": "xavier", "loss": "mse"}),
    ],
)
def test_describe_is_the_config_of_the_network_it_describes(
    spec: list[dict[str, Any]], kwargs: dict[str, Any]
) -> None:
    assert Network.describe(2, spec, **kwargs) == Network(2, spec, **kwargs).get_config()


def test_describe_refuses_what_the_network_refuses() -> None:
    # Every refusal of the table above but the dtype (describe builds no arrays).
    cases = [
        (0, [RELU], {}),
        (2, [], {}),
        (2, [{"units": 2}], {}),
        (2, [RELU], {"loss": "hinge"}),
        (2, [RELU], {"init": "lecun"}),
        (2, [RELU], {"seed": -1}),
        (2, [RELU, {"units": 1, "activation": "softmax"}], {}),
    ]
    for input_size, spec, kwargs in cases:
        with pytest.raises(ConfigError) as described:
            Network.describe(input_size, spec, **kwargs)
        assert (described.value.loc, described.value.message) == (
            (built := refusal(input_size, spec, **kwargs)).loc,
            built.message,
        )
