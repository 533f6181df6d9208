"""``.npz`` and ``.npy`` uploads, streamed member by member, headers checked first.

Only the members ``x.npy`` and ``y.npy`` are read; an archive holding anything else is
refused before any member is decompressed. Each header's declared size is checked, in
bytes, against the limits and against the size the archive declares for that member,
before any data is read, so neither a forged header nor a decompression bomb can make
the server allocate or inflate more than the limits allow. x is converted to float32 in
row blocks straight into the output ``.npy``.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from app.services.arrays import check_label_layout
from app.services.errors import Invalid, Loc
from app.services.uploads.limits import UploadLimits
from app.services.uploads.npy_writer import NonFinite, NpyWriter
from app.services.uploads.parsed import FILE_LOC, ParsedUpload

BLOCK_BYTES = 1 << 22  # x is converted in blocks of about this many bytes
MAX_LABEL_ITEMSIZE = 1024  # a string label of up to 256 characters ('<U256')
EXPECTED = ("x.npy", "y.npy")


class NpyHeader:
    """A checked ``.npy`` header: shape, dtype, order, and the data's size in bytes."""

    def __init__(self, handle: IO[bytes], name: str, loc: Loc) -> None:
        try:
            version = npy_format.read_magic(handle)
            read = (
                npy_format.read_array_header_1_0
                if version == (1, 0)
                else npy_format.read_array_header_2_0
            )
            shape, fortran, dtype = read(handle, max_header_size=10_000)
        except (ValueError, OSError, EOFError, SyntaxError) as exc:
            raise Invalid(f"array {name!r} has a malformed .npy header: {exc}", loc) from None
        if dtype.hasobject:
            raise Invalid(f"array {name!r} holds Python objects", loc)
        self.shape: tuple[int, ...] = tuple(shape)
        self.fortran: bool = fortran
        self.dtype: np.dtype[Any] = dtype
        self.count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        self.nbytes = self.count * dtype.itemsize
        self.header_bytes = handle.tell()


def parse_npz(source: BinaryIO, *, limits: UploadLimits, x_path: Path) -> ParsedUpload:
    """An archive holding exactly ``x`` (n, d) numbers and ``y`` (n,) or (n, k)."""
    try:
        archive = zipfile.ZipFile(source)
        infos = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise Invalid(f"not a valid npz file: {exc}", FILE_LOC) from None
    extra = sorted(set(infos) - set(EXPECTED))
    if extra:
        raise Invalid(f"the npz may hold only x and y; it also holds {extra[:10]}", FILE_LOC)
    for member in EXPECTED:
        if member not in infos:
            name = member.removesuffix(".npy")
            raise Invalid(f"the npz has no array {name!r}", (*FILE_LOC, name))
    with archive:
        y = _read_member(archive, infos["y.npy"], limits, lambda h, f: read_labels(h, f, limits))
        parsed = _read_member(
            archive, infos["x.npy"], limits, lambda h, f: write_features(h, f, limits, x_path)
        )
    return _with_labels(parsed, y)


def parse_npy_pair(
    x_source: BinaryIO, y_source: BinaryIO, *, limits: UploadLimits, x_path: Path
) -> ParsedUpload:
    """Two ``.npy`` files: x (n, d) numbers and y (n,) or (n, k)."""
    y = read_labels(y_source, None, limits)
    parsed = write_features(x_source, None, limits, x_path)
    return _with_labels(parsed, y)


def _with_labels(parsed: ParsedUpload, y: np.ndarray) -> ParsedUpload:
    if len(y) != parsed.n_samples:
        raise Invalid(f"x has {parsed.n_samples} rows but y has {len(y)} labels", (*FILE_LOC, "y"))
    return ParsedUpload(**{**parsed.__dict__, "y": y})


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: UploadLimits, read: Any
) -> Any:
    name = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as handle:
            return read(handle, info)
    except Invalid:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise Invalid(f"array {name!r} is malformed: {exc}", (*FILE_LOC, name)) from None


