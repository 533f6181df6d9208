"""Toy data sets, label description and target encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.engine import labels
from app.engine.datasets import generate
from app.engine.errors import ConfigError, DataError, InputWidthError
from app.engine.labels import describe_labels
from app.engine.preprocessing import Standardizer, check_features

F32 = np.dtype(np.float32)


@pytest.mark.parametrize("kind", ["xor", "moons", "circles", "spirals", "blobs"])
def test_generated_sets_have_the_contract_shapes(kind: str) -> None:
    classes = 3 if kind in ("spirals", "blobs") else 2
    x, y = generate(kind, n_samples=90, classes=classes, seed=4)
    assert x.dtype == np.float32 and x.shape == (90, 2)
    assert y.dtype == np.int64 and y.shape == (90,)
    assert sorted(set(y.tolist())) == list(range(classes))
    x2, y2 = generate(kind, n_samples=90, classes=classes, seed=4)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_xor_corners() -> None:
    x, y = generate("xor", n_samples=4)
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        ({"kind": "swiss"}, ("kind",)),
        ({"kind": "moons", "n_samples": 0}, ("n_samples",)),
        ({"kind": "moons", "n_samples": 2.5}, ("n_samples",)),
        ({"kind": "moons", "classes": 3}, ("classes",)),
        ({"kind": "spirals", "classes": 1}, ("classes",)),
        ({"kind": "spirals", "classes": 5, "n_samples": 4}, ("n_samples",)),
        ({"kind": "blobs", "noise": -1.0}, ("noise",)),
        ({"kind": "blobs", "seed": -3}, ("seed",)),
    ],
)
def test_bad_generator_arguments(kwargs: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        generate(**kwargs)
    assert info.value.loc == loc


def test_describe_labels() -> None:
    assert describe_labels(np.array([2, 0, 2])) == ("categorical", [0, 2])
    assert describe_labels(np.array(["b", "a"])) == ("categorical", ["a", "b"])
    assert describe_labels(np.array([True, False])) == ("categorical", [False, True])
    assert describe_labels(np.array([0.5, 1.5])) == ("continuous", None)
    assert describe_labels(np.zeros((3, 2))) == ("multi_output", None)


def test_binary_labels_map_to_zero_and_one() -> None:
    y, classes = labels.encode(np.array(["spam", "ham", "spam"]), "binary", 1, F32)
    assert classes == ["ham", "spam"] and y.tolist() == [[1.0], [0.0], [1.0]] and y.dtype == F32
    y, classes = labels.encode([True, False], "binary", 1, F32)
    assert classes == [False, True] and y.tolist() == [[1.0], [0.0]]
    y, classes = labels.encode(np.array([[3], [7]]), "binary", 1, F32, classes=[3, 7])
    assert y.tolist() == [[0.0], [1.0]]


def test_multiclass_labels_are_one_hot_in_class_order() -> None:
    y, classes = labels.encode([2, 10, 2, 5], "multiclass", 3, F32)
    assert classes == [2, 5, 10]
    assert y.tolist() == [[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]]
    probs = np.array([[0.2, 0.8], [1.0, 0.0]])
    y, classes = labels.encode(probs, "multiclass", 2, F32)
    assert classes == [0, 1] and np.allclose(y, probs)
    assert labels.decode(np.array([[0.1, 0.7, 0.2]]), "multiclass", ["a", "b", "c"]) == ["b"]


def test_regression_targets() -> None:
    y, classes = labels.encode([1.5, 2.5], "regression", 1, F32)
    assert classes is None and y.shape == (2, 1)
    y, _ = labels.encode(np.ones((4, 3)), "regression", 3, F32)
    assert y.shape == (4, 3)
    # Finite in float64 but not in the network's float32: named, not an overflow warning.
    with pytest.raises(DataError, match=r"y\[1\] is beyond the range of the network's float32"):
        labels.encode([0.0, -1e308, 2.0], "regression", 1, F32)
    assert labels.encode([0.0, -1e308], "regression", 1, np.dtype(np.float64))[0][1, 0] == -1e308


@pytest.mark.parametrize(
    ("y", "task", "units", "words"),
    [
        ([0, 1, 2], "binary", 1, "3 distinct"),
        ([1, 1], "binary", 1, "1 distinct"),
        (["a", "b"], "multiclass", 3, "2 distinct"),
        ([0.0, 1.0], "binary", 1, "class labels"),
        (np.ones((3, 3)), "multiclass", 2, "class labels"),
        ([1, "a"], "binary", 1, "mixes"),
        ([1, None], "binary", 1, "null"),
        (["a", "b"], "regression", 1, "numbers"),
        (np.ones((3, 2)), "regression", 1, "2 target column"),
        ([1.0, float("nan")], "regression", 1, "finite"),
        (np.array([[0.5, 0.6]]), "multiclass", 2, "probabilities"),
        (np.zeros((2, 2, 2)), "regression", 1, "shape"),
    ],
)
def test_targets_that_do_not_fit_are_refused(y: Any, task: str, units: int, words: str) -> None:
    with pytest.raises(DataError) as info:
        labels.encode(y, task, units, F32)
    assert info.value.loc[0] == "y" and words in info.value.message


def test_unknown_label_for_given_classes() -> None:
    with pytest.raises(DataError, match="not one of the classes"):
        labels.encode(["a", "z"], "binary", 1, F32, classes=["a", "b"])


def test_standardizer_fits_and_guards_constant_features() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    stats = Standardizer.fit(x)
    assert stats.mean.tolist() == [2.0, 5.0] and stats.std.tolist() == [1.0, 1.0]
    assert stats.transform(x).tolist() == [[-1.0, 0.0], [1.0, 0.0]]


def test_check_features_names_the_bad_cell() -> None:
    with pytest.raises(DataError) as info:
        check_features([[1.0, 2.0], [3.0, float("inf")]], 2, F32)
    assert info.value.loc == ("x", 1, 1)
    with pytest.raises(DataError) as info:
        check_features([[1e300, 0.0]], 2, F32)
    assert info.value.loc == ("x", 0, 0)
    with pytest.raises(DataError):
        check_features(np.array([["a", "b"]]), 2, F32)
    with pytest.raises(DataError):
        check_features(np.zeros((0, 2)), 2, F32)


def test_the_epoch_loop_trains_on_an_aligned_x() -> None:
    """Unshuffled batches are slices of x: an unaligned x (a view of stored npz bytes) is
    copied once, an aligned one is used as it is."""
    from app.engine.loop import EpochLoop
    from app.engine.network import Network
    from app.engine.options import TrainingOptions
    from app.engine.trainingdata import TrainingData

    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    unaligned = np.frombuffer(b"\x00" + values.tobytes(), dtype=np.float32, offset=1)
    unaligned = unaligned.reshape(3, 4)
    assert not unaligned.flags.aligned and not unaligned.flags.writeable
    net = Network(4, [{"units": 2, "activation": "softmax"}])
    y = np.zeros((3, 2), dtype=np.float32)
    options = TrainingOptions(batch_size=2, shuffle=False, seed=0)

    def loop_over(x: np.ndarray) -> EpochLoop:
        data = TrainingData(x, y, None, None, "multiclass", [0, 1], None)
        return EpochLoop(net, data, options)

    loop = loop_over(unaligned)
    assert loop.xs.flags.aligned and loop.xs is not unaligned
    np.testing.assert_array_equal(loop.xs, values)
    assert loop_over(values).xs is values


def test_training_on_a_read_only_view_leaves_it_untouched() -> None:
    """A worker trains on x as a read-only view of the stored npz bytes."""
    from app.engine.network import Network
    from app.engine.training import Trainer, TrainingOptions

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    for standardize in (True, False):
        for offset in (0, 1):
            raw = b"\x00" * offset + x.tobytes()
            view = np.frombuffer(raw, dtype=np.float32, offset=offset).reshape(40, 3)
            net = Network(
                3, [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
            )
            options = TrainingOptions(
                epochs=2, batch_size=8, standardize=standardize, shuffle=False
            )
            result = Trainer(net, view, y, options).run()
            assert len(result.history) == 2
            np.testing.assert_array_equal(view, x)


ROWS_REFUSED: list[tuple[str, Any, tuple[Any, ...]]] = [
    ("ragged", [[0, 0], [1]], ("x", 1)),
    ("no rows", [], ("x",)),
    ("empty row", [[]], ("x", 0)),
    ("flat", [0, 1], ("x", 0)),
    ("nested", [[[0, 1]]], ("x", 0, 0)),
    ("string", [[0, "a"]], ("x", 0, 1)),
    ("null", [[0, None]], ("x", 0, 1)),
    ("not rows", 5, ("x",)),
    ("int beyond float64", [[0, 10**400]], ("x", 0, 1)),
    ("boolean array", np.ones((1, 2), dtype=bool), ("x",)),
    ("complex array", np.ones((1, 2), dtype=complex), ("x",)),
    ("1-D array", np.ones(2), ("x",)),
]


@pytest.mark.parametrize(("case", "x", "loc"), ROWS_REFUSED, ids=[c[0] for c in ROWS_REFUSED])
def test_check_features_names_the_row_or_value_at_fault(
    case: str, x: Any, loc: tuple[Any, ...]
) -> None:
    with pytest.raises(DataError) as info:
        check_features(x, 2, F32)
    assert info.value.loc == loc
    assert not isinstance(info.value, InputWidthError)


def test_check_features_takes_rows_and_arrays_alike_and_any_loc() -> None:
    rows = [[1, 2.5], [True, -3e2]]
    expected = np.array([[1.0, 2.5], [1.0, -300.0]], dtype=np.float32)
    for x in (rows, np.array(rows), np.array(rows, dtype=">f8"), np.asfortranarray(rows)):
        out = check_features(x, None, F32, loc=())
        assert out.dtype == F32 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, expected)
    with pytest.raises(InputWidthError) as info:
        check_features(rows, 3, F32, loc=("body", "x"))
    assert info.value.loc == ("body", "x")
    with pytest.raises(DataError) as info:
        check_features([[0.0, float("nan")]], None, F32, loc=())
    assert info.value.loc == (0, 1)
