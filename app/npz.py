"""Safe reading and writing of named arrays as npz bytes (never pickle).

``np.load`` trusts an npz member's header: a 100-byte file can declare a shape of
10**12 elements. :func:`load_arrays` reads each header first and refuses object
dtypes and declared sizes over a limit before any data is allocated.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping

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
    data: bytes, *, required: tuple[str, ...] = (), max_elements: int = 10**9
) -> dict[str, np.ndarray]:
    """Arrays of an npz, checked: no object dtype, no declared size over ``max_elements``."""
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
                version = npy_format.read_magic(handle)
                read_header = (
                    npy_format.read_array_header_1_0
                    if version == (1, 0)
                    else npy_format.read_array_header_2_0
                )
                shape, _fortran, dtype = read_header(handle, max_header_size=10_000)
                if dtype.hasobject:
                    raise ArrayFileError(f"array {name!r} holds Python objects", (name,))
                size = int(np.prod(shape, dtype=np.int64)) if shape else 1
                if size > max_elements:
                    raise ArrayFileError(
                        f"array {name!r} declares {size} elements (limit {max_elements})", (name,)
                    )
            with archive.open(member) as handle:
                arrays[name] = npy_format.read_array(handle, allow_pickle=False)
        except ArrayFileError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise ArrayFileError(f"array {name!r} is malformed: {exc}", (name,)) from None
    return arrays
