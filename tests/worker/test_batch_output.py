"""The output file of the row-streaming kinds: pieces stored in a file blob store on the
same file system (hard-linked, not copied) keep their bytes after the next rows are
written, and a new file rebuilt from them continues to the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.jobs.batch_output import OutputFile
from app.storage.blob_file import FileBlobStore
from app.storage.blobs import read_verified

ROWS, WIDTH = 10, 3
OUTPUTS = np.arange(ROWS * WIDTH, dtype=np.float32).reshape(ROWS, WIDTH)


def _written(folder: Path, store: FileBlobStore) -> tuple[OutputFile, list[dict[str, object]]]:
    """Rows 0-3 and 4-6 written, each stored as a piece; rows 7-9 written after them."""
    folder.mkdir()
    out = OutputFile(folder, rows=ROWS, width=WIDTH, dtype=np.dtype(np.float32))
    parts = []
    for start, stop in ((0, 4), (4, 7)):
        out.append(OUTPUTS[start:stop])
        piece = out.store_piece(store)
        assert piece is not None
        parts.append(piece)
    out.append(OUTPUTS[7:])
    assert out.store_piece(store) is not None
    return out, parts


def test_stored_pieces_keep_their_rows_and_rebuild_the_same_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    first, parts = _written(tmp_path / "first", store)
    assert [part["rows"] for part in parts] == [4, 3]
    assert read_verified(store, str(parts[0]["sha256"])) == OUTPUTS[:4].tobytes()
    assert read_verified(store, str(parts[1]["sha256"])) == OUTPUTS[4:7].tobytes()
    whole = first.read()

    (tmp_path / "second").mkdir()
    again = OutputFile(tmp_path / "second", rows=ROWS, width=WIDTH, dtype=np.dtype(np.float32))
    assert again.restore(store, parts) == 7
    again.append(OUTPUTS[7:])
    np.testing.assert_array_equal(again.read(), whole)
    np.testing.assert_array_equal(whole, OUTPUTS)
    assert (tmp_path / "second" / "outputs.npy").read_bytes() == (
        tmp_path / "first" / "outputs.npy"
    ).read_bytes()
