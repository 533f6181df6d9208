"""``backprop predict-batch MODEL DATASET [--out FILE] [--format npy|csv]`` (or ``MODEL
--dataset DATASET``, as ``train`` and ``models evaluate`` take it): score a stored
dataset with a model in a worker (POST /v1/models/{id}/predictions), follow the run with
a progress bar, then download its outputs (npy: the array; csv: outputs and, for
classifiers, labels). Ctrl+C cancels the run."""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import quote

from app.client.http import Api, ClientError
from app.client.output import note, print_json
from app.client.reads import Subparsers
from app.client.rows_progress import follow_or_cancel


def output_format(args: argparse.Namespace) -> str:
    """--format, else the --out file's suffix (.csv or .npy), else npy."""
    if args.format is not None:
        return str(args.format)
    suffix = args.out.suffix.lower() if args.out is not None else ""
    return "csv" if suffix == ".csv" else "npy"


def dataset_of(args: argparse.Namespace) -> str:
    """The dataset id, given as the second argument or as --dataset (one of them)."""
    given = {value for value in (args.dataset, args.dataset_option) if value is not None}
    if len(given) != 1:
        which = "two different datasets" if given else "no dataset"
        raise ClientError(f"{which}: give DATASET, or --dataset DATASET")
    return str(given.pop())


def predict_batch(api: Api, args: argparse.Namespace) -> int:
    fmt = output_format(args)
    dataset = dataset_of(args)
    run = api.post(f"/v1/models/{quote(args.model, safe='')}/predictions", {"dataset_id": dataset})
    path = f"/v1/predictions/{quote(run['id'], safe='')}"
    queued = f"prediction run {run['id']}: {run['rows_total']} rows queued"
    followed = follow_or_cancel(api, path, run, "prediction run", queued)
    if followed is None:
        return 130
    run = followed
    if run["status"] != "succeeded":
        raise ClientError(f"prediction run {run['id']} {run['status']}: {run.get('error') or ''}")
    target = args.out or Path(f"{run['id']}.{fmt}")
    try:
        with target.open("wb") as out:
            size = api.download(f"{path}/download", out, {"format": fmt})
    except OSError as exc:
        raise ClientError(f"cannot write {target}: {exc.strerror}") from None
    if args.json:
        print_json(run)
    else:
        print(target)
        note(f"{run['rows_done']} rows, {size} bytes ({fmt})")
    return 0


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "predict-batch",
        parents=[common],
        help="score a stored dataset with a model in a worker; download the outputs",
    )
    parser.add_argument("model", metavar="MODEL", help="a model id")
    parser.add_argument(
        "dataset", metavar="DATASET", nargs="?", help="a dataset id with the model's width"
    )
    parser.add_argument(
        "--dataset", dest="dataset_option", metavar="DATASET", help="the same, as an option"
    )
    parser.add_argument(
        "-o", "--out", type=Path, help="file to write (default: <run id>.<format> here)"
    )
    parser.add_argument(
        "--format",
        choices=("npy", "csv"),
        help="outputs as npy or csv (default: the --out file's suffix, else npy)",
    )
    parser.set_defaults(client_command=predict_batch)
