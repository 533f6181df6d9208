"""``backprop models list|show|evaluate``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from app.client.evaluate import add_evaluate
from app.client.output import Column, number, when
from app.client.reads import Subparsers, add_actions, add_list, add_show

PATH = "/v1/models"


def score(model: Mapping[str, Any]) -> str:
    """The model's headline validation score: accuracy for classifiers, else r2 or loss."""
    metrics = model["metrics"] or {}
    for name in ("val_accuracy", "val_r2", "val_loss", "accuracy", "r2", "loss"):
        if name in metrics:
            return f"{name} {number(metrics[name])}"
    return "-"


COLUMNS: list[Column] = [
    ("ID", lambda m: m["id"]),
    ("TASK", lambda m: m["task"]),
    ("NETWORK", lambda m: m["network_id"] or "-"),
    ("JOB", lambda m: m["job_id"] or "-"),
    ("DATASET", lambda m: m["dataset_id"] or "-"),
    ("SCORE", score),
    ("PARAMETERS", lambda m: str(m["parameter_count"])),
    ("CREATED", lambda m: when(m["created_at"])),
]


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    actions = add_actions(commands, "models", "inspect trained models")
    empty = "(no models: train one with `backprop train`)"
    add_list(
        actions,
        common,
        path=PATH,
        columns=COLUMNS,
        empty=empty,
        filters=("network_id", "dataset_id"),
    )
    add_show(actions, common, path=PATH, noun="model")
    add_evaluate(actions, common)
