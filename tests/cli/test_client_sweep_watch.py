"""``backprop sweep watch`` reopens a dropped event stream with Last-Event-ID (as ``jobs
follow`` does), so each trial shows once; a stream that cannot be reopened is reported."""

from __future__ import annotations

import json

import httpx
import pytest

from app.client import follow as following
from app.client import sweeps
from app.client.http import Api, Unreachable

SWEEP = {
    "id": "swp_1",
    "trials": [{}, {}, {}],
    "metric": "val_loss",
    "status": "running",
    "best": None,
}


def _trial(index: int) -> dict[str, object]:
    return {
        "index": index,
        "status": "succeeded",
        "epochs_run": 4,
        "score": 0.5 + index,
        "params": {"job.batch_size": 8 * (index + 1)},
    }


def _sse(*events: tuple[str, str | None, dict[str, object]]) -> bytes:
    text = ""
    for name, event_id, data in events:
        head = f"id: {event_id}\n" if event_id is not None else ""
        text += f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"
    return text.encode()


def test_a_dropped_sweep_stream_is_reopened_after_the_last_trial(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(following, "RECONNECT_SECONDS", 0.0)
    asked: list[str | None] = []
    best = {"index": 0, "score": 0.5, "model_id": "mdl_0", "params": {}, "job_id": "job_0"}

    def server(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Last-Event-ID"))
        if len(asked) == 1:  # two trials, then the connection closes without an end
            body = _sse(("trial", "1", _trial(2)), ("trial", "2", _trial(0)))
        elif len(asked) == 2:  # closes again before anything new
            body = b": keep-alive\n\n"
        else:
            end = {"status": "succeeded", "best": best}
            body = _sse(("trial", "3", _trial(1)), ("end", None, end))
        return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})

    api = Api("http://backprop.test", "bp_k", transport=httpx.MockTransport(server))
    assert sweeps.watch_sweep(api, SWEEP) == 0
    assert asked == [None, "2", "2"]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" after")[0] for line in lines[:3]] == [
        "[1] trial 2 succeeded",
        "[2] trial 0 succeeded",
        "[3] trial 1 succeeded",
    ]
    assert lines[3] == "sweep swp_1 succeeded (3 trials); best trial 0: val_loss=0.5, model mdl_0"


def test_a_sweep_stream_that_keeps_closing_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(following, "RECONNECT_SECONDS", 0.0)
    attempts = 0

    def empty(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return httpx.Response(200, content=b"", headers={"Content-Type": "text/event-stream"})

    api = Api("http://backprop.test", "bp_k", transport=httpx.MockTransport(empty))
    with pytest.raises(Unreachable, match="keeps closing"):
        sweeps.watch_sweep(api, SWEEP)
    assert attempts == following.RECONNECTS + 1
