"""npz archives to and from bytes, read without pickle and with the headers checked first.

Reading an untrusted archive goes member by member: the ``.npy`` header (dtype, shape)
is read and handed to a check *before* any data is read, so a forged header cannot make
us allocate a huge array, and object arrays are refused outright (``allow_pickle=False``).
JSON documents travel inside archives as uint8 arrays (``put_json`` / ``get_json``).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.errors import ExportFormatError

HeaderCheck = Callable[[str, np.dtype[Any], tuple[int, ...]], None]


def dump(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """An uncompressed npz archive holding ``arrays`` under their names."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _read_member(archive: zipfile.ZipFile, member: str, check: HeaderCheck) -> npt.NDArray[Any]:
    name = member[: -len(".npy")]
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ExportFormatError(
                f"array {name!r} has an unsupported .npy version {version}", (name,)
            )
        if dtype.hasobject:
            raise ExportFormatError(
                f"array {name!r} holds Python objects; only numbers are accepted", (name,)
            )
        check(name, dtype, tuple(shape))
        count = int(np.prod(shape, dtype=np.int64))
        data = stream.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise ExportFormatError(f"array {name!r} is truncated", (name,))
    flat: npt.NDArray[Any] = np.frombuffer(data, dtype=dtype, count=count)
    array: npt.NDArray[Any] = flat.reshape(tuple(shape), order="F" if fortran else "C")
    return array.copy()


def load(data: bytes, check: HeaderCheck, what: str = "npz archive") -> dict[str, npt.NDArray[Any]]:
    """The arrays of an npz archive; ``check(name, dtype, shape)`` vets each header first.

    Raises ExportFormatError for anything that is not a well-formed npz of plain arrays.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExportFormatError(f"the {what} must be bytes", ())
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            arrays: dict[str, npt.NDArray[Any]] = {}
            for member in archive.namelist():
                if not member.endswith(".npy") or "/" in member:
                    raise ExportFormatError(
                        f"the {what} contains {member!r}, which is not an array", ()
                    )
                arrays[member[: -len(".npy")]] = _read_member(archive, member, check)
            return arrays
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ExportFormatError(f"the {what} is not a readable npz archive ({exc})", ()) from exc
    except ValueError as exc:
        if isinstance(exc, ExportFormatError):
            raise
        raise ExportFormatError(f"the {what} has a malformed array header ({exc})", ()) from exc


def accept_any(name: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
    """A header check for archives we wrote ourselves (object arrays are still refused)."""


def put_json(document: Any) -> npt.NDArray[np.uint8]:
    """A JSON document as a uint8 array, to store in an npz archive."""
    text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def get_json(array: npt.NDArray[Any], name: str) -> Any:
    """The JSON document stored by ``put_json``; ExportFormatError if it is not one."""
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ExportFormatError(f"{name!r} is not an embedded JSON document", (name,))
    try:
        return json.loads(array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportFormatError(f"{name!r} is not valid JSON ({exc})", (name,)) from exc
