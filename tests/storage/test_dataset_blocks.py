"""Statistics and content hash of a stored dataset, computed in bounded blocks read from
its ``.npy`` file: the same figures as from the whole arrays, memory bounded by width."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from app.services.arrays import (
    BLOCK_BYTES,
    ContentHash,
    block_rows,
    feature_stats,
    npy_row_blocks,
)


@pytest.mark.parametrize("width", [1, 20, 784, 4096, 2_000_000])
def test_a_float64_block_stays_within_the_budget_whatever_the_width(width: int) -> None:
    rows = block_rows(width)
    assert rows >= 1
    assert rows == 1 or rows * width * 8 <= BLOCK_BYTES


def test_blocks_read_from_the_file_give_the_whole_arrays_hash_and_stats(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(block_rows(300) * 2 + 17, 300)).astype(np.float32)
    y = np.array(["cat", "dog", "emu"])[rng.integers(0, 3, len(x))]
    path = tmp_path / "x.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")

    digest = ContentHash()
    digest.begin(mapped)
    blocks = list(digest.passing(npy_row_blocks(path, mapped)))
    digest.begin(y)
    digest.update(y)

    whole = hashlib.sha256()
    for array in (x, y):
        whole.update(f"{array.dtype.str}{array.shape}".encode() + array.tobytes())
    assert digest.hexdigest() == whole.hexdigest()
    assert len(blocks) == 3
    assert feature_stats(mapped, iter(blocks)) == feature_stats(x)
    np.testing.assert_allclose(feature_stats(x)["mean"], x.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.ones((1000, 8), dtype=np.float32))
    mapped = np.load(path, mmap_mode="r")
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 64)
    with pytest.raises(ValueError, match="ends before"):
        list(npy_row_blocks(path, mapped))
