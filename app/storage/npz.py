"""Safe reading and writing of named arrays as npz bytes (never pickle).

``np.load`` trusts an npz member's header: a 100-byte file can declare a shape of
10**12 elements. :func:`load_arrays` reads each header first and refuses object
dtypes and declared sizes over a limit before any data is allocated.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format


class ArrayFileError(ValueError):
    """A malformed or unsafe npz; ``loc`` names the member when known."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc


def dump_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def load_arrays(
    data: bytes,
    *,
    required: tuple[str, ...] = (),
    max_elements: int = 10**9,
    copy: bool = True,
) -> dict[str, np.ndarray]:
    """Arrays of an npz, checked: no object dtype, no declared size over ``max_elements``.

    ``copy=False``: members stored without compression (``np.savez``) come back as
    read-only views of ``data`` instead of copies, which saves a copy of the data and its
    page faults when a worker loads a dataset. The member's CRC is not verified then, so
    use it only for bytes this server wrote itself (``dump_arrays``). The views are
    usually not aligned for their dtype (the zip puts data at any byte offset): NumPy
    handles that, and the engine's epoch loop copies x when it would hand it to BLAS as
    it is.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ArrayFileError(f"not a valid npz file: {exc}") from None
    members = {name.removesuffix(".npy"): name for name in names if name.endswith(".npy")}
    for name in required:
        if name not in members:
            raise ArrayFileError(
                f"the npz has no array {name!r} (it has: {sorted(members) or 'none'})", (name,)
            )
    arrays: dict[str, np.ndarray] = {}
    for name, member in members.items():
        try:
            with archive.open(member) as handle:
                shape, fortran, dtype, size = _checked_header(handle, name, max_elements)
                info = archive.getinfo(member)
                view = None if copy else _stored_view(data, info, handle, dtype, size)
                if view is not None:
                    arrays[name] = view.reshape(shape, order="F" if fortran else "C")
                    continue
            with archive.open(member) as handle:
                arrays[name] = npy_format.read_array(handle, allow_pickle=False)
        except ArrayFileError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise ArrayFileError(f"array {name!r} is malformed: {exc}", (name,)) from None
    return arrays


def load_npy(data: bytes, *, name: str = "x", max_elements: int = 10**9) -> np.ndarray:
    """The array of a single .npy file, with :func:`load_arrays`'s checks (no object
    dtype, no declared size over ``max_elements``) and nothing after its data. A
    read-only view of ``data`` when that is aligned for the dtype, else a copy."""
    handle = io.BytesIO(data)
    try:
        shape, fortran, dtype, size = _checked_header(handle, name, max_elements)
    except ArrayFileError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise ArrayFileError(f"not a valid .npy file: {exc}", (name,)) from None
    start = handle.tell()
    if len(data) - start != size * dtype.itemsize:
        raise ArrayFileError(
            f"the .npy header declares {size * dtype.itemsize} bytes of data, the body has "
            f"{len(data) - start}",
            (name,),
        )
    array = np.frombuffer(data, dtype=dtype, count=size, offset=start)
    array = array.reshape(shape, order="F" if fortran else "C")
    return array if array.flags.aligned else array.copy()


def _checked_header(
    handle: IO[bytes], name: str, max_elements: int
) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """(shape, fortran order, dtype, element count) of the .npy header at ``handle``,
    which is left just after it; ArrayFileError for object dtypes and oversize arrays."""
    version = npy_format.read_magic(handle)
    read_header = (
        npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    )
    shape, fortran, dtype = read_header(handle, max_header_size=10_000)
    if dtype.hasobject:
        raise ArrayFileError(f"array {name!r} holds Python objects", (name,))
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if size > max_elements:
        raise ArrayFileError(
            f"array {name!r} declares {size} elements (limit {max_elements})", (name,)
        )
    return shape, fortran, dtype, size


LOCAL_HEADER_SIZE = 30  # a zip local file header, before its file name and extra field


def _stored_view(
    data: bytes, info: zipfile.ZipInfo, handle: IO[bytes], dtype: np.dtype[Any], size: int
) -> np.ndarray | None:
    """The ``size`` elements of an uncompressed member as a flat read-only view of
    ``data``, for a ``handle`` positioned just after the member's .npy header; None when
    the member is compressed or its bytes are not where its headers say."""
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    start = info.header_offset
    local = data[start : start + LOCAL_HEADER_SIZE]
    if len(local) != LOCAL_HEADER_SIZE or local[:4] != b"PK\x03\x04":
        return None
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    header_length = handle.tell()
    offset = start + LOCAL_HEADER_SIZE + name_length + extra_length + header_length
    if (
        info.compress_size != info.file_size
        or header_length + size * dtype.itemsize != info.file_size
        or offset + info.file_size - header_length > len(data)
    ):
        return None
    view = np.frombuffer(data, dtype=dtype, count=size, offset=offset)
    view.flags.writeable = False  # also when ``data`` is a writable buffer
    return view
