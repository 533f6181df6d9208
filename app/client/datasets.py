"""``backprop datasets upload|list|show``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.client.http import Api, ClientError
from app.client.output import Column, note, print_json, when
from app.client.reads import Subparsers, add_actions, add_list, add_show

PATH = "/v1/datasets"
MEDIA_TYPES = {".csv": "text/csv", ".npz": "application/zip"}


def labels(dataset: Mapping[str, Any]) -> str:
    """The label column in words: ``3 classes``, ``continuous`` or ``2 targets``."""
    if dataset["label_kind"] == "categorical":
        return f"{len(dataset['classes'] or [])} classes"
    if dataset["label_kind"] == "multi_output":
        return f"{dataset['n_targets']} targets"
    return "continuous"


COLUMNS: list[Column] = [
    ("ID", lambda d: d["id"]),
    ("NAME", lambda d: d["name"]),
    ("SAMPLES", lambda d: str(d["n_samples"])),
    ("FEATURES", lambda d: str(d["n_features"])),
    ("LABELS", labels),
    ("CREATED", lambda d: when(d["created_at"])),
]


def read_file(path: Path) -> bytes:
    """The file's bytes, or a ClientError that says why not."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None


def upload(api: Api, args: argparse.Namespace) -> int:
    path: Path = args.file
    suffix = path.suffix.lower()
    if suffix == ".npy":
        raise ClientError(
            f"{path} holds one array, a dataset needs two: save features and labels together "
            "with numpy.savez(FILE, x=x, y=y) and upload the .npz (or upload a CSV)"
        )
    fields = {"name": args.name, "target": args.target}
    body = api.post_form(
        f"{PATH}/upload",
        files={"file": (path.name, read_file(path), MEDIA_TYPES.get(suffix, "text/csv"))},
        data={k: v for k, v in fields.items() if v is not None},
    )
    if args.json:
        print_json(body)
        return 0
    note(
        f"created dataset {body['id']} {body['name']!r}: {body['n_samples']} samples, "
        f"{body['n_features']} features, {labels(body)}"
    )
    print(body["id"])
    return 0


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    actions = add_actions(commands, "datasets", "upload and inspect datasets")
    parser = actions.add_parser(
        "upload", parents=[common], help="upload a CSV (header row; labels: last column) or npz"
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a .csv, or a .npz with x and y")
    parser.add_argument("--target", help="the CSV's label column (default: the last)")
    parser.add_argument("--name", help="the dataset's name (default: the file name)")
    parser.set_defaults(client_command=upload)
    empty = "(no datasets: upload one with `backprop datasets upload FILE`)"
    add_list(actions, common, path=PATH, columns=COLUMNS, empty=empty)
    add_show(actions, common, path=PATH, noun="dataset")
