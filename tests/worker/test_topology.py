"""Issue 2's topology: one API process and two separate worker processes on one
PostgreSQL database. 50 jobs over HTTP each succeed exactly once, spread over both."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.storage.database import Database
from app.storage.tables import Job, JobStatus, Model
from tests.cli.server import Server
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.worker.procs import start_worker, wait_exit

JOBS = 50
KEY = "bp_" + "t" * 43


@pytest.mark.postgres
@pytest.mark.slow
def test_api_and_two_workers_share_one_postgres_database(
    postgres_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    database_url = postgres_url
    make_settings(database_url, bootstrap_key=KEY, max_active_jobs=JOBS)
    server = Server(tmp_path, workers=0)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = []
    stack = ExitStack()
    try:
        server.wait_healthy()
        workers = [start_worker(log) for log in logs]
        api = stack.enter_context(
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
            )
        )
        dataset = api.post(
            "/v1/datasets",
            json={"name": "xor", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]},
        )
        assert dataset.status_code == 201, dataset.text
        network = api.post(
            "/v1/networks",
            json={
                "name": "xor",
                "input_size": 2,
                "layers": [
                    {"units": 4, "activation": "tanh"},
                    {"units": 1, "activation": "sigmoid"},
                ],
            },
        )
        assert network.status_code == 201, network.text
        body = {
            "network_id": network.json()["id"],
            "dataset_id": dataset.json()["id"],
            "epochs": 20,
            "batch_size": 4,
            "validation_split": 0.0,
        }
        job_ids = []
        for _ in range(JOBS):
            response = api.post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["id"])

        def all_ended() -> list[dict[str, object]] | None:
            jobs = [api.get(f"/v1/jobs/{job_id}").json() for job_id in job_ids]
            done = all(job["status"] in ("succeeded", "failed", "cancelled") for job in jobs)
            return jobs if done else None

        jobs = wait_for(all_ended, what="50 jobs to end", timeout=300)
    finally:
        stack.close()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker, log in zip(workers, logs, strict=True):
            assert wait_exit(worker, log) == 0
        assert server.stop() == 0, server.logs()

    assert {job["status"] for job in jobs} == {"succeeded"}
    assert {job["attempts"] for job in jobs} == {1}
    database = Database(database_url)
    try:
        with database.read_session() as session:
            per_job = session.execute(
                select(Model.job_id, func.count()).group_by(Model.job_id)
            ).all()
            runners = set(session.scalars(select(Job.worker_id).where(Job.id.in_(job_ids))))
            statuses = set(session.scalars(select(Job.status)))
    finally:
        database.dispose()
    assert sorted(str(job_id) for job_id, _ in per_job) == sorted(job_ids)
    assert {count for _, count in per_job} == {1}
    assert statuses == {JobStatus.SUCCEEDED}
    assert len(runners) == 2  # both workers took jobs
