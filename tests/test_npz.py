"""app.npz: safe npz reading, and the zero-copy views a worker loads datasets with."""

from __future__ import annotations

import io

import numpy as np
import pytest

from app.npz import ArrayFileError, dump_arrays, load_arrays

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
        assert not views[name].flags.owndata, name
    assert views["fortran"].flags.f_contiguous
    assert views["x"].flags.c_contiguous


def test_compressed_members_are_copied_even_without_copy() -> None:
    views = load_arrays(_compressed(ARRAYS), copy=False)
    for name, expected in ARRAYS.items():
        np.testing.assert_array_equal(views[name], expected)
        assert views[name].flags.writeable, name


def test_truncated_data_is_refused_with_or_without_copy() -> None:
    data = dump_arrays({"x": np.ones((100, 10), dtype=np.float32)})
    # Cut the member's data short but keep the archive's directory: the sizes disagree.
    start = data.index(b"\x93NUMPY")
    damaged = data[: start + 200] + data[start + 4000 :]
    for copy in (True, False):
        with pytest.raises(ArrayFileError):
            load_arrays(damaged, copy=copy)


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
