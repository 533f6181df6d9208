"""A model as one Python file that needs only NumPy: the predictor a person can read.

The file holds the forward pass in a few commented lines (the primer's z[l] = W[l]·a[l-1]
+ b[l], a[l] = g[l](z[l])), ``predict(x) -> {"outputs": ndarray, "labels": list | None}``,
a command line (``python FILE.py ROWS.npy|ROWS.csv``) and, at its end, the weights, the
standardisation statistics and the classes. Each array is embedded as base64 of its
little-endian bytes, so the file computes with exactly the stored float32 (or float64)
values; the arithmetic is the engine's, so its outputs are predict's.

The file is produced in chunks (the code, then one array at a time), for a streamed
response.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from string import Template

import numpy as np

from app.engine.activations import LEAKY_SLOPE
from app.services.errors import Invalid
from app.services.export_source import FORMAT_LOC, ExportSource

MEDIA_TYPE = "text/x-python; charset=utf-8"
LINE = 100  # base64 characters per line of an embedded array

# NumPy for each engine activation (app.engine.activations.ACTIVATIONS), as the file
# writes it: the same operations in the same order as the engine, so the same results.
PYTHON_ACTIVATIONS: dict[str, str] = {
    "sigmoid": '''def sigmoid(z):
    """1 / (1 + e^-z), computed as 0.5 + 0.5·tanh(z/2), which cannot overflow."""
    return 0.5 + 0.5 * np.tanh(0.5 * z)
''',
    "tanh": '''def tanh(z):
    """tanh(z)."""
    return np.tanh(z)
''',
    "relu": '''def relu(z):
    """max(z, 0)."""
    return np.maximum(z, 0)
''',
    "leaky_relu": f'''def leaky_relu(z):
    """z for z > 0, {LEAKY_SLOPE}·z otherwise."""
    return np.maximum(z, {LEAKY_SLOPE!r} * z)
''',
    "softmax": '''def softmax(z):
    """e^(z_i - max z) / sum_j e^(z_j - max z), row by row (the max keeps every e^ <= 1)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
''',
    "linear": '''def linear(z):
    """z."""
    return z
''',
}

HEAD = Template('''"""Backprop model $model_id as one Python file; it needs only NumPy.

Task: $task; $n_in input features (FEATURE_NAMES below), $n_out outputs. Written by
Backprop $version. It answers what POST /v1/models/$model_id/predict answers:
the same arithmetic on the same weights (embedded at the end of this file).

From Python (with this file importable as $model_id):

    from $model_id import predict
    answer = predict(rows)  # rows (m, $n_in) -> {"outputs": (m, $n_out), "labels": ...}

From a shell, rows in a .npy file (a 2-D array) or a CSV file (one row per line; a header
line is skipped):

    python $model_id.py ROWS.npy

prints one CSV line per row: the label (classifiers only), then the outputs.
"""

import base64
import csv
import sys

import numpy as np

MODEL_ID = $model_id_literal
TASK = $task_literal  # binary | multiclass | regression
CLASSES = $classes  # labels in output order (None for regression)
FEATURE_NAMES = $feature_names
ACTIVATIONS = $activations  # g[l] of the layers l = 1..L
STANDARDIZE = $standardize  # inputs standardised with X_MEAN, X_STD
DTYPE = np.dtype($dtype)  # the arithmetic of the trained network


# --- the activation functions g ---------------------------------------------------------

$functions

G = {$table}


# --- the forward pass -------------------------------------------------------------------


def forward(x):
    """a[L] (m, n[L]) for standardised inputs x (m, n[0]), all m rows at once.

    W[l] has shape (n[l], n[l-1]) and b[l] (n[l],); a row of ``a`` is one sample, so
    W[l]·a[l-1] is written a @ W[l].T.
    """
    a = x  # a[0] = x
    for W_l, b_l, g_l in zip(W, b, ACTIVATIONS):
        z = a @ W_l.T + b_l  # z[l] = W[l]·a[l-1] + b[l]
        a = G[g_l](z)  # a[l] = g[l](z[l])
    return a


