"""``backprop sweep``: create from a file and watch, show the leaderboard, list, cancel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Cli

pytestmark = pytest.mark.slow  # a real `serve` process: API + worker


def test_sweep_create_watch_show_list_cancel(cli: Cli, dataset_id: str, tmp_path: Path) -> None:
    body = {
        "name": "rates",
        "network": {
            "input_size": 2,
            "layers": [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "softmax"}],
        },
        "job": {"epochs": 4, "batch_size": 16, "validation_split": 0.25},
        "grid": {"job.optimizer.learning_rate": [0.003, 0.03, 0.3]},
        "strategy": {"name": "grid"},
        "metric": "val_accuracy",
    }
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps(body))

    result = cli("sweep", "create", str(spec), "--dataset", dataset_id, "--watch")

    assert result.status == 0, result
    (sweep_id,) = result.out.split()
    assert f"queued sweep {sweep_id} 'rates': 3 trials, grid" in result.err
    assert result.err.count("] trial ") == 3
    assert f"sweep {sweep_id} succeeded (3 trials); best trial" in result.err
    shown = json.loads(cli.ok("sweep", "show", sweep_id, "--json"))
    scores = sorted((t["score"] for t in shown["trials"]), reverse=True)
    text = cli("sweep", "show", sweep_id)
    header, *rows = text.out.splitlines()
    assert header.split() == ["#", "STATUS", "SCORE", "EPOCHS", "MODEL", "PARAMS"]
    assert [float(row.split()[2]) for row in rows] == pytest.approx(scores, rel=1e-3)
    assert "(higher is better)" in text.err
    listed = cli.ok("sweep", "list")
    assert any(
        line.split()[:4] == [sweep_id, "rates", "succeeded", "3/3"] for line in listed.splitlines()
    )
    trials = cli.ok("jobs", "list", "--sweep-id", sweep_id)
    assert "SWEEP#TRIAL" in trials.splitlines()[0].split() and len(trials.splitlines()) == 4
    assert all(f"{sweep_id}#{index}" in trials for index in range(3))
    refused = cli("sweep", "cancel", sweep_id)
    assert refused.status == 1 and "already finished" in refused.err
    bad = cli("sweep", "create", str(tmp_path / "missing.json"))
    assert bad.status == 1 and "cannot read the sweep file" in bad.err
