"""``backprop predict-batch MODEL DATASET`` against a real `backprop serve` (API + worker):
the downloaded outputs equal ``backprop predict`` on the same rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli.conftest import Cli

pytestmark = pytest.mark.slow  # a real `serve` process: API + worker


def test_predict_batch_downloads_what_predict_answers(
    cli: Cli, dataset_id: str, network_id: str, csv_file: Path, tmp_path: Path
) -> None:
    trained = cli("train", "--dataset", dataset_id, "--network", network_id, "--epochs", "5",
                  "--follow")  # fmt: skip
    assert trained.status == 0, trained
    (model_id,) = trained.out.split()
    features = tmp_path / "features.csv"
    rows = list(csv.reader(io.StringIO(csv_file.read_text())))[1:]
    features.write_text("".join(f"{a},{b}\n" for a, _, b in rows))
    answered = cli.ok("predict", model_id, str(features))
    expected = list(csv.reader(io.StringIO(answered)))

    npy_path = tmp_path / "out.npy"
    result = cli("predict-batch", model_id, dataset_id, "--out", str(npy_path))
    assert result.status == 0, result
    assert result.out.strip() == str(npy_path) and "prediction run pred_" in result.err
    outputs = np.load(npy_path, allow_pickle=False)
    assert outputs.shape == (len(rows), 2)
    # `backprop predict` writes label, p_no, p_yes (the classes' probabilities).
    assert expected[0] == ["label", "p_no", "p_yes"]
    predicted = np.asarray([line[1:] for line in expected[1:]], dtype=np.float64)
    np.testing.assert_array_equal(outputs, predicted.astype(np.float32))

    csv_path = tmp_path / "out.csv"
    # csv: its suffix; the dataset as an option, as `train` and `models evaluate` take it
    args = ("predict-batch", model_id, "--dataset", dataset_id, "-o", str(csv_path))
    body = json.loads(cli.ok(*args, "--json"))
    assert body["status"] == "succeeded" and body["rows_done"] == len(rows)
    lines = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert lines[0] == ["output_0", "output_1", "label"]
    assert [line[-1] for line in lines[1:]] == [line[0] for line in expected[1:]]

    refused = cli("predict-batch", model_id, "ds_0000000000000000")
    assert refused.status == 1 and "(at body.dataset_id)" in refused.err
    for datasets in ([], [dataset_id, "--dataset", "ds_0000000000000000"]):
        refused = cli("predict-batch", model_id, *datasets)
        assert refused.status == 1 and "give DATASET, or --dataset DATASET" in refused.err
    assert cli("predict-batch", model_id, dataset_id, "--dataset", dataset_id, "-o",
               str(csv_path)).status == 0  # fmt: skip
