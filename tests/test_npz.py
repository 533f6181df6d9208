"""app.storage.npz: safe npz reading, and the zero-copy views a worker loads datasets with."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from app.storage.npz import ArrayFileError, dump_arrays, load_arrays

ARRAYS = {
    "x": np.arange(12, dtype=np.float32).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    "big_endian": np.arange(5, dtype=">i4"),
    "labels": np.array([3, -1, 7], dtype=np.int64),
    "flags": np.array([True, False]),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
    "text": np.array(["a", "bc"]),
}


def _compressed(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_views_equal_copies_and_share_the_stored_bytes() -> None:
    data = dump_arrays(ARRAYS)
    copies = load_arrays(data)
    views = load_arrays(data, copy=False)
    assert views.keys() == copies.keys() == ARRAYS.keys()
    for name, expected in ARRAYS.items():
        for loaded in (copies[name], views[name]):
            assert loaded.dtype == expected.dtype and loaded.shape == expected.shape, name
            np.testing.assert_array_equal(loaded, expected)
        assert copies[name].flags.writeable, name
        assert not views[name].flags.writeable, name  # a view of immutable bytes
        base = views[name]
        while isinstance(base, np.ndarray):
            base = base.base
        assert base is data, name  # no copy: the array's memory is the stored bytes
    assert views["fortran"].flags.f_contiguous
    assert views["x"].flags.c_contiguous


def test_compressed_members_are_copied_even_without_copy() -> None:
    views = load_arrays(_compressed(ARRAYS), copy=False)
    for name, expected in ARRAYS.items():
        np.testing.assert_array_equal(views[name], expected)
        assert views[name].flags.writeable, name


def _npz_with_member(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("copy", [True, False])
def test_a_member_shorter_than_its_header_declares_is_refused(copy: bool) -> None:
    """A valid zip (CRC and all) whose .npy header promises more data than it holds."""
    full = _npy(np.ones((100, 10), dtype=np.float32))
    data = _npz_with_member("x.npy", full[:-400])
    with pytest.raises(ArrayFileError, match="'x' is malformed"):
        load_arrays(data, copy=copy)


@pytest.mark.parametrize("copy", [True, False])
def test_a_member_longer_than_its_header_declares_is_read_like_numpy(copy: bool) -> None:
    """np.load ignores bytes after the declared data; so do both paths."""
    array = np.arange(6, dtype=np.int64)
    data = _npz_with_member("x.npy", _npy(array) + b"trailing")
    np.testing.assert_array_equal(load_arrays(data, copy=copy)["x"], array)


@pytest.mark.parametrize("copy", [True, False])
def test_refusals_do_not_depend_on_copy(copy: bool) -> None:
    with pytest.raises(ArrayFileError, match="declares 1000 elements"):
        load_arrays(dump_arrays({"x": np.zeros(1000)}), max_elements=999, copy=copy)
    with pytest.raises(ArrayFileError, match="holds Python objects"):
        load_arrays(dump_arrays({"x": np.array([{}, 1], dtype=object)}), copy=copy)
    with pytest.raises(ArrayFileError, match="no array 'y'"):
        load_arrays(dump_arrays({"x": np.zeros(3)}), required=("y",), copy=copy)
    with pytest.raises(ArrayFileError, match="not a valid npz"):
        load_arrays(b"not a zip", copy=copy)
