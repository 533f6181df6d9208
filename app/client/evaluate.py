"""``backprop models evaluate MODEL --dataset ID``: score a model on one of your datasets
(POST /v1/models/{id}/evaluate; the server keeps the result with the model) and print
the scores, the confusion matrix and the per-class table (per-target for regression).
A large dataset's evaluation runs in a worker, followed with a progress bar; Ctrl+C
cancels it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from app.client.http import Api, ClientError
from app.client.output import Column, note, number, print_json, table
from app.client.reads import Subparsers
from app.client.rows_progress import follow_or_cancel

CLASS_COLUMNS: list[Column] = [
    ("CLASS", lambda c: str(c["label"])),
    ("PRECISION", lambda c: number(c["precision"])),
    ("RECALL", lambda c: number(c["recall"])),
    ("F1", lambda c: number(c["f1"])),
    ("SUPPORT", lambda c: "" if c.get("support") is None else str(c["support"])),
]
TARGET_COLUMNS: list[Column] = [
    ("TARGET", lambda t: str(t["target"])),
    *(
        (name.upper(), lambda t, name=name: number(t[name]))
        for name in ("mse", "rmse", "mae", "r2")
    ),
]


def add_evaluate(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    parser = actions.add_parser(
        "evaluate",
        parents=[common],
        help="score a model on a dataset (kept with the model; shown on its card)",
    )
    parser.add_argument("id", metavar="MODEL")
    parser.add_argument(
        "--dataset", required=True, help="a dataset id with the model's inputs and labels"
    )
    parser.set_defaults(client_command=evaluate)


def _scores(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        print(f"{name:<{width}}  {number(value)}")


def _confusion(matrix: Sequence[Sequence[int]], classes: Sequence[Any]) -> None:
    print("\nconfusion matrix (rows: true class, columns: predicted)")
    labels = [str(c) for c in classes]
    cells = [["", *labels], *([labels[i], *map(str, row)] for i, row in enumerate(matrix))]
    widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))]
    for row in cells:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def print_evaluation(body: Mapping[str, Any]) -> None:
    """An evaluation as the terminal shows it."""
    dataset = body["dataset_id"] or "a deleted dataset"
    print(f"evaluation {body['id']} of {body['model_id']} on {dataset}: {body['n_samples']} rows")
    if body["task"] == "regression":
        _scores([(name, body[name]) for name in ("mse", "rmse", "mae", "r2")])
        print()
        table(body["per_target"], TARGET_COLUMNS)
        return
    _scores([(name, body[name]) for name in ("accuracy", "log_loss", "roc_auc")])
    _confusion(body["confusion_matrix"], body["classes"])
    print()
    averages = [
        {"label": "macro avg", **body["macro"], "support": None},
        {"label": "weighted avg", **body["weighted"], "support": body["n_samples"]},
    ]
    table([*body["per_class"], *averages], CLASS_COLUMNS)


def evaluate(api: Api, args: argparse.Namespace) -> int:
    path = f"/v1/models/{quote(args.id, safe='')}/evaluate"
    body = api.post(path, {"dataset_id": args.dataset})
    if body["status"] != "succeeded":  # a large dataset: a worker scores it (202)
        queued = f"evaluation {body['id']}: {body['rows_total']} rows, scored by a worker"
        path = f"/v1/evaluations/{quote(body['id'], safe='')}"
        followed = follow_or_cancel(api, path, body, "evaluation", queued)
        if followed is None:
            return 130
        body = followed
        if body["status"] != "succeeded":
            why = body.get("error") or ""
            raise ClientError(f"evaluation {body['id']} {body['status']}: {why}")
    if args.json:
        print_json(body)
    else:
        print_evaluation(body)
        note(f"kept with the model: backprop models show {args.id} lists its evaluations")
    return 0
