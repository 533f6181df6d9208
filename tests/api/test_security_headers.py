"""Security headers: the dashboard's strict policy, nosniff and no-referrer everywhere,
no-store on the authenticated API; /docs keeps its own policy."""

from __future__ import annotations

from app.api.security_headers import DASHBOARD_POLICY
from tests.api.client import ApiClient


def test_dashboard_sends_a_strict_policy(client: ApiClient) -> None:
    for path in ("/", "/ui/js/main.js", "/ui/styles.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == DASHBOARD_POLICY
        assert "frame-ancestors 'none'" in DASHBOARD_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_docs_keep_their_own_policy(client: ApiClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] != DASHBOARD_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


def test_api_responses_are_not_stored(client: ApiClient) -> None:
    for path in ("/v1/datasets", "/v1/networks", "/v1/jobs/nope"):
        response = client.get(path)
        assert response.headers["cache-control"] == "no-store", path
        assert response.headers["x-content-type-options"] == "nosniff"
    anonymous = client.get("/v1/datasets", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["cache-control"] == "no-store"
    assert "cache-control" not in client.get("/healthz").headers
