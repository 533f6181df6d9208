"""Models: predict (the hot path), export / import of weights, delete."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from app.services.keys import revoke_key
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient, auth, import_model, make_network

CLASSIFIER = {
    "format": "backprop-mlp",
    "version": 1,
    "task": "binary",
    "classes": ["no", "yes"],
    "standardize": False,
}


def test_regression_import_predict_has_no_labels(client: ApiClient) -> None:
    network = make_network(
        client, layers=[{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "linear"}]
    )
    model = import_model(client, network)
    assert model["job_id"] is None and model["network_id"] == network["id"]
    assert model["task"] == "regression" and model["classes"] is None
    response = client.post(f"/v1/models/{model['id']}/predict", json={"x": [[0, 1], [2, 3]]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"outputs"} and np.asarray(body["outputs"]).shape == (2, 2)


def _import_weights(
    client: ApiClient,
    network: dict[str, Any],
    arrays: dict[str, np.ndarray],
    config: dict[str, Any] | None,
) -> dict[str, Any]:
    """A model of ``network`` with exactly ``arrays`` (W1, b1, ...) as its weights."""
    data = {"network_id": network["id"]}
    if config is not None:
        engine_config = {k: network[k] for k in ("input_size", "layers", "loss", "init", "seed")}
        data["config"] = json.dumps({**config, "network": engine_config})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    files = {"file": ("w.npz", buffer.getvalue(), "application/octet-stream")}
    response = client.post("/v1/models/import", data=data, files=files)
    assert response.status_code == 201, response.text
    return dict(response.json())


# h = relu(x1 + x2 - 2) in each of 4 units; output z = sum(h) - 1. Row (0.5, 0.5): h = 0,
# z = -1; row (3e38, 3e38): x1 + x2 overflows float32 to +inf, so h = +inf and z = +inf.
OVERFLOWING = {
    "W1": np.ones((4, 2), np.float32),
    "b1": np.full(4, -2.0, np.float32),
    "W2": np.ones((1, 4), np.float32),
    "b2": np.array([-1.0], np.float32),
}


@pytest.mark.parametrize("task", ["regression", "binary"])
def test_outputs_that_overflow_are_refused_not_answered_as_nan(
    client: ApiClient, task: str
) -> None:
    """Finite float32 inputs can overflow inside the network: a 422 naming the row, never
    a 200 with NaN/inf (not JSON) or a label chosen from NaN scores."""
    output = {"units": 1, "activation": "linear" if task == "regression" else "sigmoid"}
    network = make_network(client, layers=[{"units": 4, "activation": "relu"}, output])
    config = None if task == "regression" else CLASSIFIER
    model = _import_weights(client, network, OVERFLOWING, config)
    response = client.post(
        f"/v1/models/{model['id']}/predict", json={"x": [[0.5, 0.5], [3e38, 3e38]]}
    )
    if task == "binary":  # a sigmoid saturates instead of overflowing: a plain answer
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["labels"] == ["no", "yes"]  # sigmoid(-1) = 0.27; sigmoid(+inf) = 1
        np.testing.assert_allclose(body["outputs"], [[1 / (1 + np.e)], [1.0]], rtol=1e-6)
        return
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "x", 1] and error["type"] == "non_finite_output"


def test_classifier_labels_are_the_original_values(client: ApiClient) -> None:
    # h = tanh(x1) in each of 8 units; z = sum(h) - 0.5: -0.5, 7.5 and -8.5 for the rows.
    arrays = {
        "W1": np.tile(np.array([[1.0, 0.0]], np.float32), (8, 1)),
        "b1": np.zeros(8, np.float32),
        "W2": np.ones((1, 8), np.float32),
        "b2": np.array([-0.5], np.float32),
    }
    model = _import_weights(client, make_network(client), arrays, CLASSIFIER)
    assert model["task"] == "binary" and model["classes"] == ["no", "yes"]
    body = client.post(
        f"/v1/models/{model['id']}/predict", json={"x": [[0, 0], [5, -5], [-5, 5]]}
    ).json()
    outputs = np.asarray(body["outputs"])
    assert outputs.shape == (3, 1) and ((outputs >= 0) & (outputs <= 1)).all()
    assert body["labels"] == ["yes" if p > 0.5 else "no" for p in outputs[:, 0]]
    assert body["labels"] == ["no", "yes", "no"]


def test_export_import_round_trip(client: ApiClient) -> None:
    network = make_network(client)
    model = import_model(client, network, CLASSIFIER)
    exported = client.get(f"/v1/models/{model['id']}/weights")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/octet-stream"
    arrays = np.load(io.BytesIO(exported.content), allow_pickle=False)
    assert {"W1", "W2", "b1", "b2"} <= set(arrays.files)
    again = client.post(
        "/v1/models/import",
        data={"network_id": network["id"], "config": json.dumps(model["config"])},
        files={"file": ("m.npz", exported.content, "application/octet-stream")},
    )
    assert again.status_code == 201, again.text
    x = {"x": np.random.default_rng(0).normal(size=(16, 2)).tolist()}
    first = client.post(f"/v1/models/{model['id']}/predict", json=x).json()
    second = client.post(f"/v1/models/{again.json()['id']}/predict", json=x).json()
    assert first == second
    assert client.get(f"/v1/models/{again.json()['id']}/weights").content == exported.content


BAD_PREDICT: list[tuple[str, Any, list[Any]]] = [
    ("ragged", {"x": [[0, 0], [1]]}, ["body", "x", 1]),
    ("empty", {"x": []}, ["body", "x"]),
    ("empty row", {"x": [[]]}, ["body", "x", 0]),
    ("wrong width", {"x": [[0, 0, 0]]}, ["body", "x"]),
    ("nan", b'{"x": [[0, NaN]]}', ["body", "x", 0, 1]),
    ("inf", b'{"x": [[0, 1e999]]}', ["body", "x", 0, 1]),
    ("float32 overflow", {"x": [[0, 1e39]]}, ["body", "x", 0, 1]),
    ("string", {"x": [[0, "a"]]}, ["body", "x", 0, 1]),
    ("null", {"x": [[0, None]]}, ["body", "x", 0, 1]),
    ("flat", {"x": [0, 1]}, ["body", "x", 0]),
    ("deep", {"x": [[[0, 1]]]}, ["body", "x", 0, 0]),
    ("no x", {"rows": [[0, 1]]}, ["body"]),
    ("not an object", [[0, 1]], ["body"]),
    ("not json", b"{x:", ["body"]),
    ("not utf-8", b"\xff\xfe", ["body"]),
    ("huge int", b'{"x": [[0, 1' + b"0" * 400 + b"]]}", ["body", "x", 0, 1]),
    ("numeric strings", {"x": [["1", "2"]]}, ["body", "x", 0, 0]),  # not read as numbers
    ("a string after one", {"x": [[1, 2], [3, " 1_0 "]]}, ["body", "x", 1, 1]),
    ("unknown field", {"x": [[0, 1]], "y": [1]}, ["body", "y"]),
    ("boolean", {"x": [[0, 1], [1, True]]}, ["body", "x", 1, 1]),
]


@pytest.mark.parametrize(("case", "body", "loc"), BAD_PREDICT, ids=[c[0] for c in BAD_PREDICT])
def test_bad_predict_input(client: ApiClient, case: str, body: Any, loc: list[Any]) -> None:
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    if isinstance(body, bytes):
        response = client.post(url, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(url, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_cached_predict_touches_no_database(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    client = make_client(keys.alice, key_cache_seconds=60, model_recheck_seconds=60)
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    assert client.post(url, json={"x": [[0, 1]]}).status_code == 200  # warms both caches
    checkouts: list[object] = []
    listener = lambda *_args: checkouts.append(1)  # noqa: E731
    event.listen(db.engine, "checkout", listener)
    try:
        for _ in range(5):
            assert client.post(url, json={"x": [[0, 1]]}).status_code == 200
    finally:
        event.remove(db.engine, "checkout", listener)
    assert checkouts == []


def test_delete_drops_the_model_from_the_cache(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(keys.alice, key_cache_seconds=60, model_recheck_seconds=60)
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    assert client.post(url, json={"x": [[0, 1]]}).status_code == 200
    assert client.delete(f"/v1/models/{model['id']}").status_code == 204
    assert client.post(url, json={"x": [[0, 1]]}).status_code == 404
    assert client.get(f"/v1/models/{model['id']}").status_code == 404


def test_model_deleted_elsewhere_stops_answering_within_the_bound(
    make_client: MakeClient, keys: Keys
) -> None:
    here = make_client(keys.alice, model_recheck_seconds=0)
    there = make_client(keys.alice)
    model = import_model(here, make_network(here))
    url = f"/v1/models/{model['id']}/predict"
    assert here.post(url, json={"x": [[0, 1]]}).status_code == 200
    assert there.delete(f"/v1/models/{model['id']}").status_code == 204
    assert here.post(url, json={"x": [[0, 1]]}, headers=auth(keys.alice)).status_code == 404


def test_model_recheck_and_key_cache_are_independent_settings(
    make_client: MakeClient, keys: Keys, db: Database
) -> None:
    """A long key cache does not delay the model recheck, and a long model recheck does
    not delay a key's revocation."""
    there = make_client(keys.alice)
    keys_cached = make_client(keys.alice2, key_cache_seconds=600, model_recheck_seconds=0)
    models_cached = make_client(keys.alice2, key_cache_seconds=0, model_recheck_seconds=600)
    model = import_model(there, make_network(there))
    url = f"/v1/models/{model['id']}/predict"
    for client in (keys_cached, models_cached):
        assert client.post(url, json={"x": [[0, 1]]}).status_code == 200  # warms the caches

    assert there.delete(f"/v1/models/{model['id']}").status_code == 204
    assert keys_cached.post(url, json={"x": [[0, 1]]}).status_code == 404  # rechecked
    assert models_cached.post(url, json={"x": [[0, 1]]}).status_code == 200  # still trusted

    with db.session() as session:
        assert revoke_key(session, key_name="alice-2")
    assert models_cached.post(url, json={"x": [[0, 1]]}).status_code == 401  # key rechecked
    assert keys_cached.get("/v1/datasets").status_code == 200  # key still cached


