"""Uploads of any size and format: CSV (header optional, target by name or index), npz,
x/y .npy pairs, Fortran order, many blocks; refusals before anything is inflated; no
work files left behind."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.services.uploads import csv_file, npz_file
from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(compress: bool = False, **arrays: Any) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _csv(x: np.ndarray, y: np.ndarray, header: bool = True) -> bytes:
    lines = [",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])] if header else []
    lines += [
        ",".join([*(repr(float(v)) for v in row), str(label)])
        for row, label in zip(x, y, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(make_client: MakeClient, keys: Keys, data_dir: Path, blob_url: str) -> ApiClient:
    """Alice's client, storing into each blob store backend in turn (file, s3)."""
    return make_client(keys.alice, data_dir=data_dir, blob_url=blob_url)


def _upload(client: ApiClient, files: dict[str, Any], **form: str) -> Any:
    return client.post("/v1/datasets/upload", data=form, files=files)


def _rows(client: ApiClient, dataset_id: str) -> tuple[np.ndarray, list[Any]]:
    data = client.get(f"/v1/datasets/{dataset_id}/data?limit=100000").json()
    return np.asarray(data["x"], dtype=np.float32), data["y"]


def _no_work_left(data_dir: Path) -> None:
    work = data_dir / "tmp" / "uploads"
    assert not work.exists() or list(work.iterdir()) == []


