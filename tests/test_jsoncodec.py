"""app.services.jsoncodec: orjson's speed, the standard library's results and errors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from app.services import jsoncodec

ACCEPTED = [
    b'{"x": [[1, 2.5], [-3e2, 4]]}',
    b'{"a": 1, "a": 2}',
    b"[1e400, -1e400, NaN, Infinity, -Infinity]",
    b'\xef\xbb\xbf{"x": 1}',
    '["\u00e9", "\\ud800"]'.encode(),
    b"  0.1  ",
    '{"x": 1}',
]
REFUSED = [b"", b"[1,]", b"{'a': 1}", b"[1] 2", b'["\xff"]', b"[01]", b"{", b"\xff\xfe[1]"]


@pytest.mark.parametrize("document", ACCEPTED)
def test_loads_is_json_loads(document: bytes | str) -> None:
    assert repr(jsoncodec.loads(document)) == repr(json.loads(document))


@pytest.mark.parametrize("document", REFUSED)
def test_loads_refuses_what_json_loads_refuses(document: bytes) -> None:
    """The same exception type (JSONDecodeError, UnicodeDecodeError), with the same message."""
    with pytest.raises(ValueError) as expected:
        json.loads(document)
    with pytest.raises(ValueError) as refused:
        jsoncodec.loads(document)
    assert type(refused.value) is type(expected.value)
    assert str(refused.value) == str(expected.value)


def test_integers_beyond_64_bits_are_read_as_the_nearest_float() -> None:
    big = 123456789012345678901234567890
    assert jsoncodec.loads(f"[{big}, {2**64 - 1}, {-(2**63)}]".encode()) == [
        float(big),
        2**64 - 1,
        -(2**63),
    ]


@pytest.mark.parametrize(
    "value",
    [
        {"outputs": [[0.1, 1e300, -0.0, 3.4028234663852886e38]], "labels": ["é", True, None, 7]},
        {"outputs": [[1e-05, 1.5e-07, 5e-324, 0.9999999]]},
        [2**70, -(2**64)],
        {"nested": {"deep": [1.5, 'a\\"b']}},
    ],
)
def test_dumps_writes_the_values_json_dumps_writes(value: Any) -> None:
    encoded = jsoncodec.dumps(value)
    assert isinstance(encoded, bytes)
    assert b" " not in encoded.replace(b'a\\"b', b"")  # compact
    standard = json.dumps(value, separators=(",", ":"))
    assert repr(json.loads(encoded)) == repr(json.loads(standard)) == repr(value)


def test_numpy_float32_is_written_as_its_shortest_decimal() -> None:
    outputs = np.array([[6.8, 0.1], [1e-5, 3.4028235e38]], dtype=np.float32)
    assert (
        jsoncodec.dumps({"outputs": outputs}) == b'{"outputs":[[6.8,0.1],[0.00001,3.4028235e+38]]}'
    )
    assert jsoncodec.plain(outputs) == [[6.8, 0.1], [1e-05, 3.4028235e38]]
    assert jsoncodec.plain(np.float32(6.8)) == 6.8
    assert np.array_equal(np.asarray(jsoncodec.plain(outputs), dtype=np.float32), outputs)
    assert jsoncodec.plain(np.array([1 / 3])) == [1 / 3]  # float64 keeps its 17 digits


def test_plain_takes_arrays_orjson_does_not() -> None:
    assert jsoncodec.plain(np.array([6.8], dtype=">f4")) == [6.8]  # big-endian
    assert jsoncodec.plain(np.array(["a", "b"])) == ["a", "b"]
    assert jsoncodec.plain(np.arange(6, dtype=np.int64).reshape(2, 3).T) == [[0, 3], [1, 4], [2, 5]]
    # The standard library path (an integer beyond 64 bits) writes arrays the same way.
    big = jsoncodec.dumps([2**70, np.array([6.8], dtype=np.float32)])
    assert big == b"[1180591620717411303424,[6.8]]"
