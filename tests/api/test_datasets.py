"""Datasets: JSON, CSV and npz uploads, generated sets; reads; refusals of bad input."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pytest

from app.storage.database import Database
from app.storage.tables import Dataset
from tests.api.client import ApiClient
from tests.api.conftest import XOR_NETWORK, make_dataset, make_network, run_worker, submit


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _upload(client: ApiClient, content: bytes, filename: str = "d.csv", **form: str) -> Any:
    return client.post(
        "/v1/datasets/upload",
        data=form,
        files={"file": (filename, content, "application/octet-stream")},
    )


def _refused(response: Any, status: int, loc_start: list[Any]) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["detail"][0]
    assert error["loc"][: len(loc_start)] == loc_start, error
    assert error["msg"] and error["type"]
    return dict(error)


def test_create_read_list_delete(client: ApiClient) -> None:
    created = make_dataset(client, name="xor")
    assert created["n_samples"] == 4 and created["n_features"] == 2
    assert created["label_kind"] == "categorical" and created["classes"] == [0, 1]
    assert created["stats"]["mean"] == [0.5, 0.5] and created["stats"]["max"] == [1.0, 1.0]
    assert len(created["sha256"]) == 64 and created["created_at"].endswith("Z")
    fetched = client.get(f"/v1/datasets/{created['id']}").json()
    assert fetched == created
    data = client.get(f"/v1/datasets/{created['id']}/data?limit=3").json()
    assert data == {"x": [[0, 0], [0, 1], [1, 0]], "y": [0, 1, 1], "n_samples": 4}
    page = client.get("/v1/datasets?limit=1").json()
    assert page["total"] == 1 and page["items"][0]["id"] == created["id"]
    assert client.delete(f"/v1/datasets/{created['id']}").status_code == 204
    assert client.get(f"/v1/datasets/{created['id']}").status_code == 404


def test_same_content_same_hash(client: ApiClient) -> None:
    assert make_dataset(client)["sha256"] == make_dataset(client, name="other")["sha256"]
    assert make_dataset(client, y=[0, 1, 1, 1])["sha256"] != make_dataset(client)["sha256"]


@pytest.mark.parametrize(
    ("y", "kind", "classes"),
    [
        (["no", "yes", "yes", "no"], "categorical", ["no", "yes"]),
        ([True, False, True, False], "categorical", [False, True]),
        ([0.5, 1.5, 2.0, 3], "continuous", None),
        ([[1, 2], [3, 4], [5, 6], [7, 8]], "multi_output", None),
    ],
)
def test_label_kinds(client: ApiClient, y: list[Any], kind: str, classes: Any) -> None:
    created = make_dataset(client, y=y)
    assert (created["label_kind"], created["classes"]) == (kind, classes)
    assert created["n_targets"] == (2 if kind == "multi_output" else 1)


def test_generate(client: ApiClient) -> None:
    for kind in ("xor", "moons", "circles", "spirals", "blobs"):
        classes = 3 if kind in ("spirals", "blobs") else 2
        response = client.post(
            "/v1/datasets/generate",
            json={"kind": kind, "n_samples": 60, "classes": classes, "seed": 1},
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["n_samples"] == 60 and created["name"] == kind
        assert created["classes"] == list(range(classes))
    refused = client.post("/v1/datasets/generate", json={"kind": "xor", "classes": 3})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "classes"]


def test_csv_upload_with_string_labels_and_target(client: ApiClient) -> None:
    csv = b"species,petal,sepal\nsetosa,1.4,5.1\nvirginica,5.5,6.5\n\nsetosa,1.3,4.9\n"
    created = _upload(client, csv, name="iris", target="species").json()
    assert created["name"] == "iris" and created["n_samples"] == 3
    assert created["classes"] == ["setosa", "virginica"]
    assert created["feature_names"] == ["petal", "sepal"]


def test_npz_upload(client: ApiClient) -> None:
    x = np.random.default_rng(0).normal(size=(10, 3))
    y = np.arange(10) % 2
    created = _upload(client, _npz(x=x, y=y), filename="d.npz").json()
    assert created["n_features"] == 3 and created["classes"] == [0, 1]
    assert created["name"] == "d.npz"


BAD_JSON: list[tuple[str, dict[str, Any], list[Any]]] = [
    ("ragged", {"x": [[0, 0], [1]], "y": [0, 1]}, ["body", "x", 1]),
    ("empty x", {"x": [], "y": []}, ["body", "x"]),
    ("empty rows", {"x": [[], []], "y": [0, 1]}, ["body", "x"]),
    ("nan", {"x": [[0, "NaN"], [1, 1]], "y": [0, 1]}, ["body", "x", 0, 1]),
    ("inf", {"x": [[0, 1e39], [1, 1]], "y": [0, 1]}, ["body", "x", 0, 1]),
    ("mixed labels", {"x": [[0], [1]], "y": [0, "a"]}, ["body", "y", 1]),
    ("bool and int", {"x": [[0], [1]], "y": [True, 1]}, ["body", "y", 1]),
    ("null label", {"x": [[0], [1]], "y": [0, None]}, ["body", "y"]),
    ("length mismatch", {"x": [[0], [1]], "y": [0, 1, 1]}, ["body", "y"]),
    ("ragged y", {"x": [[0], [1]], "y": [[0, 1], [1]]}, ["body", "y", 1]),
    ("nan y", {"x": [[0], [1]], "y": [0.5, "NaN"]}, ["body", "y"]),
    ("huge int", {"x": [[0], [1]], "y": [0, 10**30]}, ["body", "y"]),
    ("strings in x", {"x": [["a", 1]], "y": [0]}, ["body", "x", 0, 0]),
    ("extra field", {"x": [[0]], "y": [0], "z": 1}, ["body", "z"]),
]


@pytest.mark.parametrize(("case", "body", "loc"), BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_bad_json_datasets(
    client: ApiClient, db: Database, case: str, body: dict[str, Any], loc: list[Any]
) -> None:
    response = client.post("/v1/datasets", json={"name": case, **body})
    _refused(response, 422, loc)
    with db.read_session() as session:
        assert session.query(Dataset).count() == 0


def test_non_json_bodies(client: ApiClient) -> None:
    for content, headers in (
        (b"{not json", {"content-type": "application/json"}),
        (b"x=1", {"content-type": "application/x-www-form-urlencoded"}),
        (b"\xff\xfe", {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
    ):
        response = client.post("/v1/datasets", content=content, headers=headers)
        _refused(response, 422, ["body"])


BAD_FILES: list[tuple[str, bytes, str, dict[str, str], list[Any]]] = [
    ("ragged row", b"a,b,y\n1,2,0\n3,1\n", "d.csv", {}, ["body", "file", "line", 3]),
    ("not a number", b"a,b,y\n1,x,0\n", "d.csv", {}, ["body", "file", "line", 2, "b"]),
    ("nan", b"a,b,y\n1,nan,0\n", "d.csv", {}, ["body", "file", "x", 0, 1]),
    (
        "long line",
        b"a,b,y\n" + b"1" * 10_000_000 + b",2,0\n",
        "d.csv",
        {},
        ["body", "file", "line"],
    ),
    ("empty", b"", "d.csv", {}, ["body", "file"]),
    ("header only", b"a,b,y\n", "d.csv", {}, ["body", "file"]),
    ("one column", b"y\n1\n", "d.csv", {}, ["body", "file"]),
    ("unknown target", b"a,y\n1,0\n", "d.csv", {"target": "z"}, ["body", "target"]),
    ("duplicate columns", b"a,a,y\n1,2,0\n", "d.csv", {}, ["body", "file"]),
    ("not utf-8", b"a,y\n\xff,0\n", "d.csv", {}, ["body", "file"]),
    ("unclosed quote", b'a,y\n"1,0\n', "d.csv", {}, ["body", "file", "line"]),
    ("truncated npz", _npz(x=np.ones((4, 2)), y=np.zeros(4))[:200], "d.npz", {}, ["body", "file"]),
    ("object npz", b"", "d.npz", {}, ["body", "file", "x"]),
    ("missing y", _npz(x=np.ones((4, 2))), "d.npz", {}, ["body", "file", "y"]),
    ("1-D x", _npz(x=np.ones(4), y=np.zeros(4)), "d.npz", {}, ["body", "file", "x"]),
    (
        "inf x",
        _npz(x=np.array([[0.0, np.inf]]), y=np.zeros(1)),
        "d.npz",
        {},
        ["body", "file", "x", 0, 1],
    ),
    ("string x", _npz(x=np.array([["a"]]), y=np.zeros(1)), "d.npz", {}, ["body", "file", "x"]),
    (
        "complex y",
        _npz(x=np.ones((2, 1)), y=np.ones(2, dtype=complex)),
        "d.npz",
        {},
        ["body", "file", "y"],
    ),
    (
        "bytes y",
        _npz(x=np.ones((2, 1)), y=np.array([b"a", b"b"])),
        "d.npz",
        {},
        ["body", "file", "y"],
    ),
]


def _object_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([[1], "a"], dtype=object), y=np.zeros(2))
    return buffer.getvalue()


def _huge_shape_npz() -> bytes:
    """A tiny npz whose header declares 10**12 elements."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (63 - len(header) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", npy)
        archive.writestr("y.npy", npy)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("case", "content", "filename", "form", "loc"), BAD_FILES, ids=[c[0] for c in BAD_FILES]
)
def test_bad_files(
    client: ApiClient,
    db: Database,
    case: str,
    content: bytes,
    filename: str,
    form: dict[str, str],
    loc: list[Any],
) -> None:
    if case == "object npz":
        content = _object_npz()
    _refused(_upload(client, content, filename, **form), 422, loc)
    with db.read_session() as session:
        assert session.query(Dataset).count() == 0


