"""GET /v1/models/{id}/export?format=python: one file that needs only NumPy and answers
predict's outputs (within 1e-6 relative) and labels.

The file runs as a separate process, ``python -I model.py ROWS``, in a virtual
environment made for the test (``python -m venv``, without system site-packages) into
which only NumPy is linked: ``-I`` ignores PYTHONPATH (which points at this checkout) and
the user's site-packages, so besides the standard library NumPy is all it can import.
The test checks that, too.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.engine.activations import ACTIVATIONS
from app.services.export_python import PYTHON_ACTIVATIONS
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import make_network, train
from tests.api.export_models import (
    COMBINATIONS,
    HEADS,
    Head,
    assert_close,
    import_head,
    import_random_model,
    named_dataset,
    predicted,
    random_rows,
    stored_binary_model,
)

RELATIVE = 1e-6


@pytest.fixture(scope="module")
def numpy_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh venv whose site-packages hold NumPy and nothing else."""
    venv = tmp_path_factory.mktemp("numpy-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    numpy_home = Path(np.__file__).resolve().parent.parent
    for entry in numpy_home.iterdir():
        if entry.name == "numpy" or entry.name.startswith(("numpy-", "numpy.")):
            (Path(site) / entry.name).symlink_to(entry)
    probe = (
        "import importlib.util as u, sys; import numpy; "
        "print([m for m in ('app', 'fastapi', 'onnx', 'pydantic') if u.find_spec(m)])"
    )
    found = subprocess.run(
        [python, "-I", "-c", probe], cwd=venv, check=True, capture_output=True, text=True
    )
    assert found.stdout.strip() == "[]", found.stdout
    return python


def export_python(client: ApiClient, model_id: str, directory: Path) -> Path:
    response = client.get(f"/v1/models/{model_id}/export", params={"format": "python"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/x-python; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{model_id}.py"'
    path = directory / f"{model_id}.py"
    path.write_bytes(response.content)
    return path


def run_file(python: Path, path: Path, rows: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-I", path.name, str(rows)],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def printed(output: str, classifier: bool) -> tuple[np.ndarray, list[str] | None]:
    """The outputs and labels the command line printed (CSV, a label first if any)."""
    rows = list(csv.reader(io.StringIO(output)))
    if classifier:
        return np.asarray([[float(v) for v in r[1:]] for r in rows]), [r[0] for r in rows]
    return np.asarray([[float(v) for v in r] for r in rows]), None


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_against_predict(
    client: ApiClient, python: Path, model: dict[str, Any], x: np.ndarray, directory: Path
) -> Path:
    """The file's predict() and its command line against POST /predict for rows x."""
    path = export_python(client, model["id"], directory)
    expected = predicted(client, model["id"], x)
    answer = load_module(path).predict(x)
    assert isinstance(answer["outputs"], np.ndarray)
    assert_close(answer["outputs"], expected["outputs"], RELATIVE)
    assert answer["labels"] == expected["labels"]  # the same values of the same types
    np.save(directory / "rows.npy", x)
    done = run_file(python, path, directory / "rows.npy")
    assert done.returncode == 0, done.stderr
    outputs, labels = printed(done.stdout, model["classes"] is not None)
    assert_close(outputs, expected["outputs"], RELATIVE)
    if labels is not None:
        assert labels == [str(label) for label in expected["labels"]]
    return path


def test_every_activation_is_written() -> None:
    assert set(PYTHON_ACTIVATIONS) == set(ACTIVATIONS)


@pytest.mark.parametrize(("head", "standardize"), COMBINATIONS)
def test_the_file_answers_what_predict_answers(
    client: ApiClient, numpy_only_python: Path, tmp_path: Path, head: Head, standardize: bool
) -> None:
    model = import_head(client, head, standardize)
    check_against_predict(client, numpy_only_python, model, random_rows(300), tmp_path)


# [False, 1] is no longer imported (a dataset's labels cannot mix booleans with numbers);
# a stored model with such classes still exports (test_export_onnx makes one).
@pytest.mark.parametrize("classes", [[0, 1], [False, True], [0.5, 2.0]])
def test_labels_keep_their_values_and_types(
    client: ApiClient, numpy_only_python: Path, tmp_path: Path, classes: list[Any]
) -> None:
    layers = [{"units": 5, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
    model = import_random_model(
        client,
        layers,
        loss="binary_crossentropy",
        task="binary",
        classes=classes,
        standardize=False,
    )
    check_against_predict(client, numpy_only_python, model, random_rows(100), tmp_path)


def test_a_stored_bool_and_number_mix_keeps_its_types(
    client: ApiClient, db: Database, numpy_only_python: Path, tmp_path: Path
) -> None:
    """Classes [False, 1], stored before imports refused them: the file's labels are those
    values, types included, as predict's."""
    model = stored_binary_model(client, db, [False, 1])
    assert model["classes"] == [False, 1]
    check_against_predict(client, numpy_only_python, model, random_rows(100), tmp_path)


def test_float64_weights_are_embedded_exactly(
    client: ApiClient, numpy_only_python: Path, tmp_path: Path
) -> None:
    layers = [{"units": 6, "activation": "relu"}, {"units": 4, "activation": "softmax"}]
    model = import_random_model(
        client,
        layers,
        loss="categorical_crossentropy",
        task="multiclass",
        classes=[3, 7, 11, 20],
        standardize=True,
        dtype=np.float64,
    )
    path = check_against_predict(client, numpy_only_python, model, random_rows(100), tmp_path)
    module = load_module(path)
    weights = np.load(io.BytesIO(client.get(f"/v1/models/{model['id']}/weights").content))
    for i, w in enumerate(module.W, start=1):
        assert w.dtype == np.float64 and np.array_equal(w, weights[f"W{i}"])
    assert np.array_equal(module.X_STD, weights["x_std"])


def test_a_trained_model_reads_csv_with_a_header(
    client: ApiClient, db: Database, numpy_only_python: Path, tmp_path: Path
) -> None:
    dataset = named_dataset(client)
    job = train(client, db, make_network(client), dataset, epochs=30)
    model = client.get(f"/v1/models/{job['model_id']}").json()
    x = np.asarray(client.get(f"/v1/datasets/{dataset['id']}/data").json()["x"], np.float32)
    path = check_against_predict(client, numpy_only_python, model, x, tmp_path)
    module = load_module(path)
    assert module.FEATURE_NAMES == ["width", "depth"] and module.CLASSES == ["in", "out"]
    weights = np.load(io.BytesIO(client.get(f"/v1/models/{model['id']}/weights").content))
    for i, w in enumerate(module.W, start=1):  # float32, bit for bit
        assert w.dtype == np.float32 and np.array_equal(w, weights[f"W{i}"])
    rows = tmp_path / "rows.csv"
    rows.write_text("width,depth\n" + "\n".join(f"{a!r},{b!r}" for a, b in x.tolist()) + "\n")
    done = run_file(numpy_only_python, path, rows)
    assert done.returncode == 0, done.stderr
    outputs, labels = printed(done.stdout, classifier=True)
    expected = predicted(client, model["id"], x)
    assert_close(outputs, expected["outputs"], RELATIVE)
    assert labels == expected["labels"]


def test_the_file_reads_like_the_primer_and_refuses_bad_rows(
    client: ApiClient, numpy_only_python: Path, tmp_path: Path
) -> None:
    model = import_head(client, HEADS[0], standardize=True)
    path = export_python(client, model["id"], tmp_path)
    text = path.read_text()
    assert "z[l] = W[l]·a[l-1] + b[l]" in text and "a[l] = g[l](z[l])" in text
    assert "import app" not in text and "from app" not in text
    compile(text, str(path), "exec")
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((2, 5)))
    done = run_file(numpy_only_python, path, wide)
    assert done.returncode == 1 and "x must have shape (m, 3)" in done.stderr
    done = subprocess.run(
        [numpy_only_python, "-I", path.name], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2 and "usage" in done.stderr