def predict(x):
    """{"outputs": (m, n[L]) array, "labels": m labels or None} for raw inputs x (m, n[0]).

    Outputs are probabilities for classifiers, values for regression; the label of a row
    is CLASSES[1] when its output is above 0.5 (binary, else CLASSES[0]), or the class of
    its largest output (multiclass). ValueError for a wrong shape or non-finite values.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"x must have shape (m, {len(FEATURE_NAMES)}), got {x.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32).astype(DTYPE)  # the server reads every value as float32
    if not np.isfinite(x).all():
        raise ValueError("x must be finite float32 numbers (no NaN, inf or overflow)")
    if STANDARDIZE:
        x = (x - X_MEAN) / X_STD  # x' = (x - mean) / std, feature by feature
    with np.errstate(all="ignore"):
        outputs = forward(x)
    if TASK == "binary":
        labels = [CLASSES[int(p > 0.5)] for p in outputs[:, 0]]
    elif TASK == "multiclass":
        labels = [CLASSES[int(i)] for i in outputs.argmax(axis=1)]
    else:
        labels = None
    return {"outputs": outputs, "labels": labels}


# --- the command line -------------------------------------------------------------------


def read_rows(path):
    """The (m, n[0]) rows of a .npy file, or of a CSV file whose first line may be a header."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    if rows:
        try:
            [float(cell) for cell in rows[0]]
        except ValueError:
            rows = rows[1:]  # a header
    try:
        return np.array([[float(cell) for cell in row] for row in rows])
    except ValueError as exc:
        raise ValueError(f"{path}: every row must be numbers of the same count ({exc})") from None


def main(argv):
    if len(argv) != 2:
        print(f"usage: python {argv[0]} ROWS.npy|ROWS.csv", file=sys.stderr)
        return 2
    try:
        answer = predict(read_rows(argv[1]))
    except (OSError, ValueError) as exc:
        print(f"{argv[0]}: {exc}", file=sys.stderr)
        return 1
    out = csv.writer(sys.stdout, lineterminator="\\n")
    for i, row in enumerate(answer["outputs"]):
        values = [repr(float(v)) for v in row]
        out.writerow(values if answer["labels"] is None else [answer["labels"][i], *values])
    return 0


# --- the model's numbers: base64 of each array's little-endian bytes ---------------------


def _array(shape, text):
    """The DTYPE array of ``shape`` whose little-endian bytes ``text`` holds (base64)."""
    data = base64.b64decode(text)  # line breaks are ignored
    return np.frombuffer(data, dtype=DTYPE.newbyteorder("<")).astype(DTYPE).reshape(shape)


''')

TAIL = """

if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""


def _embedded(array: np.ndarray) -> str:
    """``_array(shape, \"\"\"base64\"\"\")`` for an array, its bytes little-endian, C order."""
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    text = base64.b64encode(data).decode("ascii")
    lines = "\n".join(text[i : i + LINE] for i in range(0, len(text), LINE))
    return f'_array({tuple(int(n) for n in array.shape)!r}, """\n{lines}\n""")'


def _head(source: ExportSource) -> str:
    model = source.model
    network = model.network
    used = list(dict.fromkeys(network.activations))
    return HEAD.substitute(
        model_id=source.model_id,
        model_id_literal=repr(source.model_id),
        version=source.version,
        task=model.task,
        task_literal=repr(model.task),
        n_in=network.input_size,
        n_out=network.output_size,
        classes=repr(None if model.classes is None else list(model.classes)),
        feature_names=repr(list(source.feature_names)),
        activations=repr(list(network.activations)),
        standardize=repr(model.standardize),
        dtype=repr(network.dtype.name),
        functions="\n\n".join(PYTHON_ACTIVATIONS[name] for name in used),
        table=", ".join(f"{name!r}: {name}" for name in used),
    )


def _chunks(source: ExportSource) -> Iterator[bytes]:
    model = source.model
    network = model.network
    yield _head(source).encode()
    if model.x_mean is not None and model.x_std is not None:
        yield f"X_MEAN = {_embedded(model.x_mean)}  # x_mean (n[0],)\n".encode()
        yield f"X_STD = {_embedded(model.x_std)}  # x_std (n[0],)\n".encode()
    else:
        yield b"X_MEAN = X_STD = None  # inputs are not standardised\n"
    yield b"W = []  # W[l] (n[l], n[l-1]) for l = 1..L\n"
    for l, w in enumerate(network.weights, start=1):  # noqa: E741 (the primer's layer index)
        yield f"W.append({_embedded(w)})  # W[{l}]\n".encode()
    yield b"b = []  # b[l] (n[l],) for l = 1..L\n"
    for l, bias in enumerate(network.biases, start=1):  # noqa: E741
        yield f"b.append({_embedded(bias)})  # b[{l}]\n".encode()
    yield TAIL.encode()


def python_export(source: ExportSource) -> Iterator[bytes]:
    """The file's bytes in chunks; checked first, so a refusal (422) comes before any."""
    for l, name in enumerate(source.model.network.activations, start=1):  # noqa: E741
        if name not in PYTHON_ACTIVATIONS:
            raise Invalid(
                f"this model cannot be exported as Python: layer {l} uses activation "
                f"{name!r}, which the exporter does not know; format=npz can",
                FORMAT_LOC,
                error_type="not_exportable",
            )
    return _chunks(source)


def python_source(source: ExportSource) -> str:
    """The whole file as text."""
    return b"".join(python_export(source)).decode()
