"""The terminal client against a real `backprop serve`: every command, its output and its
exit status, the server's refusals and an unreachable server."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.cli import main
from tests.cli.conftest import Cli, Running, write_csv
from tests.cli.server import free_port

pytestmark = pytest.mark.slow  # a real `serve` process: API + worker


def test_datasets_upload_list_show(cli: Cli, csv_file: Path) -> None:
    result = cli("datasets", "upload", str(csv_file), "--target", "kind", "--name", "points")
    assert result.status == 0, result
    (dataset_id,) = result.out.split()
    assert dataset_id.startswith("ds_")
    assert (
        f"created dataset {dataset_id} 'points': 160 samples, 2 features, 2 classes" in result.err
    )

    shown = json.loads(cli.ok("datasets", "show", dataset_id, "--json"))
    assert shown["feature_names"] == ["a", "b"] and shown["classes"] == ["no", "yes"]
    text = cli.ok("datasets", "show", dataset_id)
    assert f"id:            {dataset_id}" in text and 'classes:       ["no", "yes"]' in text

    header, *rows = cli.ok("datasets", "list").splitlines()
    assert header.split() == ["ID", "NAME", "SAMPLES", "FEATURES", "LABELS", "CREATED"]
    assert any(r.split()[:6] == [dataset_id, "points", "160", "2", "2", "classes"] for r in rows)
    page = json.loads(cli.ok("datasets", "list", "--limit", "1", "--json"))
    assert len(page["items"]) == 1 and page["limit"] == 1


def test_upload_npz_and_the_refusals(cli: Cli, tmp_path: Path) -> None:
    npz = tmp_path / "blobs.npz"
    np.savez(npz, x=np.arange(12, dtype=np.float32).reshape(6, 2), y=np.array([0, 1] * 3))
    assert cli.id("datasets", "upload", str(npz)).startswith("ds_")

    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((3, 2)))
    result = cli("datasets", "upload", str(npy))
    assert result.status == 1 and "numpy.savez(FILE, x=x, y=y)" in result.err

    result = cli("datasets", "upload", str(tmp_path / "missing.csv"))
    assert result.status == 1 and "cannot read" in result.err and "missing.csv" in result.err

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,y\n1,2,0\n3,4\n")
    result = cli("datasets", "upload", str(ragged))
    assert result.status == 1
    assert result.err.startswith("error: the server refused (HTTP 422): line 3 has 2 fields")
    assert "(at body.file.line.3)" in result.err
    result = cli("datasets", "upload", str(write_csv(tmp_path / "p.csv")), "--target", "nope")
    assert result.status == 1 and "nope" in result.err and "(at body.target)" in result.err


def test_networks_create_list_show(cli: Cli) -> None:
    result = cli("networks", "create", "--input-size", "4", "--layers", "16:relu, 3:softmax")
    assert result.status == 0, result
    network_id = result.out.strip()
    assert f"created network {network_id} '4-16-3': 4 -> 16:relu,3:softmax" in result.err
    assert "loss categorical_crossentropy, 131 parameters" in result.err

    named = cli.id(
        "networks", "create", "--input-size", "2", "--layers", "1:sigmoid", "--name", "tiny"
    )
    body = json.loads(cli.ok("networks", "show", named, "--json"))
    assert (body["name"], body["layers"]) == ("tiny", [{"units": 1, "activation": "sigmoid"}])
    listing = cli.ok("networks", "list")
    assert f"{named}  tiny" in listing and "16:relu,3:softmax" in listing

    result = cli("networks", "create", "--input-size", "2", "--layers", "8:swish")
    assert result.status == 1
    # The enum refuses it and lists the valid names (Swagger UI offers the same choices).
    assert "'relu'" in result.err and "(at body.layers.0.activation)" in result.err
    with pytest.raises(SystemExit) as usage:  # refused before any request
        main(["networks", "create", "--input-size", "2", "--layers", "8relu"])
    assert usage.value.code == 2


def test_train_follow_without_a_terminal_then_models_and_predict(
    cli: Cli, dataset_id: str, network_id: str, tmp_path: Path
) -> None:
    result = cli(
        "train", "--dataset", dataset_id, "--network", network_id, "--epochs", "15",
        "--batch-size", "16", "--learning-rate", "0.05", "--validation-split", "0.25", "--follow",
    )  # fmt: skip
    assert result.status == 0, result
    (model_id,) = result.out.split()
    # Without a terminal: plain lines (the last epoch's always), then the outcome.
    last = [line for line in result.err.splitlines() if line.startswith("epoch 15/15")]
    assert last and "loss " in last[0] and "val_acc " in last[0] and "samples/s" in last[0]
    assert f"succeeded after 15 epochs: model {model_id}" in result.err

    job = json.loads(cli.ok("jobs", "list", "--status", "succeeded", "--json"))["items"][0]
    assert (job["model_id"], job["epochs"], job["options"]["batch_size"]) == (model_id, 15, 16)
    assert job["options"]["optimizer"]["learning_rate"] == 0.05
    assert f"{job['id']}  succeeded  15/15" in cli.ok("jobs", "list")
    assert "history:" in cli.ok("jobs", "show", job["id"])

    listed = cli.ok("models", "list", "--dataset-id", dataset_id)
    assert "DATASET" in listed and model_id in listed and dataset_id in listed
    model = json.loads(cli.ok("models", "show", model_id, "--json"))
    assert model["classes"] == ["no", "yes"] and model["dataset_id"] == dataset_id

    rows = np.array([[2.0, 2.0], [-2.0, -2.0], [1.5, 1.0]], dtype=np.float32)
    np.save(tmp_path / "rows.npy", rows)
    out = list(csv.reader(io.StringIO(cli.ok("predict", model_id, str(tmp_path / "rows.npy")))))
    assert out[0] == ["label", "p_no", "p_yes"]
    assert [r[0] for r in out[1:]] == ["yes", "no", "yes"]
    assert all(abs(float(r[1]) + float(r[2]) - 1) < 1e-5 for r in out[1:])
    answer = json.loads(cli.ok("predict", model_id, str(tmp_path / "rows.npy"), "--json"))
    assert answer["labels"] == ["yes", "no", "yes"] and len(answer["outputs"]) == 3

    # A CSV (its header row skipped) to a file, 2,500 rows: sent in three .npy bodies.
    features = tmp_path / "features.csv"
    grid = np.random.default_rng(1).normal(size=(2500, 2))
    features.write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in grid))
    result = cli("predict", model_id, str(features), "-o", str(tmp_path / "out.csv"))
    assert result.status == 0 and "wrote 2500 predictions" in result.err
    written = list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert len(written) == 2501
    expected = np.where(grid.sum(axis=1) > 0, "yes", "no")
    assert np.mean([r[0] for r in written[1:]] == expected) > 0.9

    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((2, 3)))
    result = cli("predict", model_id, str(wide))
    assert result.status == 1 and "(HTTP 422)" in result.err and "(at body" in result.err
    result = cli("predict", model_id, str(write_csv(tmp_path / "labelled.csv")))
    assert result.status == 1 and "line 2 is not all numbers" in result.err


def test_train_without_follow_prints_the_job_then_jobs_cancel(
    cli: Cli, client_server: Running, dataset_id: str, network_id: str
) -> None:
    # 300,000 epochs: still training when cancelled (100,000 take ~5 s here)
    result = cli("train", "--dataset", dataset_id, "--network", network_id, "--epochs", "300000")
    assert result.status == 0, result
    job_id = result.out.strip()
    assert job_id.startswith("job_") and "(300000 epochs)" in result.err
    shown = cli.ok("jobs", "show", job_id)
    assert re.search(rf"^id: +{job_id}$", shown, re.M)
    assert re.search("^epochs: +300000$", shown, re.M)

    result = cli("jobs", "cancel", job_id)
    assert result.status == 0, result
    assert job_id in result.err
    assert client_server.get(f"/v1/jobs/{job_id}").json()["cancel_requested"] is True
    follow = cli("jobs", "follow", job_id)  # until it has stopped
    assert follow.status == 1 and f"job {job_id} cancelled" in follow.err
    result = cli("jobs", "cancel", job_id)
    assert result.status == 1 and "(HTTP 409)" in result.err


def test_server_errors_name_what_and_where(cli: Cli, client_server: Running) -> None:
    result = cli("datasets", "show", "ds_nope")
    assert (result.status, result.out) == (1, "")
    assert result.err == (
        "error: the server refused (HTTP 404): dataset not found (at path.dataset_id)\n"
    )
    result = cli("jobs", "list", key="bp_" + "x" * 43)
    assert result.status == 1 and "(HTTP 401)" in result.err
    assert "BACKPROP_KEY" not in result.err  # a key was given: no hint to give one
    result = cli("models", "list", key=None)
    assert result.status == 1 and "(HTTP 401)" in result.err
    assert "pass --key KEY or set BACKPROP_KEY" in result.err
    result = cli("train", "--dataset", "ds_nope", "--network", "net_nope")
    assert result.status == 1 and "not found" in result.err


def test_url_and_key_from_the_environment(
    client_server: Running, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKPROP_URL", client_server.url)
    monkeypatch.setenv("BACKPROP_KEY", client_server.key)
    assert main(["networks", "list"]) == 0
    assert capsys.readouterr().out.startswith("ID  ")


def test_an_unreachable_server_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["datasets", "list", "--url", url, "--key", "bp_x"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the Backprop server at {url}")
    assert "--url or set BACKPROP_URL" in err


def test_export_writes_each_format_and_leaves_nothing_when_refused(
    cli: Cli, dataset_id: str, network_id: str, tmp_path: Path
) -> None:
    result = cli(
        "train", "--dataset", dataset_id, "--network", network_id, "--epochs", "3",
        "--batch-size", "16", "--follow",
    )  # fmt: skip
    assert result.status == 0, result
    (model_id,) = result.out.split()
    rows = np.array([[2.0, 2.0], [-2.0, -2.0]], dtype=np.float32)
    expected = json.loads(cli.ok("predict", model_id, _saved(tmp_path, rows), "--json"))

    npz = tmp_path / "m.npz"
    assert cli.ok("export", model_id, "--format", "npz", "-o", str(npz)).strip() == str(npz)
    with np.load(npz, allow_pickle=False) as archive:
        assert archive.files  # the weights archive /weights serves

    script = tmp_path / "m.py"
    cli.ok("export", model_id, "--format", "python", "-o", str(script))
    namespace: dict[str, Any] = {}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    answer = namespace["predict"](rows)
    assert answer["labels"] == expected["labels"]
    np.testing.assert_allclose(answer["outputs"], expected["outputs"], rtol=1e-5)

    onnx_file = tmp_path / "m.onnx"
    result = cli("export", model_id, "-o", str(onnx_file))  # onnx by default
    assert result.status == 0 and "as onnx" in result.err
    import onnx

    graph = onnx.load(onnx_file)
    onnx.checker.check_model(graph)
    assert [o.name for o in graph.graph.output] == ["outputs", "labels"]

    missing = tmp_path / "missing.onnx"
    result = cli("export", "mdl_doesnotexist", "-o", str(missing))
    assert result.status == 1 and "(HTTP 404)" in result.err
    assert not missing.exists() and not missing.with_name("missing.onnx.part").exists()


def _saved(folder: Path, rows: np.ndarray) -> str:
    path = folder / "rows.npy"
    np.save(path, rows)
    return str(path)
