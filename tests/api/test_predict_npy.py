"""POST /v1/models/{id}/predict with a .npy body (Content-Type: application/x-npy)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient, import_model, make_network

NPY = {"Content-Type": "application/x-npy"}


def npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.fixture
def model(client: ApiClient) -> dict[str, Any]:
    return import_model(client, make_network(client, input_size=5))


def test_npy_rows_predict_exactly_like_json_rows(client: ApiClient, model: dict[str, Any]) -> None:
    url = f"/v1/models/{model['id']}/predict"
    x = np.random.default_rng(0).standard_normal((7, 5))
    expected = client.post(url, json={"x": x.tolist()})
    assert expected.status_code == 200, expected.text
    for array in (
        x,  # float64
        np.asfortranarray(x),
        x.astype(">f8"),  # big-endian
        (x * 100).round().astype(np.int32),
    ):
        as_json = client.post(url, json={"x": array.tolist()}).json()
        response = client.post(url, content=npy(array), headers=NPY)
        assert response.status_code == 200, response.text
        assert response.json() == as_json
    response = client.post(
        url, content=npy(x), headers={"Content-Type": "Application/X-NPY; charset=binary"}
    )
    assert response.json() == expected.json()
    # float32 rows: the values the model sees anyway
    x32 = x.astype(np.float32)
    response = client.post(url, content=npy(x32), headers=NPY)
    assert response.json() == client.post(url, json={"x": x32.tolist()}).json()


def _refusal(client: ApiClient, url: str, body: bytes) -> dict[str, Any]:
    response = client.post(url, content=body, headers=NPY)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return dict(error)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "not a valid .npy"),
        (b"\x93NUMPY garbage", "not a valid .npy"),
        (npy(np.zeros((2, 5)))[:-8], "declares 80 bytes of data, the body has 72"),
        (npy(np.zeros((2, 5))) + b"\x00", "the body has 81"),
        (npy(np.array([[1, {}]], dtype=object), allow_pickle=True), "holds Python objects"),
        (npy(np.zeros(5)), "must be 2-D"),
        (npy(np.zeros((0, 5))), "at least one row"),
        (npy(np.ones((2, 5), dtype=bool)), "must hold real numbers"),
        (npy(np.ones((2, 5), dtype=np.complex64)), "must hold real numbers"),
        (npy(np.array([["a"] * 5])), "must hold real numbers"),
    ],
)
def test_bad_npy_bodies_are_a_422_at_the_body(
    client: ApiClient, model: dict[str, Any], body: bytes, words: str
) -> None:
    error = _refusal(client, f"/v1/models/{model['id']}/predict", body)
    assert error["loc"] == ["body"]
    assert words in error["msg"]


def test_npy_values_are_checked_like_json_values(client: ApiClient, model: dict[str, Any]) -> None:
    url = f"/v1/models/{model['id']}/predict"
    x = np.zeros((3, 5))
    x[2, 4] = np.nan
    error = _refusal(client, url, npy(x))
    assert error["loc"] == ["body", 2, 4]
    huge = np.zeros((1, 5))
    huge[0, 1] = 1e300  # finite in float64, inf in float32
    assert _refusal(client, url, npy(huge))["loc"] == ["body", 0, 1]
    error = _refusal(client, url, npy(np.zeros((2, 6))))
    assert error["loc"] == ["body"] and error["type"] == "shape_mismatch"


def test_npy_rows_count_against_the_predict_row_limit(make_client: MakeClient, keys: Keys) -> None:
    client = make_client(keys.alice, max_predict_rows=4)
    model = import_model(client, make_network(client, input_size=5))
    url = f"/v1/models/{model['id']}/predict"
    assert client.post(url, content=npy(np.zeros((4, 5))), headers=NPY).status_code == 200
    response = client.post(url, content=npy(np.zeros((5, 5))), headers=NPY)
    assert response.status_code == 413, response.text
    assert "BACKPROP_MAX_PREDICT_ROWS" in response.text


def test_the_npy_body_is_documented(client: ApiClient) -> None:
    """As its own operation, with a body type client generators know (raw bytes); the JSON
    operation names it."""
    paths = client.app.openapi()["paths"]
    spec = paths["/v1/models/{model_id}/predict.npy"]["post"]
    content = spec["requestBody"]["content"]
    assert content == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }
    assert ".npy" in spec["requestBody"]["description"]
    assert spec["security"] == [{"ApiKey": []}]
    json_body = paths["/v1/models/{model_id}/predict"]["post"]["requestBody"]
    assert list(json_body["content"]) == ["application/json"]
    assert "predict_npy" in json_body["description"]


def test_predict_npy_answers_like_predict_whatever_the_content_type(
    client: ApiClient, model: dict[str, Any]
) -> None:
    url = f"/v1/models/{model['id']}/predict"
    x = np.random.default_rng(1).standard_normal((3, 5))
    expected = client.post(url, json={"x": x.tolist()}).json()
    for content_type in ("application/octet-stream", "application/x-npy", "text/plain"):
        response = client.post(f"{url}.npy", content=npy(x), headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text
        assert response.json() == expected
    refused = client.post(f"{url}.npy", json={"x": x.tolist()})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["type"] == "npy_invalid"
