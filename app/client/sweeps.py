"""``backprop sweep create|list|show|watch|cancel``: hyperparameter sweeps.

``create FILE`` posts a POST /v1/sweeps body read from a JSON file (``-`` for stdin;
``--dataset`` sets its dataset_id) and prints the sweep's id; ``--watch`` then follows it.
``show`` prints the leaderboard, best first. ``watch`` prints one line per finished trial
from GET /v1/sweeps/{id}/events, with the count done and the best so far, then the end;
a dropped stream is reopened with ``Last-Event-ID``, so no trial shows twice.
Exit status of ``watch``: 0 when the sweep succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.client import follow as following
from app.client.http import Api, Unreachable
from app.client.output import Column, note, number, print_json, table, when
from app.client.reads import Subparsers, add_actions, add_list
from app.client.sse import events

PATH = "/v1/sweeps"
EXIT_FAILED = 1


def _params(trial: Mapping[str, Any]) -> str:
    return " ".join(f"{path}={json.dumps(value)}" for path, value in trial["params"].items())


def _done(sweep: Mapping[str, Any]) -> int:
    return sum(t["status"] in ("succeeded", "failed", "cancelled") for t in sweep["trials"])


COLUMNS: list[Column] = [
    ("ID", lambda s: s["id"]),
    ("NAME", lambda s: s["name"]),
    ("STATUS", lambda s: s["status"]),
    ("TRIALS", lambda s: f"{_done(s)}/{len(s['trials'])}"),
    ("METRIC", lambda s: s["metric"]),
    ("BEST", lambda s: number((s["best"] or {}).get("score"))),
    ("CREATED", lambda s: when(s["created_at"])),
]
TRIAL_COLUMNS: list[Column] = [
    ("#", lambda t: str(t["index"])),
    ("STATUS", lambda t: t["status"]),
    ("SCORE", lambda t: number(t["score"])),
    ("EPOCHS", lambda t: f"{t['epochs_run']}/{t['epochs']}"),
    ("MODEL", lambda t: t["model_id"] or "-"),
    ("PARAMS", _params),
]


def sweep_path(sweep_id: str) -> str:
    return f"{PATH}/{quote(sweep_id, safe='')}"


def leaderboard(trials: Sequence[Mapping[str, Any]], maximise: bool) -> list[Mapping[str, Any]]:
    """Scored trials best first, then the others in index order."""
    scored = [t for t in trials if t["score"] is not None]
    scored.sort(key=lambda t: -t["score"] if maximise else t["score"])
    return [*scored, *(t for t in trials if t["score"] is None)]


def _read_body(args: argparse.Namespace) -> dict[str, Any]:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    body = json.loads(text)
    if not isinstance(body, dict):
        raise ValueError("the sweep file holds a JSON object (a POST /v1/sweeps body)")
    if args.dataset is not None:
        body["dataset_id"] = args.dataset
    return body


def create(api: Api, args: argparse.Namespace) -> int:
    try:
        body = _read_body(args)
    except (OSError, ValueError) as exc:
        note(f"cannot read the sweep file {args.file}: {exc}")
        return EXIT_FAILED
    sweep = api.post(PATH, body)
    if args.json:
        print_json(sweep)
    else:
        print(sweep["id"])
        strategy = sweep["strategy"]["name"]
        note(
            f"queued sweep {sweep['id']} '{sweep['name']}': "
            f"{len(sweep['trials'])} trials, {strategy}"
        )
    return watch_sweep(api, sweep) if args.watch else 0


def show(api: Api, args: argparse.Namespace) -> int:
    sweep = api.get(sweep_path(args.id))
    if args.json:
        print_json(sweep)
        return 0
    best = sweep["best"]
    note(
        f"sweep {sweep['id']} '{sweep['name']}': {sweep['status']}, "
        f"{_done(sweep)}/{len(sweep['trials'])} trials, {sweep['metric']} "
        f"({'higher' if sweep['maximise'] else 'lower'} is better)"
    )
    if best is not None:
        note(
            f"best: trial {best['index']} {sweep['metric']}={number(best['score'])} "
            f"model {best['model_id']}"
        )
    table(leaderboard(sweep["trials"], sweep["maximise"]), TRIAL_COLUMNS)
    return 0


def _trial_events(api: Api, sweep_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of the sweep's stream until its ``end``. A dropped stream is
    reopened with ``Last-Event-ID`` (as ``jobs follow`` does), so no trial shows twice;
    :data:`app.client.follow.RECONNECTS` drops in a row without an event give up (Unreachable)."""
    path = f"{sweep_path(sweep_id)}/events"
    last_id: str | None = None
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        before = last_id
        try:
            with api.stream(path, headers=headers) as response:
                for event in events(response.iter_lines()):
                    if event.event == "trial":
                        last_id = event.id
                    yield event.event, json.loads(event.data)
                    if event.event == "end":
                        return
        except Unreachable:
            if failures >= following.RECONNECTS:
                raise
        failures = 0 if last_id != before else failures + 1
        if failures > following.RECONNECTS:
            raise Unreachable(f"the event stream {api.url}{path} keeps closing")
        time.sleep(following.RECONNECT_SECONDS)


def watch_sweep(api: Api, sweep: Mapping[str, Any]) -> int:
    """One line per trial event; the end's status decides the exit status."""
    total, metric = len(sweep["trials"]), sweep["metric"]
    seen = 0
    end: dict[str, Any] = {"status": sweep["status"], "best": sweep["best"]}
    for name, data in _trial_events(api, sweep["id"]):
        if name == "trial":
            seen += 1
            note(
                f"[{seen}] trial {data['index']} {data['status']} after "
                f"{data['epochs_run']} epochs: {metric}={number(data['score'])}  "
                f"{_params(data)}"
            )
        elif name == "end":
            end = data
    best = end.get("best")
    summary = f"sweep {sweep['id']} {end['status']} ({total} trials)"
    if best:
        score = number(best["score"])
        summary += f"; best trial {best['index']}: {metric}={score}, model {best['model_id']}"
    note(summary)
    return 0 if end["status"] == "succeeded" else EXIT_FAILED


def watch(api: Api, args: argparse.Namespace) -> int:
    return watch_sweep(api, api.get(sweep_path(args.id)))


def cancel(api: Api, args: argparse.Namespace) -> int:
    sweep = api.post(f"{sweep_path(args.id)}/cancel")
    if args.json:
        print_json(sweep)
    else:
        note(f"sweep {sweep['id']} cancelled: {_done(sweep)} trials ended; finished models kept")
    return 0


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    actions = add_actions(commands, "sweep", "hyperparameter sweeps: trials over the workers")
    parser = actions.add_parser("create", parents=[common], help="queue a sweep from a JSON file")
    parser.add_argument("file", metavar="FILE", help="a POST /v1/sweeps body (- for stdin)")
    parser.add_argument("--dataset", help="the dataset id (overrides the file's dataset_id)")
    parser.add_argument("--watch", action="store_true", help="then follow it to its end")
    parser.set_defaults(client_command=create)
    add_list(actions, common, path=PATH, columns=COLUMNS, empty="(no sweeps)")
    for name, command, text in (
        ("show", show, "its leaderboard, best first"),
        ("watch", watch, "a line per finished trial until the sweep ends"),
        ("cancel", cancel, "stop its trials (finished models are kept)"),
    ):
        parser = actions.add_parser(name, parents=[common], help=text)
        parser.add_argument("id", metavar="SWEEP")
        parser.set_defaults(client_command=command)