def test_huge_declared_shape(client: ApiClient) -> None:
    response = _upload(client, _huge_shape_npz(), "d.npz")
    assert response.status_code == 413, response.text
    error = response.json()["detail"][0]
    assert error["loc"][:2] == ["body", "file"]
    assert "BACKPROP_MAX_DATASET_CELLS" in error["msg"] and "1000000000000" in error["msg"]


def test_upload_without_file(client: ApiClient) -> None:
    # Fields alone go url-encoded: not the multipart form an upload needs.
    response = client.post("/v1/datasets/upload", data={"name": "x"})
    assert _refused(response, 422, ["body"])["type"] == "content_type"
    response = client.post("/v1/datasets/upload", data={"name": "x"}, files={"other": b"1"})
    _refused(response, 422, ["body", "file"])


def test_upload_refuses_a_part_sent_twice(client: ApiClient) -> None:
    csv = b"a,b,label\n1,2,0\n3,4,1\n"
    files = [("file", ("one.csv", csv)), ("file", ("two.csv", csv))]
    error = _refused(client.post("/v1/datasets/upload", files=files), 422, ["body", "file"])
    assert error["type"] == "duplicate_part" and "2" in error["msg"]
    files = [("file", ("one.csv", csv))]
    twice = client.post("/v1/datasets/upload", files=files, data={"name": ["a", "b"]})
    assert _refused(twice, 422, ["body", "name"])["type"] == "duplicate_part"
    assert client.get("/v1/datasets").json()["total"] == 0  # nothing stored
    once = client.post("/v1/datasets/upload", files=files, data={"name": "a"})
    assert once.status_code == 201, once.text


