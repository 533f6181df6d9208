"""``backprop export MODEL --format onnx|python|npz -o FILE``: a model as a file.

The server streams ``GET /v1/models/{id}/export?format=...`` into the file; a refused
export (an unknown model, a format the model cannot be written in) leaves no file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import quote

from app.client.http import Api, ClientError
from app.client.output import note
from app.client.reads import Subparsers

FORMATS = ("onnx", "python", "npz")
SUFFIXES = {"onnx": ".onnx", "python": ".py", "npz": ".npz"}


def export(api: Api, args: argparse.Namespace) -> int:
    output: Path = args.output or Path(f"{args.model}{SUFFIXES[args.format]}")
    partial = output.with_name(output.name + ".part")
    path = f"/v1/models/{quote(args.model, safe='')}/export"
    try:
        with partial.open("wb") as target:
            size = api.download(path, target, {"format": args.format})
        partial.replace(output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ClientError(f"cannot write {output}: {exc.strerror}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    note(f"wrote {args.model} as {args.format} to {output} ({size:,} bytes)")
    print(output)
    return 0


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "export", parents=[common], help="download a model as ONNX, a NumPy-only .py, or npz"
    )
    parser.add_argument("model", metavar="MODEL", help="a model id")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="default: onnx")
    parser.add_argument(
        "-o", "--output", type=Path, help="file to write (default: MODEL.onnx / .py / .npz)"
    )
    parser.set_defaults(client_command=export)
