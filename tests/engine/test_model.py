"""Model: prediction with standardisation and labels; export -> import; import refusals."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
import pytest

from app.engine import npzio
from app.engine.errors import ConfigError, DataError, ExportFormatError
from app.engine.model import Model
from app.engine.network import Network


def make_model(standardize: bool = True, dtype: Any = np.float32) -> Model:
    net = Network(
        3,
        [{"units": 5, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
        seed=1,
        dtype=dtype,
    )
    mean = np.array([1.0, -2.0, 0.5], dtype=dtype) if standardize else None
    std = np.array([2.0, 0.5, 1.0], dtype=dtype) if standardize else None
    return Model(net, "multiclass", ["cat", "dog", "emu"], mean, std)


def rewrite(npz: bytes, **changes: Any) -> bytes:
    arrays = npzio.load(npz, npzio.accept_any)
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    return npzio.dump(arrays)


def test_predict_standardises_and_labels() -> None:
    model = make_model()
    x = np.array([[1.0, -2.0, 0.5], [3.0, -1.5, 1.5]])
    assert model.x_mean is not None and model.x_std is not None
    expected = model.network.forward((x - model.x_mean) / model.x_std)
    out = model.predict(x)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, expected)
    assert model.labels(out) == [["cat", "dog", "emu"][i] for i in np.argmax(out, axis=1)]


def test_binary_labels_use_the_half_threshold() -> None:
    net = Network(1, [{"units": 1, "activation": "sigmoid"}])
    model = Model(net, "binary", [False, True])
    assert model.labels(np.array([[0.2], [0.5], [0.51]])) == [False, False, True]


def test_regression_has_no_labels() -> None:
    model = Model(Network(2, [{"units": 2, "activation": "linear"}]), "regression")
    with pytest.raises(ConfigError):
        model.labels(np.zeros((1, 2)))


def test_predict_refuses_bad_rows() -> None:
    model = make_model()
    with pytest.raises(DataError) as info:
        model.predict([[1.0, 2.0, 3.0], [1.0, float("nan"), 0.0]])
    assert info.value.loc == ("x", 1, 1)
    with pytest.raises(DataError) as info:
        model.predict([[1.0, 2.0]])
    assert info.value.loc == ("x",)


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_export_import_gives_identical_predictions(standardize: bool, dtype: Any) -> None:
    model = make_model(standardize, dtype)
    npz, config = model.export_npz(), json.loads(json.dumps(model.get_config()))
    arrays = np.load(io.BytesIO(npz), allow_pickle=False)
    assert sorted(arrays.files) == sorted(
        ["W1", "W2", "b1", "b2", *(["x_mean", "x_std"] if standardize else [])]
    )
    assert arrays["W1"].shape == (5, 3) and arrays["b2"].shape == (3,)
    assert config["format"] == "backprop-mlp" and config["classes"] == ["cat", "dog", "emu"]
    twin = Model.from_export(npz, config)
    x = np.random.default_rng(0).standard_normal((20, 3))
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))
    assert twin.classes == model.classes and twin.task == "multiclass"
    assert twin.network.dtype == dtype


def test_from_weights_infers_the_task() -> None:
    model = make_model()
    twin = Model.from_weights(model.network.get_config(), model.export_npz())
    assert twin.task == "multiclass" and twin.classes == [0, 1, 2] and twin.standardize
    x = np.ones((2, 3))
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))
    reg = Model(Network(2, [{"units": 1, "activation": "linear"}]), "regression")
    twin = Model.from_weights(reg.network.get_config(), reg.export_npz())
    assert twin.task == "regression" and twin.classes is None and not twin.standardize


@pytest.mark.parametrize(
    ("changes", "loc", "words"),
    [
        ({"W1": np.zeros((3, 5), np.float32)}, ("W1",), "shape"),
        ({"b2": np.zeros((3, 1), np.float32)}, ("b2",), "shape"),
        ({"W2": np.zeros((3, 5), np.int64)}, ("W2",), "dtype"),
        ({"W2": np.zeros((3, 5), np.float16)}, ("W2",), "dtype"),
        ({"W2": np.zeros((3, 5), np.complex64)}, ("W2",), "dtype"),
        ({"W2": None}, ("W2",), "no array"),
        ({"x_std": None}, ("x_std",), "no array"),
        ({"W3": np.zeros((3, 3), np.float32)}, ("W3",), "unexpected"),
        ({"W1": np.full((5, 3), np.nan, np.float32)}, ("W1",), "NaN"),
        ({"x_std": np.zeros(3, np.float32)}, ("x_std",), "positive"),
        ({"W1": np.zeros((5, 3), np.float64)}, ("W1",), "one dtype"),
    ],
)
def test_import_refuses_malformed_arrays(
    changes: dict[str, Any], loc: tuple[str, ...], words: str
) -> None:
    model = make_model()
    with pytest.raises(ExportFormatError) as info:
        Model.from_export(rewrite(model.export_npz(), **changes), model.get_config())
    assert info.value.loc == loc and words in info.value.message


def test_import_refuses_object_arrays_and_non_archives() -> None:
    model = make_model()
    buffer = io.BytesIO()
    np.savez(buffer, W1=np.array([{"a": 1}], dtype=object))
    for blob in (buffer.getvalue(), b"not a zip", b""):
        with pytest.raises(ExportFormatError):
            Model.from_export(blob, model.get_config())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("W1.npy", b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(ExportFormatError):
        Model.from_export(buffer.getvalue(), model.get_config())


def test_forged_header_is_refused_before_reading() -> None:
    """A header claiming a huge shape is refused from the header alone."""
    model = make_model()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("W1.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:])
    with pytest.raises(ExportFormatError) as info:
        Model.from_export(buffer.getvalue(), model.get_config())
    assert info.value.loc == ("W1",)


@pytest.mark.parametrize(
    ("key", "value", "loc"),
    [
        ("format", "keras", ("format",)),
        ("version", 2, ("format",)),
        ("version", 1.0, ("format",)),  # an integer, strictly
        ("version", True, ("format",)),
        ("version", "1", ("format",)),
        ("task", "regression", ("task",)),
        ("task", "ranking", ("task",)),
        ("classes", ["a", "b"], ("classes",)),
        ("classes", ["a", "a", "b"], ("classes",)),
        ("classes", ["a", 1, "b"], ("classes",)),
        ("classes", None, ("classes",)),
        ("standardize", "yes", ("standardize",)),
        (
            "network",
            {"input_size": 3, "layers": [{"units": 3, "activation": "softmax"}], "init": "x"},
            ("network", "init"),
        ),
        ("network", "dense", ("network",)),
        ("extra", 1, ("extra",)),
    ],
)
def test_import_refuses_malformed_configs(key: str, value: Any, loc: tuple[str, ...]) -> None:
    model = make_model()
    config = model.get_config()
    config[key] = value
    with pytest.raises(ExportFormatError) as info:
        Model.from_export(model.export_npz(), config)
    assert info.value.loc == loc


def test_import_refuses_missing_keys_and_wrong_standardize_flag() -> None:
    model = make_model()
    config = model.get_config()
    del config["classes"]
    with pytest.raises(ExportFormatError) as info:
        Model.from_export(model.export_npz(), config)
    assert info.value.loc == ("classes",)
    config = model.get_config() | {"standardize": False}
    with pytest.raises(ExportFormatError) as info:
        Model.from_export(model.export_npz(), config)
    assert info.value.loc == ("x_mean",)