def test_csv_over_many_blocks_equals_numpy(
    client: ApiClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_file, "BLOCK_BYTES", 4096)  # many pyarrow blocks
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5)).astype(np.float32)
    y = rng.integers(0, 3, 3000)
    created = _upload(client, {"file": ("big.csv", _csv(x, y), "text/csv")})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["n_samples"] == 3000 and body["n_features"] == 5
    assert body["feature_names"] == ["f0", "f1", "f2", "f3", "f4"]
    assert body["classes"] == [0, 1, 2]
    stored_x, stored_y = _rows(client, body["id"])
    np.testing.assert_array_equal(stored_x, x)
    assert stored_y == y.tolist()
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(body["stats"]["mean"], x64.mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(body["stats"]["std"], x64.std(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(np.float32(body["stats"]["min"]), x.min(axis=0))
    _no_work_left(data_dir)


def test_csv_without_header_and_target_by_index(client: ApiClient) -> None:
    csv = b"0,1.5,2\n1,2.5,3\n0,3.5,4\n"
    created = _upload(client, {"file": ("d.csv", csv, "text/csv")}, target="0").json()
    assert created["n_samples"] == 3 and created["n_features"] == 2
    assert created["feature_names"] is None and created["classes"] == [0, 1]
    x, y = _rows(client, created["id"])
    assert x.tolist() == [[1.5, 2], [2.5, 3], [3.5, 4]] and y == [0, 1, 0]


def test_csv_target_by_index_with_header_and_string_labels(client: ApiClient) -> None:
    csv = b"label,a,b\n cat ,1,2\ndog,3,4\n"
    created = _upload(client, {"file": ("d.csv", csv, "text/csv")}, target="0").json()
    assert created["classes"] == ["cat", "dog"] and created["feature_names"] == ["a", "b"]


def test_csv_float_labels_are_continuous(client: ApiClient) -> None:
    created = _upload(client, {"file": ("d.csv", b"a,y\n1,0.5\n2,1\n", "text/csv")}).json()
    assert created["label_kind"] == "continuous"


def test_csv_integer_labels_beyond_64_bits_are_refused_not_made_continuous(
    client: ApiClient,
) -> None:
    big = b"a,y\n1,3\n2,18446744073709551616\n3,4\n"  # 2**64 on data row 1
    response = _upload(client, {"file": ("d.csv", big, "text/csv")})
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "file", "y", 1] and error["type"] == "label_int_range"
    assert "18446744073709551616" in error["msg"]
    huge = b"a,y\n1,3\n2," + b"9" * 5000 + b"\n"  # past int()'s 4,300 digits
    response = _upload(client, {"file": ("d.csv", huge, "text/csv")})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "file", "y", 1]
    edge = b"a,y\n1,-9223372036854775808\n2,9223372036854775807\n"  # int64's ends
    created = _upload(client, {"file": ("d.csv", edge, "text/csv")}).json()
    assert created["classes"] == [-(2**63), 2**63 - 1]


def test_npy_pair(client: ApiClient) -> None:
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array(["a", "b"] * 3)
    created = _upload(
        client,
        {"x": ("x.npy", _npy(x), "application/octet-stream"), "y": ("y.npy", _npy(y), "x")},
        name="pair",
    ).json()
    assert created["name"] == "pair" and created["classes"] == ["a", "b"]
    stored, labels = _rows(client, created["id"])
    assert stored.tolist() == x.tolist() and labels == y.tolist()


@pytest.mark.parametrize("compress", [False, True])
def test_npz_fortran_order_and_compressed(
    client: ApiClient, compress: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(npz_file, "BLOCK_BYTES", 64)  # many row blocks
    x = np.asfortranarray(np.random.default_rng(1).normal(size=(50, 3)))
    y = np.arange(50) % 2
    created = _upload(client, {"file": ("d.npz", _npz(compress, x=x, y=y), "x")}).json()
    stored, _ = _rows(client, created["id"])
    np.testing.assert_array_equal(stored, x.astype(np.float32))


def _bomb() -> bytes:
    """A normal x and y plus a deflated member of 100 MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy(np.ones((4, 2))))
        archive.writestr("y.npy", _npy(np.zeros(4)))
        archive.writestr("pad.npy", _npy(np.zeros(100_000_000, dtype=np.uint8)))
    return buffer.getvalue()


def _lying_member() -> bytes:
    """x.npy's header says (2, 2) float64 but the member inflates to 50 MB."""
    buffer = io.BytesIO()
    npy = _npy(np.ones((2, 2)))
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", npy + bytes(50_000_000))
        archive.writestr("y.npy", _npy(np.zeros(2)))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("case", "content", "loc", "words"),
    [
        ("extra member", _bomb(), ["body", "file"], "pad.npy"),
        ("lying member", _lying_member(), ["body", "file", "x"], "declares 32 bytes"),
        ("single npy", _npy(np.ones((2, 2))), ["body", "file"], "'x' and 'y'"),
    ],
)
def test_refused_before_inflating(
    client: ApiClient, data_dir: Path, case: str, content: bytes, loc: list[Any], words: str
) -> None:
    response = _upload(client, {"file": ("d.npz", content, "application/octet-stream")})
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == loc and words in error["msg"], error
    _no_work_left(data_dir)


@pytest.mark.parametrize(
    ("x", "words"),
    [
        (np.ones(4), "must be 2-D (rows, features), got shape (4,)"),
        (np.ones((0, 2)), "features have no rows: shape (0, 2)"),
        (np.ones((3, 0)), "features have no columns: shape (3, 0)"),
    ],
)
def test_features_of_the_wrong_shape_say_what_is_wrong(
    client: ApiClient, x: np.ndarray, words: str
) -> None:
    content = _npz(x=x, y=np.zeros(len(x)))
    response = _upload(client, {"file": ("d.npz", content, "application/octet-stream")})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "file", "x"] and words in error["msg"], error


def test_length_mismatch_and_form_rules(client: ApiClient) -> None:
    response = _upload(
        client, {"x": ("x.npy", _npy(np.ones((3, 2))), "a"), "y": ("y.npy", _npy(np.ones(2)), "a")}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file", "y"]
    response = _upload(client, {"x": ("x.npy", _npy(np.ones((3, 2))), "a")})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "x"]
    both = {"file": ("d.csv", b"a,y\n1,0\n", "t"), "x": ("x.npy", _npy(np.ones((1, 1))), "a")}
    response = _upload(client, both)
    assert response.status_code == 422
    assert "either 'file', or both 'x' and 'y'" in response.json()["detail"][0]["msg"]


