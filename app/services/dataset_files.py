"""Read an uploaded dataset file: CSV with a header row, or npz with arrays x and y."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from app.engine import npzio
from app.engine.errors import ExportFormatError
from app.services.arrays import feature_matrix, label_array
from app.services.errors import Invalid, LimitExceeded, invalid_at

FILE_LOC = ("body", "file")


@dataclass(frozen=True)
class ParsedFile:
    x: np.ndarray  # (n, d) float32
    y: np.ndarray  # (n,) or (n, k)
    feature_names: list[str] | None


def parse_upload(data: bytes, *, filename: str, target: str | None, max_cells: int) -> ParsedFile:
    """Dispatch on the content: npz files are zip archives (``PK`` magic), else CSV."""
    if data[:2] == b"PK" or filename.lower().endswith(".npz"):
        return parse_npz(data, max_cells=max_cells)
    return parse_csv(data, target=target, max_cells=max_cells)


def parse_npz(data: bytes, *, max_cells: int) -> ParsedFile:
    with invalid_at(FILE_LOC, ExportFormatError):
        arrays = npzio.load(data, what="npz file", required=("x", "y"), max_elements=max_cells)
    x = feature_matrix(arrays["x"], (*FILE_LOC, "x"))
    _check_cells(x.shape[0], x.shape[1], max_cells)
    y = label_array(arrays["y"], (*FILE_LOC, "y"))
    return ParsedFile(x=x, y=y, feature_names=None)


def _check_cells(rows: int, width: int, max_cells: int) -> None:
    if rows * width > max_cells:
        raise LimitExceeded(
            "dataset rows x features",
            rows * width,
            setting="BACKPROP_MAX_DATASET_CELLS",
            limit=max_cells,
            loc=FILE_LOC,
        )


def parse_csv(data: bytes, *, target: str | None, max_cells: int) -> ParsedFile:
    """A header row, then one sample per line; ``target`` names the label column (default last)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(
            f"the CSV is not UTF-8 text: {exc.reason} at byte {exc.start}", FILE_LOC
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise Invalid("the CSV is empty: it needs a header row", FILE_LOC)
        header = [h.strip() for h in header]
        label_col = _label_column(header, target)
        width = len(header)
        features: list[list[float]] = []
        labels: list[str] = []
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != width:
                raise Invalid(
                    f"line {line} has {len(row)} fields, the header has {width}",
                    (*FILE_LOC, "line", line),
                )
            _check_cells(len(features) + 1, width - 1, max_cells)
            features.append(_numbers(row, label_col, header, line))
            labels.append(row[label_col].strip())
    except csv.Error as exc:
        raise Invalid(
            f"malformed CSV at line {reader.line_num}: {exc}", (*FILE_LOC, "line", reader.line_num)
        ) from None
    if not features:
        raise Invalid("the CSV has a header but no data rows", FILE_LOC)
    x = feature_matrix(features, (*FILE_LOC, "x"))
    names = [h for i, h in enumerate(header) if i != label_col]
    return ParsedFile(
        x=x, y=label_array(_typed_labels(labels), (*FILE_LOC, "y")), feature_names=names
    )


def _label_column(header: list[str], target: str | None) -> int:
    if len(header) < 2:
        raise Invalid("the CSV needs at least two columns: features and a label", FILE_LOC)
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise Invalid(f"duplicate column names: {duplicates}", FILE_LOC)
    if target is None or target == "":
        return len(header) - 1
    if target not in header:
        raise Invalid(f"no column {target!r}; the columns are {header}", ("body", "target"))
    return header.index(target)


def _numbers(row: list[str], label_col: int, header: list[str], line: int) -> list[float]:
    values: list[float] = []
    for i, cell in enumerate(row):
        if i == label_col:
            continue
        try:
            values.append(float(cell))
        except ValueError:
            raise Invalid(
                f"line {line}, column {header[i]!r}: {cell[:50]!r} is not a number",
                (*FILE_LOC, "line", line, header[i]),
            ) from None
    return values


def _typed_labels(labels: list[str]) -> list[int] | list[float] | list[str]:
    """CSV labels are text: all integers -> int, all numbers -> float, else the strings."""
    try:
        return [int(v) for v in labels]
    except ValueError:
        pass
    try:
        return [float(v) for v in labels]
    except ValueError:
        return labels