def _check_declared(header: NpyHeader, info: zipfile.ZipInfo | None, name: str) -> None:
    """The archive's declared member size must be the header plus exactly the data."""
    if info is not None and info.file_size != header.header_bytes + header.nbytes:
        raise Invalid(
            f"array {name!r} declares {header.nbytes} bytes of data, the archive member "
            f"holds {info.file_size - header.header_bytes}",
            (*FILE_LOC, name),
        )


def read_labels(
    handle: IO[bytes], info: zipfile.ZipInfo | None, limits: UploadLimits
) -> np.ndarray:
    loc = (*FILE_LOC, "y")
    header = NpyHeader(handle, "y", loc)
    check_label_layout(header.dtype, header.shape, loc, max_itemsize=MAX_LABEL_ITEMSIZE)
    limits.check_cells(header.count, 1, loc)
    _check_declared(header, info, "y")
    data = handle.read(header.nbytes)
    if len(data) != header.nbytes:
        raise Invalid(f"array 'y' is truncated: {len(data)} of {header.nbytes} bytes", loc)
    flat = np.frombuffer(data, dtype=header.dtype, count=header.count)
    return flat.reshape(header.shape, order="F" if header.fortran else "C").copy()


def write_features(
    handle: IO[bytes], info: zipfile.ZipInfo | None, limits: UploadLimits, x_path: Path
) -> ParsedUpload:
    loc = (*FILE_LOC, "x")
    header = NpyHeader(handle, "x", loc)
    if header.dtype.kind not in "iuf":
        raise Invalid(f"features must be numbers, got dtype {header.dtype}", loc)
    if len(header.shape) != 2:
        raise Invalid(f"features must be 2-D (rows, features), got shape {header.shape}", loc)
    if 0 in header.shape:
        what = "no rows" if header.shape[0] == 0 else "no columns"
        raise Invalid(f"features have {what}: shape {header.shape}", loc)
    rows, width = header.shape
    limits.check_cells(rows, width, loc)
    _check_declared(header, info, "x")
    try:
        with NpyWriter(x_path, width) as writer:
            if header.fortran:
                _copy_fortran(handle, header, writer)
            else:
                _copy_rows(handle, header, writer)
    except NonFinite as bad:
        raise Invalid(
            "features must be finite float32 numbers (no NaN, inf or overflow)",
            (*loc, bad.row, bad.col),
        ) from None
    return ParsedUpload(
        x_path=x_path,
        n_samples=rows,
        n_features=width,
        y=np.empty(0),
        feature_names=None,
        stats=writer.stats(),
    )


def _copy_rows(handle: IO[bytes], header: NpyHeader, writer: NpyWriter) -> None:
    rows, width = header.shape
    row_bytes = width * header.dtype.itemsize
    block_rows = max(1, BLOCK_BYTES // row_bytes)
    done = 0
    while done < rows:
        take = min(block_rows, rows - done)
        data = handle.read(take * row_bytes)
        if len(data) != take * row_bytes:
            raise Invalid("array 'x' is truncated", (*FILE_LOC, "x"))
        writer.write(np.frombuffer(data, dtype=header.dtype).reshape(take, width))
        done += take


def _copy_fortran(handle: IO[bytes], header: NpyHeader, writer: NpyWriter) -> None:
    """Column-major data: spool it to a temporary file, then write rows from a memmap."""
    rows, width = header.shape
    with tempfile.TemporaryFile(dir=writer.path.parent) as spool:
        copied = _copy_exactly(handle, spool, header.nbytes)
        if copied != header.nbytes:
            raise Invalid("array 'x' is truncated", (*FILE_LOC, "x"))
        columns = np.memmap(spool, dtype=header.dtype, mode="r", shape=(rows, width), order="F")
        block_rows = max(1, BLOCK_BYTES // (width * header.dtype.itemsize))
        for start in range(0, rows, block_rows):
            writer.write(np.asarray(columns[start : start + block_rows]))
        del columns


def _copy_exactly(source: IO[bytes], target: IO[bytes], size: int) -> int:
    copied = 0
    while copied < size:
        chunk = source.read(min(BLOCK_BYTES, size - copied))
        if not chunk:
            break
        target.write(chunk)
        copied += len(chunk)
    target.flush()
    return copied