BAD_IMPORTS: list[tuple[str, bytes | None, str | None, list[Any]]] = [
    ("truncated", b"PK\x03\x04garbage", None, ["body", "file"]),
    ("wrong shapes", None, None, ["body", "file"]),
    ("config not json", None, "{nope", ["body", "config"]),
    (
        "config other network",
        None,
        '{"network": {"input_size": 3}}',
        ["body", "config", "network", "input_size"],
    ),
]


@pytest.mark.parametrize(
    ("case", "content", "config", "loc"), BAD_IMPORTS, ids=[c[0] for c in BAD_IMPORTS]
)
def test_bad_imports(
    client: ApiClient, case: str, content: bytes | None, config: str | None, loc: list[Any]
) -> None:
    network = make_network(client)
    if content is None:
        buffer = io.BytesIO()
        arrays = {
            "W1": np.ones((8, 3), np.float32),
            "b1": np.ones(8, np.float32),
            "W2": np.ones((1, 8), np.float32),
            "b2": np.ones(1, np.float32),
        }
        if case != "wrong shapes":
            arrays["W1"] = np.ones((8, 2), np.float32)
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        content = buffer.getvalue()
    data = {"network_id": network["id"]}
    if config is not None:
        data["config"] = config
    response = client.post(
        "/v1/models/import",
        data=data,
        files={"file": ("m.npz", content, "application/octet-stream")},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][: len(loc)] == loc
    assert client.get("/v1/models").json()["total"] == 0  # nothing stored


