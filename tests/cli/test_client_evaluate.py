"""``backprop models evaluate MODEL --dataset ID`` against a real `backprop serve`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, write_csv

pytestmark = pytest.mark.slow  # a real `serve` process: API + worker


def test_models_evaluate(cli: Cli, dataset_id: str, network_id: str, tmp_path: Path) -> None:
    trained = cli("train", "--dataset", dataset_id, "--network", network_id, "--epochs", "20",
                  "--follow")  # fmt: skip
    assert trained.status == 0, trained
    (model_id,) = trained.out.split()
    held_out = cli.id(
        "datasets", "upload", str(write_csv(tmp_path / "held.csv", rows=50, seed=3)),
        "--target", "kind",
    )  # fmt: skip

    result = cli("models", "evaluate", model_id, "--dataset", held_out)
    assert result.status == 0, result
    lines = result.out.splitlines()
    assert (
        lines[0].startswith("evaluation ev_")
        and f"of {model_id} on {held_out}: 50 rows" in lines[0]
    )
    assert [line.split()[0] for line in lines[1:4]] == ["accuracy", "log_loss", "roc_auc"]
    assert "confusion matrix (rows: true class, columns: predicted)" in result.out
    header = lines.index("confusion matrix (rows: true class, columns: predicted)") + 1
    assert lines[header].split() == ["no", "yes"]
    counts = [int(v) for row in lines[header + 1 : header + 3] for v in row.split()[1:]]
    assert sum(counts) == 50
    assert any(line.split()[:1] == ["CLASS"] for line in lines)
    assert any(line.startswith("weighted avg") and line.split()[-1] == "50" for line in lines)
    assert "backprop models show" in result.err

    body = json.loads(cli.ok("models", "evaluate", model_id, "--dataset", held_out, "--json"))
    assert body["confusion_matrix"] == [counts[:2], counts[2:]]
    model = json.loads(cli.ok("models", "show", model_id, "--json"))
    assert [e["evaluation_id"] for e in model["card"]["evaluations"]][-1] == body["id"]

    odd = tmp_path / "odd.csv"
    odd.write_text("a,kind,b\n1,yes,1\n-1,maybe,-1\n")
    odd_id = cli.id("datasets", "upload", str(odd), "--target", "kind")
    refused = cli("models", "evaluate", model_id, "--dataset", odd_id)
    assert refused.status == 1
    assert "'maybe'" in refused.err and "(at body.dataset_id)" in refused.err
