"""Named arrays to and from npz / .npy bytes, read safely: never pickle, headers first.

``np.load`` trusts a member's header: a 100-byte file can declare a shape of 10**12
elements. Here each ``.npy`` header (dtype, shape) is read and vetted *before* any data
is: object dtypes are refused outright, and so are declared sizes over a limit and
whatever the caller's header check refuses, so a forged header cannot make us allocate
a huge array. Every refusal is an ExportFormatError whose ``loc`` names the array when
known. The same reader serves model exports, checkpoints, dataset files and stored
datasets, and :func:`load_npy` reads a single .npy (a predict body). JSON documents
travel inside archives as uint8 arrays (:func:`put_json` / :func:`get_json`).
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from numpy.lib import format as npy_format

from app.engine.errors import ExportFormatError

HeaderCheck = Callable[[str, np.dtype[Any], tuple[int, ...]], None]
MAX_ELEMENTS = 10**9  # default limit on one array's declared element count
MAX_HEADER_BYTES = 10_000


def dump(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """An uncompressed npz archive holding ``arrays`` under their names: each member the
    bytes ``np.save`` writes for its array (its .npy header made by NumPy's own writer),
    stored, in a zip written here in one pass. ``np.savez`` goes through ``zipfile``,
    whose per-member bookkeeping was most of the cost of a small network's checkpoint
    and export (each trial of a sweep writes one or both: BENCHMARKS.md §9). Members are
    dated 1980-01-01, so equal arrays give equal bytes (and one blob). Archives past the
    plain zip's limits (4 GiB, 65,535 members) and arrays of other than plain dtypes go
    to ``np.savez``."""
    members: list[tuple[bytes, bytes, memoryview]] = []
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.fields is not None or array.dtype.hasobject or array.dtype.subdtype:
            return _savez(arrays)
        if not (array.flags.c_contiguous or array.flags.f_contiguous):
            array = np.ascontiguousarray(array)
        npy_header = io.BytesIO()
        npy_format.write_array_header_1_0(npy_header, npy_format.header_data_from_array_1_0(array))
        # The data in memory order: what np.save writes (an F-ordered array's transpose
        # is C-ordered, over the same bytes).
        ordered = array if array.flags.c_contiguous else array.T
        flat: Any = ordered.reshape(-1).view(np.uint8)
        members.append(((key + ".npy").encode("utf-8"), npy_header.getvalue(), memoryview(flat)))
    records = sum(_LOCAL_SIZE + _CENTRAL_SIZE + 2 * len(name) for name, _, _ in members)
    total = records + sum(len(header) + raw.nbytes for _, header, raw in members)
    if len(members) >= 0xFFFF or total >= _ZIP_LIMIT:
        return _savez(arrays)
    out = io.BytesIO()
    directory = []
    for name, header, raw in members:
        offset = out.tell()
        crc = zlib.crc32(raw, zlib.crc32(header))
        size = len(header) + raw.nbytes
        flags = 0 if name.isascii() else _ZIP_UTF8  # as zipfile marks a UTF-8 name
        entry = (flags, 0, _ZIP_TIME, _ZIP_DATE, crc, size, size, len(name))  # stored
        out.write(struct.pack(_LOCAL, b"PK\x03\x04", _ZIP_VERSION, *entry, 0))
        out.write(name)
        out.write(header)
        out.write(raw)
        directory.append((entry, name, offset))
    start = out.tell()
    for entry, name, offset in directory:
        made_by = _ZIP_VERSION | _ZIP_UNIX
        out.write(
            struct.pack(
                _CENTRAL,
                b"PK\x01\x02",
                made_by,
                _ZIP_VERSION,
                *entry,
                0,
                0,
                0,
                0,
                _ZIP_MODE,
                offset,
            )
        )
        out.write(name)
    count, size = len(directory), out.tell() - start
    out.write(struct.pack(_END, b"PK\x05\x06", 0, 0, count, count, size, start, 0))
    return out.getvalue()


# The zip records ``dump`` writes (zipfile's layouts): a local file header (signature;
# version needed, flags, method, time, date; crc, sizes; name and extra lengths), a
# central directory entry (the same with the version made by first, then the comment
# length, disk, internal and external attributes and the local header's offset), the end
# of the central directory. Version 2.0 (stored), made on Unix, each member a regular
# file readable by all, dated 1980-01-01 00:00 (the zip epoch), its name flagged UTF-8
# unless ASCII.
_LOCAL = "<4s5H3L2H"
_CENTRAL = "<4s6H3L5H2L"
_END = "<4s4H2LH"
_LOCAL_SIZE, _CENTRAL_SIZE = struct.calcsize(_LOCAL), struct.calcsize(_CENTRAL)
_ZIP_VERSION = 20
_ZIP_UNIX = 3 << 8
_ZIP_UTF8 = 0x800  # general purpose flag bit 11: the name is UTF-8 (else cp437)
_ZIP_TIME, _ZIP_DATE = 0, (1 << 5) | 1  # 00:00:00; 1980 + 0, January, the 1st
_ZIP_MODE = 0o100644 << 16
_ZIP_LIMIT = 0xFFFFFFFF


def _savez(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def accept_any(name: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
    """A header check that adds nothing to the built-in ones (objects, size limit)."""


def load(
    data: bytes,
    check: HeaderCheck = accept_any,
    what: str = "npz archive",
    *,
    required: tuple[str, ...] = (),
    max_elements: int = MAX_ELEMENTS,
    copy: bool = True,
) -> dict[str, npt.NDArray[Any]]:
    """The arrays of an npz archive, each header vetted before its data is read:
    ``check(name, dtype, shape)``, no object dtype, no more than ``max_elements``
    elements; ``required`` names arrays that must be there; ``what`` names the archive
    in messages. ExportFormatError for anything that is not a well-formed npz of plain
    arrays (a member that is not a top-level ``.npy`` file included).

    ``copy=False``: members stored without compression (``np.savez``) come back as
    read-only views of ``data`` instead of copies, which saves a copy of the data and its
    page faults when a worker loads a dataset. The member's CRC is not verified then, so
    use it only for bytes this server wrote itself (:func:`dump`). The views are usually
    not aligned for their dtype (the zip puts data at any byte offset): NumPy handles
    that, and the engine's epoch loop copies x when it would hand it to BLAS as it is.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExportFormatError(f"the {what} must be bytes", ())
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise ExportFormatError(f"the {what} is not a valid npz file: {exc}", ()) from None
    for member in names:
        if not member.endswith(".npy") or "/" in member:
            raise ExportFormatError(f"the {what} contains {member!r}, which is not an array", ())
    members = {member.removesuffix(".npy"): member for member in names}
    for name in required:
        if name not in members:
            raise ExportFormatError(
                f"the {what} has no array {name!r} (it has: {sorted(members) or 'none'})",
                (name,),
            )
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, member in members.items():
        try:
            arrays[name] = _read_member(archive, member, name, data, check, max_elements, copy)
        except ExportFormatError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise ExportFormatError(f"array {name!r} is malformed: {exc}", (name,)) from None
    return arrays


def _read_member(
    archive: zipfile.ZipFile,
    member: str,
    name: str,
    data: bytes,
    check: HeaderCheck,
    max_elements: int,
    copy: bool,
) -> npt.NDArray[Any]:
    """One member, its header checked first; a view of ``data`` when ``copy`` is False
    and the member allows it, else a new array."""
    with archive.open(member) as handle:
        shape, fortran, dtype, size = _checked_header(handle, name, max_elements)
        check(name, dtype, shape)
        if not copy:
            view = _stored_view(data, archive.getinfo(member), handle, dtype, size)
            if view is not None:
                return view.reshape(shape, order="F" if fortran else "C")
    with archive.open(member) as handle:
        # NumPy's reader fills one preallocated array chunk by chunk: no second copy.
        array: npt.NDArray[Any] = npy_format.read_array(
            handle, allow_pickle=False, max_header_size=MAX_HEADER_BYTES
        )
        return array


def load_npy(data: bytes, *, name: str = "x", max_elements: int = MAX_ELEMENTS) -> npt.NDArray[Any]:
    """The array of a single .npy file, with :func:`load`'s checks (no object dtype, no
    declared size over ``max_elements``) and nothing after its data. A read-only view of
    ``data`` when that is aligned for the dtype, else a copy."""
    handle = io.BytesIO(data)
    try:
        shape, fortran, dtype, size = _checked_header(handle, name, max_elements)
    except ExportFormatError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise ExportFormatError(f"not a valid .npy file: {exc}", (name,)) from None
    start = handle.tell()
    if len(data) - start != size * dtype.itemsize:
        raise ExportFormatError(
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
    which is left just after it; ExportFormatError for object dtypes and oversize arrays,
    ValueError for a malformed header."""
    version = npy_format.read_magic(handle)
    if version == (1, 0):
        header = npy_format.read_array_header_1_0(handle, max_header_size=MAX_HEADER_BYTES)
    elif version == (2, 0):
        header = npy_format.read_array_header_2_0(handle, max_header_size=MAX_HEADER_BYTES)
    else:
        # Caught by the callers: "array 'x' is malformed: ..." / "not a valid .npy file: ..."
        raise ValueError(f"unsupported .npy format version {version}")
    shape, fortran, dtype = header
    if dtype.hasobject:
        raise ExportFormatError(
            f"array {name!r} holds Python objects; only numbers are accepted", (name,)
        )
    size = math.prod(shape)  # exact: a forged shape cannot overflow into a small count
    if size > max_elements:
        raise ExportFormatError(
            f"array {name!r} declares {size} elements (limit {max_elements})", (name,)
        )
    return tuple(shape), fortran, dtype, size


LOCAL_HEADER_SIZE = 30  # a zip local file header, before its file name and extra field


def _stored_view(
    data: bytes, info: zipfile.ZipInfo, handle: IO[bytes], dtype: np.dtype[Any], size: int
) -> npt.NDArray[Any] | None:
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


def put_json(document: Any) -> npt.NDArray[np.uint8]:
    """A JSON document as a uint8 array, to store in an npz archive."""
    text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def get_json(array: npt.NDArray[Any], name: str) -> Any:
    """The JSON document stored by :func:`put_json`; ExportFormatError if it is not one."""
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ExportFormatError(f"{name!r} is not an embedded JSON document", (name,))
    try:
        return json.loads(array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportFormatError(f"{name!r} is not valid JSON ({exc})", (name,)) from exc
