"""The client's pure parts: the event-stream parser, the progress text, option bodies,
and its layering (HTTP only: nothing from the server side)."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from app.cli import build_parser, main
from app.client import batch
from app.client import follow as following
from app.client.entry import server_of
from app.client.http import Api, ClientError, Unreachable
from app.client.networks import parse_layers
from app.client.predict import output_columns
from app.client.progress import EpochStats, LiveBar, LogLines, epoch_display, metrics_text
from app.client.sse import Event, events
from app.client.train import job_body
from tests.processes import free_port

CLIENT = Path(__file__).resolve().parents[2] / "app" / "client"
SERVER_SIDE = {"fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "pydantic_settings"}


def test_the_client_imports_nothing_from_the_server_side() -> None:
    files = sorted(CLIENT.glob("*.py"))
    assert len(files) > 5
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in SERVER_SIDE, f"{path.name} imports {name}"
                if top == "app":
                    assert name.startswith("app.client"), f"{path.name} imports {name}"


# Run in a fresh interpreter: import app.cli, build the whole parser, run one client
# command against a port nothing listens on; print the modules that were loaded.
CLIENT_RUN = """
import json, sys
from app.cli import build_parser, main
build_parser().format_help()
status = main(["jobs", "list", "--url", sys.argv[1]])
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def test_help_and_client_commands_load_nothing_from_the_server_side() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-c", CLIENT_RUN, url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["status"] == Unreachable.exit_code
    assert "cannot reach the Backprop server" in done.stderr
    modules: list[str] = answer["modules"]
    assert "app.client.jobs" in modules
    server = [m for m in modules if m.split(".")[0] in SERVER_SIDE | {"numpy"}]
    assert server == []  # numpy too: `backprop worker` sets its BLAS threads before it loads
    ours = [m for m in modules if m.split(".")[0] == "app"]
    assert [m for m in ours if m != "app.cli" and not m.startswith("app.client")] == ["app"]


def test_events_follow_the_event_stream_format() -> None:
    lines = [
        ": keep-alive",
        "",
        "id: 1",
        "event: epoch",
        'data: {"epoch": 1}',
        "",
        "data:two",
        "data: lines",
        "",
        "event: end",
        "data: {}",
        "",
        "data: never terminated",
    ]
    assert list(events(lines)) == [
        Event("epoch", '{"epoch": 1}', "1"),
        Event("message", "two\nlines", "1"),  # the last id holds until another is sent
        Event("end", "{}", "1"),
    ]


def test_progress_text_has_training_then_validation_metrics() -> None:
    entry = {"epoch": 3, "loss": 0.123456, "accuracy": 0.9, "val_loss": 0.2, "val_accuracy": 0.85}
    entry |= {"learning_rate": 0.01, "seconds": 2.0, "samples_per_second": 12345.6}
    assert metrics_text(entry) == "loss 0.1235 acc 0.9 val_loss 0.2 val_acc 0.85"
    assert metrics_text({"epoch": 1, "loss": 2.0, "mae": 1.5, "r2": -0.5}) == (
        "loss 2 mae 1.5 r2 -0.5"
    )

    stats = EpochStats(epochs=10)
    for epoch, seconds in [(1, 10.0), (2, 2.0), (3, 2.0), (4, 2.0), (5, 2.0), (6, 2.0)]:
        entry = {"epoch": epoch, "loss": 1.0, "seconds": seconds, "samples_per_second": 1e4}
        stats.add(entry, now=100.0)  # a replayed history: all at once
    # 4 epochs left at the mean of the last five (2 s each): the slow first one has aged out.
    assert (stats.speed, stats.eta) == ("10,000 samples/s", "ETA 0:00:08")

    # Live: epochs 7 and 8 three seconds apart: the wall clock rules (92 left x 3 s).
    stats.epochs = 100
    stats.add({"epoch": 7, "loss": 1.0, "seconds": 0.01}, now=103.0)
    stats.add({"epoch": 8, "loss": 1.0, "seconds": 0.01}, now=106.0)
    assert stats.eta == "ETA 0:04:36"
    # Then one a second from t=200 to epoch 40: only the last 30 s count (60 left x 1 s).
    for epoch in range(9, 41):
        stats.add({"epoch": epoch, "loss": 1.0, "seconds": 0.01}, now=191.0 + epoch)
    assert stats.eta == "ETA 0:01:00"


def test_without_a_terminal_the_display_is_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console(file=None, stderr=True, force_terminal=False)
    display = epoch_display(console, epochs=3)
    assert isinstance(display, LogLines)
    for epoch in (1, 2):
        display.epoch({"epoch": epoch, "loss": 1.0 / epoch, "seconds": 1.0})
    display.stop()
    assert capsys.readouterr().err.splitlines() == [
        "epoch 1/3  loss 1  ETA 0:00:02",
        "epoch 2/3  loss 0.5  ETA 0:00:01",  # the last epoch seen, printed at the end
    ]
    terminal = Console(force_terminal=True, force_interactive=True)
    assert isinstance(epoch_display(terminal, epochs=3), LiveBar)


