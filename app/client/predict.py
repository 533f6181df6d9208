"""``backprop predict MODEL FILE [-o OUT]``: rows from a .npy or CSV file, outputs as CSV.

The rows go to POST /v1/models/{id}/predict as ``.npy`` bodies (``Content-Type:
application/x-npy``, no JSON to build or parse), :data:`CHUNK_ROWS` rows at a time so
that a file of any length stays under the server's row limit. NumPy is imported when
the command runs: the other commands, and a `backprop worker` that sets its BLAS threads
before NumPy loads, do not load it.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from app.client.datasets import read_file
from app.client.http import Api, ClientError
from app.client.output import note, print_json
from app.client.reads import Subparsers

if TYPE_CHECKING:
    import numpy as np

CHUNK_ROWS = 1000
NPY_MEDIA_TYPE = "application/x-npy"


def read_rows(path: Path) -> np.ndarray:
    """The file's rows: x (rows, features). CSV: numbers only, a header row is skipped."""
    import numpy as np

    data = read_file(path)
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ClientError(f"{path} is not a readable .npy file: {exc}") from None
    else:
        x = _csv_rows(path, data)
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[0] == 0:
        what = f"an array of shape {x.shape}" if isinstance(x, np.ndarray) else "no single array"
        raise ClientError(f"{path} holds {what}; predict needs one of (rows, features)")
    return x


def _csv_rows(path: Path, data: bytes) -> np.ndarray:
    import numpy as np

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ClientError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows: list[list[float]] = []
    for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row or not "".join(row).strip():
            continue
        try:
            rows.append([float(cell) for cell in row])
        except ValueError:
            if number == 1:
                continue  # a header row
            raise ClientError(
                f"{path} line {number} is not all numbers: {row} (predict takes the features "
                "only: leave out any label column)"
            ) from None
        if len(rows[-1]) != len(rows[0]):
            raise ClientError(
                f"{path} line {number} has {len(rows[-1])} values, the first row {len(rows[0])}"
            )
    return np.asarray(rows, dtype=np.float64)


def output_columns(model: dict[str, Any], width: int) -> list[str]:
    """Headers of the outputs: a probability per class, or the regression outputs."""
    classes = model.get("classes")
    if classes and len(classes) == width:
        return [f"p_{label}" for label in classes]
    if classes and width == 1:
        return [f"p_{classes[-1]}"]  # a sigmoid output: the probability of the second class
    return ["output"] if width == 1 else [f"output_{i}" for i in range(1, width + 1)]


def predict(api: Api, args: argparse.Namespace) -> int:
    import numpy as np

    path = f"/v1/models/{quote(args.model, safe='')}"
    model = api.get(path)
    x = read_rows(args.file)
    outputs: list[list[float]] = []
    labels: list[Any] = []
    for start in range(0, x.shape[0], CHUNK_ROWS):
        body = io.BytesIO()
        np.save(body, x[start : start + CHUNK_ROWS], allow_pickle=False)
        answer = api.post_bytes(f"{path}/predict", body.getvalue(), content_type=NPY_MEDIA_TYPE)
        outputs.extend(answer["outputs"])
        labels.extend(answer.get("labels") or [])
    if args.json:  # the server's answer, all chunks as one
        print_json({"outputs": outputs, **({"labels": labels} if labels else {})})
        return 0
    header = output_columns(model, len(outputs[0]))
    with _opened(args.output) as out:
        write_csv(out, header, outputs, labels)
    if args.output is not None:
        note(f"wrote {len(outputs)} predictions to {args.output}")
    return 0


def write_csv(
    out: TextIO, header: list[str], outputs: Sequence[Sequence[float]], labels: Sequence[Any]
) -> None:
    """``label,`` (classifiers) then the output columns, one line per input row."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", *header] if labels else header)
    for i, row in enumerate(outputs):
        writer.writerow([labels[i], *row] if labels else row)


@contextmanager
def _opened(output: Path | None) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as out:
            yield out
    except OSError as exc:
        raise ClientError(f"cannot write {output}: {exc.strerror}") from None


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "predict", parents=[common], help="predict the rows of a .npy or CSV file; CSV out"
    )
    parser.add_argument("model", metavar="MODEL", help="a model id")
    parser.add_argument(
        "file", type=Path, metavar="FILE", help=".npy (rows, features), or CSV of numbers"
    )
    parser.add_argument("-o", "--output", type=Path, help="CSV file to write (default: stdout)")
    parser.set_defaults(client_command=predict)
