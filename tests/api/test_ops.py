"""/healthz, /readyz, /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.main import create_app
from app.storage.database import Database
from app.storage.tables import WorkerHeartbeat, utcnow
from tests.api.client import ApiClient
from tests.api.conftest import MakeClient, import_model, make_dataset, make_network


def test_readyz_needs_a_worker_heartbeat(make_client: MakeClient, db: Database) -> None:
    client = make_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert any("worker" in reason for reason in response.json()["reasons"])
    with db.session() as session:
        session.add(WorkerHeartbeat(id="w1", hostname="h", pid=1, heartbeat_at=utcnow()))
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "reasons": []}


def test_readyz_reports_an_unreachable_database() -> None:
    url = "sqlite:////nonexistent/dir/x.db"
    with ApiClient(create_app(Settings(database_url=url))) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    assert response.json()["reasons"][0].startswith("database unreachable")


def test_importing_the_module_app_touches_no_database(tmp_path: Path) -> None:
    path = tmp_path / "never.db"
    code = "import app.main; assert app.main.app.title == 'Backprop'"
    env = {**os.environ, "BACKPROP_DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert not path.exists()


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_metrics(client: ApiClient) -> None:
    make_dataset(client)
    client.get("/v1/datasets/ds_0000000000000000")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    found = samples(response.text)
    requests = "backprop_http_requests_total"
    assert found[sample(requests, method="POST", route="/v1/datasets", status="201")] == 1
    route = "/v1/datasets/{dataset_id}"
    assert found[sample(requests, method="GET", route=route, status="404")] == 1
    bucket = "backprop_http_request_duration_seconds_bucket"
    assert found[sample(bucket, method="POST", route="/v1/datasets", le="+Inf")] == 1
    assert found[sample("backprop_jobs", status="queued")] == 0
    assert found[sample("backprop_queue_depth")] == 0
    assert found[sample("backprop_workers")] == 0


def test_metrics_count_requests_refused_before_routing(client: ApiClient) -> None:
    """A query parameter given twice (app/api/query_once.py) and a NUL in the path
    (app/api/nul_path.py) are refused before routing: still counted, under the route of
    requests that matched none."""
    assert client.get("/v1/jobs?status=queued&status=running").status_code == 422
    assert client.get("/v1/jobs/job_%00").status_code == 404
    found = samples(client.get("/metrics").text)
    requests = "backprop_http_requests_total"
    assert found[sample(requests, method="GET", route="unmatched", status="422")] == 1
    assert found[sample(requests, method="GET", route="unmatched", status="404")] == 1


def test_metrics_count_the_model_cache(client: ApiClient) -> None:
    model = import_model(client, make_network(client))
    for _ in range(3):
        response = client.post(f"/v1/models/{model['id']}/predict", json={"x": [[0, 1]]})
        assert response.status_code == 200, response.text
    found = samples(client.get("/metrics").text)
    assert found[sample("backprop_model_cache_size")] == 1
    # The first request misses (it looks on the fast path, then again as it loads); the
    # next two are served from the cache.
    assert found[sample("backprop_model_cache_misses")] in {1, 2}
    assert found[sample("backprop_model_cache_hits")] == 2
    predict = "/v1/models/{model_id}/predict"
    requests = "backprop_http_requests_total"
    assert found[sample(requests, method="POST", route=predict, status="200")] == 3