def test_unknown_target_lists_columns_without_header(client: ApiClient) -> None:
    response = _upload(client, {"file": ("d.csv", b"1,2\n3,4\n", "t")}, target="5")
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "target"] and "has no header" in error["msg"]


def test_refused_upload_leaves_no_work_files(client: ApiClient, data_dir: Path) -> None:
    response = _upload(client, {"file": ("d.csv", b"a,b,y\n1,2,0\n3,nan,1\n", "text/csv")})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file", "x", 1, 1]
    _no_work_left(data_dir)


def test_download_round_trip(client: ApiClient, make_client: MakeClient, keys: Keys) -> None:
    x = np.random.default_rng(2).normal(size=(40, 3)).astype(np.float32)
    y = np.array(["no", "yes"] * 20)
    created = _upload(client, {"x": ("x.npy", _npy(x), "a"), "y": ("y.npy", _npy(y), "a")}).json()
    response = client.get(f"/v1/datasets/{created['id']}/download")
    assert response.status_code == 200
    assert created["id"] in response.headers["content-disposition"]
    with np.load(io.BytesIO(response.content), allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["x"], x)
        np.testing.assert_array_equal(archive["y"], y)
    again = _upload(client, {"file": ("again.npz", response.content, "a")}).json()
    assert again["sha256"] == created["sha256"]
    other = make_client(keys.bob)
    assert other.get(f"/v1/datasets/{created['id']}/download").status_code == 404


def test_work_folders_of_dead_processes_are_removed_at_start(
    make_client: MakeClient, keys: Keys, data_dir: Path
) -> None:
    import socket
    import subprocess
    import sys

    from app.config import Settings
    from app.services.uploads.service import work_root

    root = work_root(Settings(data_dir=data_dir))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    host = socket.gethostname()[:60]
    stale = root / f"upload-{host}-{int(dead.stdout)}-abc"
    live = root / f"upload-{host}-{os.getpid()}-def"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "x.npy").write_bytes(b"half")
    make_client(keys.alice, data_dir=data_dir)  # the app's start-up
    assert not stale.exists() and live.exists()


def test_wide_csv_reader_gives_the_same_dataset_and_errors(
    client: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = rng.integers(0, 2, 300)
    arrow = _upload(client, {"file": ("d.csv", _csv(x, y), "text/csv")}).json()
    monkeypatch.setattr(csv_file, "WIDE_COLUMNS", 2)  # every file goes the wide way
    monkeypatch.setattr(csv_file, "BLOCK_BYTES", 2048)
    wide = _upload(client, {"file": ("d.csv", _csv(x, y), "text/csv")}).json()
    assert wide["sha256"] == arrow["sha256"] and wide["classes"] == arrow["classes"]
    bad = _upload(client, {"file": ("d.csv", b"a,b,y\n1,2,0\n1,x,1\n", "text/csv")})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "file", "line", 3, "b"]
    header_only = _upload(client, {"file": ("d.csv", b"a,b,y\n\n", "text/csv")})
    assert header_only.status_code == 422
    assert "no data rows" in header_only.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("y", "msg", "loc"),
    [
        (np.ones(2, dtype=np.complex128), "got dtype complex128", []),
        (np.array(["a" * 300, "b"]), "got dtype <U300", []),
        (np.ones((2, 1, 1)), "labels must be 1-D or 2-D, got shape (2, 1, 1)", []),
        (np.array([["a"], ["b"]]), "2-D labels must be numbers (multi-output regression)", []),
        (np.array([1.0, np.inf]), "labels must be finite (no NaN or inf)", [1]),
    ],
)
def test_npz_labels_are_refused_with_one_message_each(
    client: ApiClient, y: np.ndarray, msg: str, loc: list[int]
) -> None:
    content = _npz(x=np.ones((2, 2)), y=y)
    response = _upload(client, {"file": ("d.npz", content, "application/octet-stream")})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert msg in error["msg"]
    assert error["loc"] == ["body", "file", "y", *loc]