def test_delete_refused_while_a_job_uses_it(client: ApiClient) -> None:
    dataset = client.post("/v1/datasets/generate", json={"kind": "xor"}).json()
    network = make_network(client, name="n", layers=[{"units": 1, "activation": "sigmoid"}])
    job = submit(client, network, dataset, epochs=1)
    _refused(client.delete(f"/v1/datasets/{dataset['id']}"), 409, ["path", "dataset_id"])
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204


@pytest.mark.parametrize(
    ("y", "loc", "kind"),
    [
        (["a", "L" * 1001, "b", "c"], ["body", "y", 1], "string_too_long"),
        ([0, None, 1, 0], ["body", "y", 1], "label_type"),
        ([0, [1], 1, 0], ["body", "y", 1], "label_type"),
        ([[1.0], [2.0], ["3"], [4.0]], ["body", "y", 2, 0], "float_type"),
        ([0, 1, 2**63, 0], ["body", "y", 2], "label_int_range"),
        ([0, 1, 1, "0"], None, None),  # one error after the schema: mixed types
    ],
)
def test_a_bad_label_is_one_error_at_its_place(
    client: ApiClient, y: list[Any], loc: list[Any] | None, kind: str | None
) -> None:
    """Not one error per member of the labels' union, each with a type name in its loc."""
    response = client.post(
        "/v1/datasets", json={"name": "d", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": y}
    )
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert len(errors) == 1, errors
    if loc is not None:
        assert errors[0]["loc"] == loc and errors[0]["type"] == kind, errors


def test_a_name_with_a_control_character_is_refused(client: ApiClient) -> None:
    """NUL (which PostgreSQL's text refuses: a 500 there), tab, newline: 422 at the name."""
    for bad in ("a\x00b", "a\tb", "line\n"):
        body = {"name": bad, "x": [[0, 0], [1, 1]], "y": [0, 1]}
        response = client.post("/v1/datasets", json=body)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "name"] and error["type"] == "control_character"
        network = client.post("/v1/networks", json={**XOR_NETWORK, "name": bad})
        assert network.status_code == 422 and network.json()["detail"][0]["loc"] == [
            "body",
            "name",
        ]
        upload = _upload(client, b"a,b\n1,0\n2,1\n", name=bad)
        assert upload.status_code == 422, upload.text
        assert upload.json()["detail"][0]["loc"] == ["body", "name"]
    # A file name with a control character, sent raw (httpx would percent-encode it).
    raw = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="d\x01.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\na,b\n1,0\n2,1\n\r\n--B--\r\n"
    )
    named = client.post(
        "/v1/datasets/upload",
        content=raw,
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    assert named.status_code == 201, named.text
    assert named.json()["name"] == "d.csv"  # the file's name, without its control character
    assert client.get("/v1/datasets").json()["total"] == 1


@pytest.mark.parametrize(
    ("label", "words"), [("L" * 1001, "1001 characters"), ("x\x00", "NUL character")]
)
def test_a_csv_label_the_api_could_not_read_back_is_refused(
    client: ApiClient, label: str, words: str
) -> None:
    """Stored, a label over 1000 characters made every GET /v1/datasets a 500; a trailing
    NUL was dropped, merging "x\\x00" into "x"."""
    content = f"a,kind\n1,{label}\n2,y\n3,y\n".encode()
    response = _upload(client, content)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "file", "y", 0] and words in error["msg"], error
    listed = client.get("/v1/datasets")
    assert listed.status_code == 200 and listed.json()["total"] == 0
    nul = client.post("/v1/datasets", json={"name": "d", "x": [[0], [1]], "y": ["x\x00", "x"]})
    assert nul.status_code == 422 and nul.json()["detail"][0]["loc"] == ["body", "y", 0]


def test_regression_targets_past_float32_fail_the_job_saying_so(
    client: ApiClient, db: Database
) -> None:
    """Finite (float64) targets a float32 network cannot hold: the job fails naming the row
    (was an internal error, "overflow encountered in cast")."""
    network = make_network(
        client, layers=[{"units": 1, "activation": "linear"}], loss="mse", input_size=2
    )
    dataset = make_dataset(client, y=[0.0, 1e308, 1.0, 2.0])
    job = submit(client, network, dataset, epochs=2)
    run_worker(db)
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "failed", done
    assert "y[1] is beyond the range of the network's float32" in done["error"], done


def test_a_csv_whose_lines_end_in_a_comma_is_refused(client: ApiClient) -> None:
    """The unnamed empty last column would be the labels (one class "") and the real labels
    a feature: refused, saying why."""
    content = b"a,b,label,\n1,2,0,\n3,4,1,\n5,6,0,\n"
    response = _upload(client, content)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "file", "y"] and "end in a comma" in error["msg"], error
    assert client.get("/v1/datasets").json()["total"] == 0
