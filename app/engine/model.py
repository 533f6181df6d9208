"""A trained model: a network, its input standardisation and its label map.

Export layout (the primer's): an npz with W1..WL of shape (n[l], n[l-1]) and b1..bL of
shape (n[l],), plus x_mean and x_std of shape (n[0],) when standardisation is on; and a
JSON config::

    {"format": "backprop-mlp", "version": 1, "network": <Network.get_config()>,
     "task": "binary" | "multiclass" | "regression", "classes": [...] | null,
     "standardize": true | false}

Import validates every key, shape, dtype (float32 or float64) and value (finite, std > 0)
before building anything, and refuses all else with an ExportFormatError naming the
array or key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import labels, npzio
from app.engine.errors import ConfigError, ExportFormatError
from app.engine.network import Network
from app.engine.preprocessing import Standardizer, check_features

Array = npt.NDArray[np.floating[Any]]
FORMAT = "backprop-mlp"
VERSION = 1
CONFIG_KEYS = ("format", "version", "network", "task", "classes", "standardize")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
ACTIVATIONS_PER_UNIT = 3  # a[l-1], z[l], a[l] of the widest layer, per row


class Model:
    """network + optional standardisation (x_mean, x_std (n[0],)) + classes for classifiers."""

    def __init__(
        self,
        network: Network,
        task: str,
        classes: list[Any] | None = None,
        x_mean: Array | None = None,
        x_std: Array | None = None,
    ) -> None:
        self.network = network
        self.task = task
        self.classes = classes
        self.x_mean = x_mean
        self.x_std = x_std

    @property
    def standardize(self) -> bool:
        """Whether inputs are standardised before the network sees them."""
        return self.x_mean is not None

    def predict(self, x: npt.ArrayLike) -> Array:
        """Raw features x (m, n[0]) -> outputs a[L] (m, n[L]) in the network dtype
        (probabilities for classifiers). DataError for bad shapes or non-finite values."""
        return self.predict_checked(check_features(x, self.network.input_size, self.network.dtype))

    def predict_checked(self, xs: Array, max_activation_bytes: int | None = None) -> Array:
        """``predict`` for features that already are what ``check_features`` returns: a
        C-contiguous (m, n[0]) array of the network dtype, all finite. Nothing is checked
        again (a caller that validated the rows itself saves the second pass).

        With ``max_activation_bytes`` the rows go through the network in blocks of
        :meth:`block_rows` rows, so the activations alive at once stay under that many
        bytes whatever m and the layer widths; the outputs are the same."""
        m = xs.shape[0]
        block = m if max_activation_bytes is None else self.block_rows(max_activation_bytes)
        if block >= m:
            return self._forward(xs)
        outputs = np.empty((m, self.network.output_size), dtype=self.network.dtype)
        for start in range(0, m, block):
            outputs[start : start + block] = self._forward(xs[start : start + block])
        return outputs

    def block_rows(self, max_activation_bytes: int) -> int:
        """Rows per forward block: a layer's step holds its input a[l-1], z[l] and a[l],
        at most 3 x the widest layer (n[0] included) values per row."""
        widest = max(self.network.input_size, *self.network.layer_sizes)
        per_row = ACTIVATIONS_PER_UNIT * widest * self.network.dtype.itemsize
        return max(1, max_activation_bytes // per_row)

    def _forward(self, xs: Array) -> Array:
        """Standardise (when the model does) and run the network on rows xs (b, n[0])."""
        if self.x_mean is not None and self.x_std is not None:
            xs = Standardizer(self.x_mean, self.x_std).transform(xs)
        return self.network.forward(xs)

    def labels(self, outputs: npt.ArrayLike) -> list[Any]:
        """Classifier outputs (m, n[L]) -> original labels (p > 0.5 for binary, argmax
        for multiclass). ConfigError for a regression model."""
        return labels.decode(np.asarray(outputs), self.task, self.classes)

    # --- export -----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The JSON half of an export (see the module docstring)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "network": self.network.get_config(),
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
            "standardize": self.standardize,
        }

    def export_arrays(self) -> dict[str, Array]:
        """W1..WL (n[l], n[l-1]), b1..bL (n[l],), and x_mean / x_std (n[0],) if standardised."""
        arrays: dict[str, Array] = {}
        for i, w in enumerate(self.network.weights, start=1):
            arrays[f"W{i}"] = np.ascontiguousarray(w)
        for i, b in enumerate(self.network.biases, start=1):
            arrays[f"b{i}"] = np.ascontiguousarray(b)
        if self.x_mean is not None and self.x_std is not None:
            arrays["x_mean"] = self.x_mean
            arrays["x_std"] = self.x_std
        return arrays

    def export_npz(self) -> bytes:
        """The array half of an export as npz bytes (np.savez; nothing pickled)."""
        return npzio.dump(self.export_arrays())

    # --- import -----------------------------------------------------------------------

    @classmethod
    def from_export(cls, npz: bytes, config: Mapping[str, Any]) -> Model:
        """Rebuild an exported model; ExportFormatError for anything malformed."""
        network, task, classes, standardize = _parse_config(config)
        expected = _expected_shapes(network, standardize)
        arrays = npzio.load(npz, _header_check(expected), "model npz")
        return cls._assemble(network, task, classes, standardize, expected, arrays)

    @staticmethod
    def check_export_config(config: Mapping[str, Any]) -> None:
        """ExportFormatError for what ``from_export`` would refuse in ``config`` alone,
        located in it (before any array is read), and for classes a new model may not
        have though a stored one still loads with them: what no dataset could hold."""
        _parse_config(config)
        _check_new_classes(config.get("classes"))

    @classmethod
    def from_weights(cls, network_config: Mapping[str, Any], npz: bytes) -> Model:
        """A model from user-supplied weights for a given architecture.

        The task follows the network's loss (classifier classes default to [0, 1] or
        [0, ..., k-1]); standardisation is on when the npz carries x_mean and x_std.
        """
        try:
            network = Network.from_config(network_config)
        except ConfigError as exc:
            raise ExportFormatError(exc.message, ("network", *exc.loc)) from exc
        task = labels.task_of(network.loss)
        if task == "binary" and network.output_size != 1:
            raise ExportFormatError(
                "a binary classifier needs exactly one sigmoid output unit", ("network",)
            )
        classes = None if task == "regression" else list(range(max(2, network.output_size)))
        with_stats = _expected_shapes(network, standardize=True)
        arrays = npzio.load(npz, _header_check(with_stats), "model npz")
        standardize = "x_mean" in arrays or "x_std" in arrays
        expected = _expected_shapes(network, standardize)
        return cls._assemble(network, task, classes, standardize, expected, arrays)

    @classmethod
    def _assemble(
        cls,
        network: Network,
        task: str,
        classes: list[Any] | None,
        standardize: bool,
        expected: dict[str, tuple[int, ...]],
        arrays: dict[str, npt.NDArray[Any]],
    ) -> Model:
        for name in expected:
            if name not in arrays:
                raise ExportFormatError(f"the npz has no array {name!r}", (name,))
        for name, array in arrays.items():
            if not np.isfinite(array).all():
                raise ExportFormatError(f"array {name!r} contains NaN or infinite values", (name,))
        dtype = arrays["W1"].dtype
        if any(arrays[name].dtype != dtype for name in expected):
            raise ExportFormatError("all arrays must share one dtype (float32 or float64)", ("W1",))
        network = Network.from_config(network.get_config(), dtype=dtype)
        depth = network.depth
        network.set_parameters(
            [arrays[f"W{i}"] for i in range(1, depth + 1)],
            [arrays[f"b{i}"] for i in range(1, depth + 1)],
        )
        x_mean = x_std = None
        if standardize:
            x_mean, x_std = arrays["x_mean"], arrays["x_std"]
            if not (x_std > 0).all():
                raise ExportFormatError("x_std must be positive", ("x_std",))
        return cls(network, task, classes, x_mean, x_std)


def _expected_shapes(network: Network, standardize: bool) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (w, b) in enumerate(zip(network.weights, network.biases, strict=True), start=1):
        shapes[f"W{i}"] = w.shape
        shapes[f"b{i}"] = b.shape
    if standardize:
        shapes["x_mean"] = shapes["x_std"] = (network.input_size,)
    return shapes


def _header_check(expected: dict[str, tuple[int, ...]]) -> npzio.HeaderCheck:
    def check(name: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        if name not in expected:
            valid = ", ".join(expected)
            raise ExportFormatError(f"unexpected array {name!r}; this model has {valid}", (name,))
        if dtype not in FLOAT_DTYPES:
            raise ExportFormatError(
                f"array {name!r} has dtype {dtype}; expected float32 or float64", (name,)
            )
        if shape != expected[name]:
            raise ExportFormatError(
                f"array {name!r} has shape {shape}; the network needs {expected[name]}", (name,)
            )

    return check


def _parse_config(config: Mapping[str, Any]) -> tuple[Network, str, list[Any] | None, bool]:
    if not isinstance(config, Mapping):
        raise ExportFormatError("the model config must be a JSON object", ())
    for key in config:
        if key not in CONFIG_KEYS:
            raise ExportFormatError(f"unknown config key {key!r}", (str(key),))
    for key in CONFIG_KEYS:
        if key not in config:
            raise ExportFormatError(f"the model config is missing {key!r}", (key,))
    version = config["version"]  # an integer, strictly: not 1.0 or true
    if config["format"] != FORMAT or type(version) is not int or version != VERSION:
        raise ExportFormatError(f"not a {FORMAT} version {VERSION} config", ("format",))
    try:
        network = Network.from_config(config["network"])
    except ConfigError as exc:
        raise ExportFormatError(exc.message, ("network", *exc.loc)) from exc
    task = config["task"]
    if task not in labels.TASKS or task != labels.task_of(network.loss):
        raise ExportFormatError(
            f"task {task!r} does not match the network's loss {network.loss} "
            f"(expected {labels.task_of(network.loss)!r})",
            ("task",),
        )
    if not isinstance(config["standardize"], bool):
        raise ExportFormatError("standardize must be true or false", ("standardize",))
    return network, task, _parse_classes(config["classes"], task, network), config["standardize"]


def _check_new_classes(classes: Any) -> None:
    """ExportFormatError for the classes of a model being imported that a dataset's labels
    could not be (the API could not read them back, or they would merge): booleans mixed
    with numbers (False == 0 in a label map), integers mixed with floats (no dataset's
    labels are: a y holding a float is stored as floats; such a model would predict 0
    beside 1.0), a NUL, or over MAX_LABEL_CHARS characters. Checked at import only: a
    model stored before these rules still loads (and one trained from it keeps them)."""
    if not isinstance(classes, list):
        return
    kinds = {bool if isinstance(c, bool) else type(c) for c in classes}
    if len(kinds & {bool, int, float}) > 1:
        raise ExportFormatError(
            "classes must be JSON scalars of one kind (strings, integers, floats or booleans)",
            ("classes",),
        )
    for i, c in enumerate(classes):
        why = labels.text_label_problem(c) if isinstance(c, str) else None
        if why is not None:
            raise ExportFormatError(f"classes[{i}] {why}", ("classes", i))


def _parse_classes(classes: Any, task: str, network: Network) -> list[Any] | None:
    if task == "regression":
        if classes is not None:
            raise ExportFormatError("a regression model has no classes (use null)", ("classes",))
        return None
    wanted = 2 if task == "binary" else network.output_size
    if not isinstance(classes, list) or len(classes) != wanted:
        raise ExportFormatError(
            f"classes must be a list of {wanted} labels for this {task} model", ("classes",)
        )
    kinds = {type(c) for c in classes}
    if not all(isinstance(c, str | int | float | bool) for c in classes) or (
        str in kinds and len(kinds) > 1
    ):
        raise ExportFormatError(
            "classes must be JSON scalars of one kind (strings or numbers)", ("classes",)
        )
    if any(isinstance(c, float) and not np.isfinite(c) for c in classes):
        raise ExportFormatError("classes must be finite", ("classes",))
    if len(set(classes)) != len(classes):
        raise ExportFormatError("classes must be distinct", ("classes",))
    return list(classes)