def _import_classifier(client: ApiClient, change: dict[str, Any]) -> Any:
    """POST /v1/models/import of a fresh XOR network's 2-8-1 weights with CLASSIFIER's
    config, ``change`` applied to it; the response."""
    network = make_network(client)
    engine_config = {k: network[k] for k in ("input_size", "layers", "loss", "init", "seed")}
    buffer = io.BytesIO()
    np.savez(buffer, W1=np.ones((8, 2), np.float32), b1=np.ones(8, np.float32),
             W2=np.ones((1, 8), np.float32), b2=np.ones(1, np.float32))  # fmt: skip
    config = {**CLASSIFIER, **change, "network": engine_config}
    return client.post(
        "/v1/models/import",
        data={"network_id": network["id"], "config": json.dumps(config)},
        files={"file": ("m.npz", buffer.getvalue(), "application/octet-stream")},
    )


def test_an_imported_class_label_longer_than_any_label_is_refused(client: ApiClient) -> None:
    """A class label over MAX_LABEL_CHARS is a 422 at its place in the config: stored, it
    would make every read of the owner's models fail (their schema's labels are bounded)."""
    response = _import_classifier(client, {"classes": ["no", "L" * 1001]})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "config", "classes", 1], error
    assert "1001 characters" in error["msg"]
    listed = client.get("/v1/models")
    assert listed.status_code == 200 and listed.json()["total"] == 0


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 200),  # no header: JSON, as every JSON body of the API
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/vnd.backprop+json", 200),
        ("application/x-www-form-urlencoded", 422),  # what curl -d sends unless told
        ("text/plain", 422),
        ("application/xml", 422),
    ],
)
def test_predict_reads_json_only_as_json(
    client: ApiClient, content_type: str | None, status: int
) -> None:
    """A predict body is JSON or (application/x-npy) a .npy file: another Content-Type is a
    422 that says which to send, as on every other endpoint."""
    model = import_model(client, make_network(client))
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post(
        f"/v1/models/{model['id']}/predict", content=b'{"x": [[0, 1]]}', headers=headers
    )
    assert response.status_code == status, response.text
    if status == 422:
        (error,) = response.json()["detail"]
        assert error["type"] == "content_type" and error["loc"] == ["body"]
        assert "application/json" in error["msg"] and repr(content_type) in error["msg"]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"classes": [0, True]}, ["body", "config", "classes"]),  # datasets refuse the mix
        ({"classes": [0, 1.0]}, ["body", "config", "classes"]),  # nor ints with floats
        ({"classes": ["a\x00", "b"]}, ["body", "config", "classes", 0]),
    ],
)
def test_imported_classes_are_what_a_dataset_could_hold(
    client: ApiClient, change: dict[str, Any], loc: list[Any]
) -> None:
    response = _import_classifier(client, change)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_an_import_config_with_a_5000_digit_integer_is_422(client: ApiClient) -> None:
    """json.loads refuses integers of over 4300 digits with a ValueError: not a 500."""
    network = make_network(client)
    response = client.post(
        "/v1/models/import",
        data={
            "network_id": network["id"],
            "config": '{"network": {"input_size": 1' + "0" * 5000 + "}}",
        },
        files={"file": ("m.npz", b"PK", "application/octet-stream")},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "config"]


def test_a_nul_in_a_path_or_an_id_filter_is_never_a_500(client: ApiClient) -> None:
    """PostgreSQL's text refuses NUL: answered before any query (404 for a path, 422 for
    a filter), on both databases."""
    for path in ("/v1/models/%00", "/v1/sweeps/a%00b", "/v1/evaluations/%00", "/v1/jobs/%00"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["detail"][0]["type"] == "not_found"
    for path in (
        "/v1/models?network_id=%00",
        "/v1/jobs?dataset_id=a%00",
        "/v1/predictions?model_id=%00",
    ):
        response = client.get(path)
        assert response.status_code == 422, (path, response.text)
