"""The OpenAPI document: Swagger's pre-filled examples work as given; errors documented."""

from __future__ import annotations

from typing import Any

from tests.api.client import ApiClient
from tests.api.conftest import import_model, make_network
from tests.api.openapi_ops import operations


def _example(spec: dict[str, Any]) -> Any:
    media = spec["requestBody"]["content"]["application/json"]
    return next(iter(media["examples"].values()))["value"]


def test_request_examples_succeed(client: ApiClient) -> None:
    by_path = {(op.method, op.path): op for op in operations(client.app)}
    for path in ("/v1/datasets", "/v1/datasets/generate", "/v1/networks"):
        example = _example(dict(by_path[("post", path)].spec))
        response = client.post(path, json=example)
        assert response.status_code == 201, (path, response.text)
    model = import_model(client, make_network(client))
    predict = _example(dict(by_path[("post", "/v1/models/{model_id}/predict")].spec))
    response = client.post(f"/v1/models/{model['id']}/predict", json=predict)
    assert response.status_code == 200, response.text
    job = _example(dict(by_path[("post", "/v1/jobs")].spec))
    assert client.post("/v1/jobs", json=job).status_code == 404  # its ids are placeholders


def test_every_operation_documents_its_errors(client: ApiClient) -> None:
    for op in operations(client.app):
        codes = set(op.spec["responses"])
        if op.path.startswith("/v1"):
            assert {"401", "422"} <= codes, str(op)
        if op.path_params:
            assert "404" in codes, str(op)
        if "requestBody" in op.spec:
            assert "413" in codes, str(op)


def test_the_direct_predict_route_is_documented_like_the_others(client: ApiClient) -> None:
    """predict skips FastAPI's per-request dependency solving (DirectRoute), but its path
    parameter, security and body are still in the document."""
    spec = client.app.openapi()["paths"]["/v1/models/{model_id}/predict"]["post"]
    assert spec["parameters"] == [
        {
            "name": "model_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "title": "Model Id"},
        }
    ]
    assert spec["security"] == [{"ApiKey": []}]
    assert spec["requestBody"]["required"] is True
    assert "200" in spec["responses"]
