"""app.engine.npzio: safe npz reading, and the zero-copy views a worker loads datasets with."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pytest

from app.engine.errors import ExportFormatError
from app.engine.npzio import dump, get_json, load, load_npy, put_json

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
    data = dump(ARRAYS)
    copies = load(data)
    views = load(data, copy=False)
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
    views = load(_compressed(ARRAYS), copy=False)
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
    with pytest.raises(ExportFormatError, match="'x' is malformed"):
        load(data, copy=copy)


@pytest.mark.parametrize("copy", [True, False])
def test_a_member_longer_than_its_header_declares_is_read_like_numpy(copy: bool) -> None:
    """np.load ignores bytes after the declared data; so do both paths."""
    array = np.arange(6, dtype=np.int64)
    data = _npz_with_member("x.npy", _npy(array) + b"trailing")
    np.testing.assert_array_equal(load(data, copy=copy)["x"], array)


@pytest.mark.parametrize("copy", [True, False])
def test_refusals_do_not_depend_on_copy(copy: bool) -> None:
    with pytest.raises(ExportFormatError, match="declares 1000 elements"):
        load(dump({"x": np.zeros(1000)}), max_elements=999, copy=copy)
    with pytest.raises(ExportFormatError, match="holds Python objects"):
        load(dump({"x": np.array([{}, 1], dtype=object)}), copy=copy)
    with pytest.raises(ExportFormatError, match="no array 'y'"):
        load(dump({"x": np.zeros(3)}), required=("y",), copy=copy)
    with pytest.raises(ExportFormatError, match="not a valid npz"):
        load(b"not a zip", copy=copy)


def test_members_that_are_not_top_level_arrays_are_refused() -> None:
    for name in ("notes.txt", "dir/x.npy"):
        with pytest.raises(ExportFormatError, match="which is not an array"):
            load(_npz_with_member(name, _npy(np.zeros(2))))


def test_a_shape_whose_product_overflows_int64_is_refused_from_the_header() -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (2**32, 2**32, 2**32)}
    )
    with pytest.raises(ExportFormatError, match="declares 79228162514264337593543950336"):
        load(_npz_with_member("x.npy", header.getvalue()))


def test_header_checks_run_before_the_data_is_read() -> None:
    seen: list[tuple[str, np.dtype[Any], tuple[int, ...]]] = []

    def refuse_w(name: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        seen.append((name, dtype, shape))
        if name == "W":
            raise ExportFormatError("no W here", (name,))

    assert load(dump({"b": np.zeros(3)}), refuse_w)["b"].shape == (3,)
    assert seen == [("b", np.dtype(np.float64), (3,))]
    with pytest.raises(ExportFormatError) as info:
        load(dump({"W": np.zeros((2, 2))}), refuse_w)
    assert info.value.loc == ("W",)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "not a valid .npy"),
        (b"\x93NUMPY\x03\x00" + b" " * 20, "not a valid .npy"),
        (_npy(np.zeros(3))[:-1], "declares 24 bytes of data, the body has 23"),
        (_npy(np.array([{}], dtype=object)), "holds Python objects"),
    ],
)
def test_load_npy_refusals(data: bytes, words: str) -> None:
    with pytest.raises(ExportFormatError, match=words) as info:
        load_npy(data, name="body")
    assert info.value.loc == ("body",)


def test_json_documents_round_trip_inside_archives() -> None:
    document = {"a": [1, 2.5, None], "b": "é"}
    assert get_json(load(dump({"doc": put_json(document)}))["doc"], "doc") == document
    with pytest.raises(ExportFormatError):
        get_json(np.zeros(3), "doc")


def _dumped_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    square = rng.random((6, 6))
    return {
        "params": rng.random(4810, dtype=np.float32),
        "matrix": rng.random((3, 5)),
        "fortran": np.asfortranarray(rng.random((4, 3))),
        "strided": square[::2, 1::2],  # neither C- nor F-contiguous
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.int64),
        "flags": np.array([True, False, True]),
        "half": np.arange(5, dtype=np.float16),
        "big_endian": np.arange(4, dtype=">i4"),
        "document": put_json({"a": [1, 2]}),
    }


def test_dump_writes_each_member_as_np_save_does_in_a_valid_zip() -> None:
    arrays = _dumped_arrays()
    data = dump(arrays)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None  # every member's CRC checks out
    assert [info.filename for info in archive.infolist()] == [f"{k}.npy" for k in arrays]
    for name, array in arrays.items():
        info = archive.getinfo(f"{name}.npy")
        assert info.compress_type == zipfile.ZIP_STORED
        expected = io.BytesIO()
        np.save(expected, array)
        assert archive.read(info) == expected.getvalue(), name
    with np.load(io.BytesIO(data)) as loaded:
        for name, array in arrays.items():
            assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array)
    for copy in (True, False):
        for name, array in load(data, copy=copy).items():
            assert np.array_equal(array, arrays[name]), name


def test_dump_is_deterministic_and_equal_to_what_savez_stores() -> None:
    arrays = _dumped_arrays()
    assert dump(arrays) == dump(_dumped_arrays())  # equal arrays, equal bytes (one blob)
    savez = io.BytesIO()
    np.savez(savez, **arrays)  # type: ignore[arg-type]
    with zipfile.ZipFile(savez) as theirs, zipfile.ZipFile(io.BytesIO(dump(arrays))) as ours:
        assert {i.filename: theirs.read(i) for i in theirs.infolist()} == {
            i.filename: ours.read(i) for i in ours.infolist()
        }


def test_dump_hands_structured_arrays_to_savez() -> None:
    records = np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")])
    data = dump({"records": records, "plain": np.arange(3)})
    with np.load(io.BytesIO(data)) as loaded:
        assert loaded["records"].tolist() == records.tolist()
        assert loaded["plain"].tolist() == [0, 1, 2]


def test_dump_flags_non_ascii_names_as_utf8() -> None:
    arrays = {"é": np.arange(3), "名前": np.ones(2, dtype=np.float32), "plain": np.zeros(1)}
    data = dump(arrays)
    for copy in (True, False):
        assert list(load(data, copy=copy)) == list(arrays)
    with np.load(io.BytesIO(data)) as loaded:
        assert loaded.files == list(arrays)
    flags = {i.filename: i.flag_bits for i in zipfile.ZipFile(io.BytesIO(data)).infolist()}
    assert flags == {"é.npy": 0x800, "名前.npy": 0x800, "plain.npy": 0}
