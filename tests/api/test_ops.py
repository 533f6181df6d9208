"""/healthz, /readyz, /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.config import Settings
from app.main import create_app
from app.storage.database import Database
from app.storage.tables import WorkerHeartbeat, utcnow
from tests.api.client import ApiClient
from tests.api.conftest import MakeClient, make_dataset


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


def test_metrics(client: ApiClient) -> None:
    make_dataset(client)
    client.get("/v1/datasets/ds_0000000000000000")
    text = client.get("/metrics").text
    assert 'backprop_http_requests_total{method="POST",route="/v1/datasets",status="201"} 1' in text
    assert (
        'backprop_http_requests_total{method="GET",route="/v1/datasets/{dataset_id}",'
        'status="404"} 1'
    ) in text
    bucket = 'backprop_http_request_duration_seconds_bucket{method="POST",route="/v1/datasets"'
    assert bucket + ',le="+Inf"} 1' in text
    assert 'backprop_jobs{status="queued"} 0' in text
    assert "backprop_queue_depth 0" in text and "backprop_workers 0" in text
