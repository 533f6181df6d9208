"""Arrays as ``.npy`` blobs: written through a temporary file, read memory-mapped.

The ``.npy`` format (``numpy.lib.format``) is a short header (dtype, shape, order) and the
raw C-order data, so a stored array can be memory-mapped read-only straight from the blob
store's local file, without a copy. Nothing is ever pickled (``allow_pickle=False``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.storage.blobs import BlobRef, BlobStore


def put_array(store: BlobStore, array: np.ndarray[Any, Any]) -> BlobRef:
    """Store ``array`` (C order) as an ``.npy`` blob."""
    if array.dtype.hasobject:
        raise ValueError("object arrays cannot be stored")
    with tempfile.TemporaryDirectory(prefix="backprop-npy-") as folder:
        path = Path(folder) / "array.npy"
        np.save(path, np.ascontiguousarray(array), allow_pickle=False)
        return store.put_file(path)


def load_array(store: BlobStore, sha256: str, *, mmap: bool = True) -> np.ndarray[Any, Any]:
    """The ``.npy`` blob ``sha256``, checked against its hash on first use; memory-mapped
    read-only (``mmap``), else read into memory. BlobMissing / BlobCorrupt name it.

    A mapped array comes back as a plain ``ndarray`` view of the ``np.memmap`` (which it
    keeps alive): code that checks ``type(a) is np.ndarray`` (orjson, the engine's "is
    this the caller's array" test) treats it like any other array."""
    path = store.local_path(sha256)
    loaded = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    array: np.ndarray[Any, Any] = np.asarray(loaded)
    return array


def load_array_checked_later(
    store: BlobStore, sha256: str
) -> tuple[np.ndarray[Any, Any], Callable[[], None]]:
    """The ``.npy`` blob ``sha256`` memory-mapped read-only before its hash is checked
    (where the store can defer it), and the check to call before trusting any result
    computed from it (BlobCorrupt / BlobMissing). A file too damaged to map is checked
    at once."""
    path, check = store.local_path_checked_later(sha256)
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # not a .npy any more (a damaged header): the check says why
        check()
        raise
    array: np.ndarray[Any, Any] = np.asarray(loaded)
    return array, check