def test_layers_spec() -> None:
    assert parse_layers("64:relu, 10:softmax") == [
        {"units": 64, "activation": "relu"},
        {"units": 10, "activation": "softmax"},
    ]
    for bad in ("64relu", "x:relu", "64:", ":relu", "64:relu,"):
        with pytest.raises(argparse.ArgumentTypeError, match="UNITS:ACTIVATION"):
            parse_layers(bad)


def test_train_options_nest_as_the_job_body_does() -> None:
    argv = "train --dataset ds_1 --network net_1 --learning-rate 0.1 --optimizer sgd"
    args = build_parser().parse_args([*argv.split(), "--patience", "5", "--no-shuffle", "-f"])
    assert job_body(args) == {
        "network_id": "net_1",
        "dataset_id": "ds_1",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "early_stopping": {"patience": 5},
        "shuffle": False,
    }


def test_prediction_columns() -> None:
    assert output_columns({"classes": ["a", "b", "c"]}, 3) == ["p_a", "p_b", "p_c"]
    assert output_columns({"classes": [0, 1]}, 1) == ["p_1"]
    assert output_columns({"classes": None}, 1) == ["output"]
    assert output_columns({"classes": None}, 2) == ["output_1", "output_2"]


def _sse(*events: tuple[str, dict[str, object]]) -> bytes:
    text = ""
    for name, data in events:
        head = f"id: {data['epoch']}\n" if name == "epoch" else ""
        text += f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"
    return text.encode()


def test_a_dropped_event_stream_is_reopened_after_the_last_epoch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(following, "RECONNECT_SECONDS", 0.0)
    asked: list[str | None] = []
    epochs = [{"epoch": e, "loss": 1.0 / e, "seconds": 0.5} for e in (1, 2, 3)]

    def server(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Last-Event-ID"))
        if len(asked) == 1:  # two epochs, then the connection closes without an end
            body = _sse(("epoch", epochs[0]), ("epoch", epochs[1]))
        else:
            end = {"status": "succeeded", "model_id": "mdl_1", "error": None}
            body = _sse(("epoch", epochs[1]), ("epoch", epochs[2]), ("end", end))
        return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})

    api = Api("http://backprop.test", "bp_k", transport=httpx.MockTransport(server))
    console = Console(stderr=True, force_terminal=False)
    assert following.follow(api, {"id": "job_1", "epochs": 3}, console) == 0

    assert asked == [None, "2"]
    captured = capsys.readouterr()
    assert captured.out == "mdl_1\n"
    assert captured.err.splitlines() == [
        "epoch 1/3  loss 1  ETA 0:00:01",
        "epoch 3/3  loss 0.3333  ETA 0:00:00",  # epoch 2 (sent twice) shown once, no line due
        "job job_1 succeeded after 3 epochs: model mdl_1",
    ]


def test_a_stream_that_cannot_be_reopened_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(following, "RECONNECT_SECONDS", 0.0)
    attempts = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("Connection refused", request=request)

    api = Api("http://backprop.test", "bp_k", transport=httpx.MockTransport(refuse))
    console = Console(stderr=True, force_terminal=False)
    with pytest.raises(
        Unreachable, match=r"cannot reach the Backprop server at http://backprop\.test"
    ):
        following.follow(api, {"id": "job_1", "epochs": 3}, console)
    assert attempts == following.RECONNECTS + 1


def test_an_answer_that_is_not_json_names_the_url() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>a router's login page</html>")

    api = Api("http://router.test", None, transport=httpx.MockTransport(page))
    with pytest.raises(ClientError, match=r"is http://router\.test a Backprop server"):
        api.get("/v1/jobs")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "npy"),
        (["-o", "scores.CSV"], "csv"),
        (["-o", "scores.npy"], "npy"),
        (["-o", "scores.txt"], "npy"),
        (["-o", "scores.csv", "--format", "npy"], "npy"),  # said outright: as said
        (["--format", "csv"], "csv"),
    ],
)
def test_predict_batch_writes_the_format_of_its_out_files_suffix(
    argv: list[str], expected: str
) -> None:
    args = build_parser().parse_args(["predict-batch", "mdl_x", "ds_x", *argv])
    assert batch.output_format(args) == expected


def test_the_server_and_key_may_come_before_or_after_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BACKPROP_URL", raising=False)
    monkeypatch.delenv("BACKPROP_KEY", raising=False)
    parse = build_parser().parse_args
    before = parse(["--url", "http://a:1", "--key", "bp_a", "jobs", "list"])
    assert server_of(before) == ("http://a:1", "bp_a")
    after = parse(["jobs", "list", "--url", "http://b:2", "--key", "bp_b"])
    assert server_of(after) == ("http://b:2", "bp_b")
    both = parse(["--url", "http://a:1", "jobs", "list", "--url", "http://b:2"])
    assert server_of(both) == ("http://b:2", None)  # the command's own wins
    monkeypatch.setenv("BACKPROP_URL", "http://env:3")
    assert server_of(parse(["jobs", "list"])) == ("http://env:3", None)


def test_url_and_key_are_refused_before_a_server_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--url", "http://a:1", "migrate"])
    assert exited.value.code == 2
    assert "--url and --key are for the client commands, not `migrate`" in capsys.readouterr().err
