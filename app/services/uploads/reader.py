"""Pick the parser for an uploaded file by its content, and run it into a temp folder."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from app.services.errors import Invalid
from app.services.uploads.csv_file import parse_csv
from app.services.uploads.limits import UploadLimits
from app.services.uploads.npz_file import parse_npy_pair, parse_npz
from app.services.uploads.parsed import FILE_LOC, ParsedUpload

ZIP_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"


def parse_file(
    source: BinaryIO, *, filename: str, target: str | None, limits: UploadLimits, work_dir: Path
) -> ParsedUpload:
    """An npz archive (zip magic, or a ``.npz`` name) or else a CSV; x goes to
    ``work_dir/x.npy``. ``source`` must be seekable."""
    start = source.read(8)
    source.seek(0)
    x_path = work_dir / "x.npy"
    if start.startswith(NPY_MAGIC):
        raise Invalid(
            "a single .npy file holds no labels: send x.npy and y.npy as the form fields "
            "'x' and 'y', or both in one .npz",
            FILE_LOC,
        )
    if start.startswith(ZIP_MAGIC) or filename.lower().endswith(".npz"):
        return parse_npz(source, limits=limits, x_path=x_path)
    return parse_csv(source, target=target, limits=limits, x_path=x_path)


def parse_pair(
    x_source: BinaryIO, y_source: BinaryIO, *, limits: UploadLimits, work_dir: Path
) -> ParsedUpload:
    """x.npy and y.npy sent as two files."""
    return parse_npy_pair(x_source, y_source, limits=limits, x_path=work_dir / "x.npy")
