"""``backprop train --dataset ID --network ID [options] [--follow]``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.console import Console

from app.client.follow import follow
from app.client.http import Api
from app.client.output import note, print_json
from app.client.reads import Subparsers

# Each option: its flag, where it goes in the JobCreate body, its type, and help (the
# server's default in parentheses). Unset options are left out: the server's defaults hold.
OPTIONS: list[tuple[str, tuple[str, ...], Callable[[str], Any], str]] = [
    ("--epochs", ("epochs",), int, "passes over the training data (100)"),
    ("--batch-size", ("batch_size",), int, "samples per gradient step (32)"),
    ("--optimizer", ("optimizer", "name"), str, "sgd, momentum or adam (adam)"),
    ("--learning-rate", ("optimizer", "learning_rate"), float, "step size (0.01)"),
    ("--momentum", ("optimizer", "momentum"), float, "momentum optimizer's factor (0.9)"),
    ("--validation-split", ("validation_split",), float, "fraction held out (0.2)"),
    ("--l2", ("l2",), float, "weight decay (0)"),
    ("--clip-norm", ("clip_norm",), float, "gradient norm limit (none)"),
    ("--patience", ("early_stopping", "patience"), int, "stop after N epochs without gain"),
    ("--min-delta", ("early_stopping", "min_delta"), float, "smallest gain that counts (0)"),
    ("--schedule", ("lr_schedule", "name"), str, "constant, step or cosine (constant)"),
    ("--seed", ("seed",), int, "shuffling and validation split seed (0)"),
    ("--init-model", ("init_model_id",), str, "start from this model's weights"),
]


def dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def job_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /v1/jobs body: the ids, and each option that was given."""
    body: dict[str, Any] = {"network_id": args.network, "dataset_id": args.dataset}
    for flag, path, _, _ in OPTIONS:
        value = getattr(args, dest(flag))
        if value is not None:
            node = body
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    for switch in ("standardize", "shuffle"):
        if getattr(args, switch) is not None:
            body[switch] = getattr(args, switch)
    return body


def train(api: Api, args: argparse.Namespace) -> int:
    job = api.post("/v1/jobs", job_body(args))
    if args.follow:
        note(f"queued job {job['id']}; Ctrl-C asks whether to cancel it")
        return follow(api, job, Console(stderr=True))
    if args.json:
        print_json(job)
        return 0
    note(f"queued job {job['id']} ({job['epochs']} epochs); follow it: `backprop jobs follow ID`")
    print(job["id"])
    return 0


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "train", parents=[common], help="queue a training job (--follow: watch it train)"
    )
    parser.add_argument("--dataset", required=True, metavar="DATASET", help="a dataset id")
    parser.add_argument("--network", required=True, metavar="NETWORK", help="a network id")
    for flag, _, kind, help in OPTIONS:
        metavar = "N" if kind is int else "X" if kind is float else dest(flag).upper()
        parser.add_argument(flag, type=kind, default=None, metavar=metavar, help=help)
    for switch in ("standardize", "shuffle"):
        parser.add_argument(
            f"--no-{switch}",
            dest=switch,
            action="store_const",
            const=False,
            default=None,
            help=f"do not {switch} (the server's default is to)",
        )
    parser.add_argument(
        "--follow", "-f", action="store_true", help="show a live progress bar until it ends"
    )
    parser.set_defaults(client_command=train)
