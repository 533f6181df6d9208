"""Bodies that cannot be parsed at all are 422s at ["body"], never an undocumented 400.

Regression of finding A1 (/work/notes/api-bugs.md): Starlette's form parser refused a
multipart body whose part has no headers with a bare 400, which neither multipart route
documents (Schemathesis status_code_conformance).
"""

from __future__ import annotations

import pytest

from tests.api.client import ApiClient
from tests.api.openapi_ops import operations

MULTIPART_ROUTES = ("/v1/datasets/upload", "/v1/models/import")

BOUNDARY = "a29a709f250f413411f512eed83be67a"
# The exact body of finding A1: one part, no headers, then the closing delimiter.
HEADERLESS_PART = f"--{BOUNDARY}\r\n4.6e-243--{BOUNDARY}--\r\n".encode()


def _assert_body_refused(response: object, error_type: str) -> None:
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    detail = response.json()["detail"]  # type: ignore[attr-defined]
    assert len(detail) == 1
    assert detail[0]["loc"] == ["body"] and detail[0]["type"] == error_type
    assert detail[0]["msg"]


@pytest.mark.parametrize("path", MULTIPART_ROUTES)
def test_headerless_multipart_part(client: ApiClient, path: str) -> None:
    response = client.post(
        path,
        content=HEADERLESS_PART,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    _assert_body_refused(response, "multipart")
    assert "Invalid multipart data" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("path", MULTIPART_ROUTES)
def test_multipart_without_boundary(client: ApiClient, path: str) -> None:
    response = client.post(
        path, content=HEADERLESS_PART, headers={"content-type": "multipart/form-data"}
    )
    _assert_body_refused(response, "multipart")


@pytest.mark.parametrize("path", MULTIPART_ROUTES)
def test_part_without_a_name(client: ApiClient, path: str) -> None:
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--{BOUNDARY}--\r\n"
    ).encode()
    response = client.post(
        path, content=body, headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    )
    _assert_body_refused(response, "multipart")


def test_multipart_routes_document_the_refusal(client: ApiClient) -> None:
    documented = {
        op.path: op.spec["responses"]
        for op in operations(client.app)
        if op.method == "post" and op.path in MULTIPART_ROUTES
    }
    assert set(documented) == set(MULTIPART_ROUTES)
    for path, responses in documented.items():
        assert "422" in responses and "400" not in responses, path
