"""PostgreSQL stopped (``pg_ctl stop -m fast``) for 10 s and started again, mid-training and
under predict load, on a throwaway server of the test's own.

Real processes: ``backprop serve`` (API only) and a stand-alone ``backprop worker``. While
the database is away: predict of a cached model keeps answering 200; every other request
answers 503 with ``Retry-After`` and a JSON body (never a 500, never a hang); the worker
keeps training and keeps its lease (retrying the renewal). Afterwards, with no process
restarted: the API answers again, and the job ends ``succeeded`` in its first attempt,
bit-identical to an uninterrupted run of the same job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from app.storage.tables import JobStatus
from tests.faults.conftest import MakeCluster
from tests.faults.harness import Cluster, Workload, weights_equal
from tests.faults.pgserver import PgServer, pg_server_or_skip
from tests.faults.scenarios import reference_weights, wait_for_epoch

# PostgreSQL: a server of its own (skips without the binaries). Two 250-epoch runs and an
# outage: minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

OUTAGE_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 30.0


@pytest.fixture
def pg_server() -> Iterator[PgServer]:
    with pg_server_or_skip() as server:
        yield server


@dataclass
class Answer:
    at: float  # time.monotonic() when the request was sent
    kind: str  # "predict" or "read"
    status: int  # 0: no answer (an exception, e.g. a timeout)
    retry_after: str | None = None
    body: object = None
    error: str = ""


@dataclass
class Load:
    """Clients in threads: predicts of a cached model and job reads (the database)."""

    cluster: Cluster
    model_id: str
    job_id: str
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def _loop(self, kind: str) -> None:
        base = self.cluster.servers[-1].base_url
        headers = {"Authorization": f"Bearer {self.cluster.key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS) as http:
            while not self.stopping.is_set():
                sent = time.monotonic()
                try:
                    if kind == "predict":
                        body = {"x": [[0.5, -0.25], [1.0, 0.5]]}
                        response = http.post(f"/v1/models/{self.model_id}/predict", json=body)
                    else:
                        response = http.get(f"/v1/jobs/{self.job_id}")
                except httpx.HTTPError as exc:
                    self.answers.append(Answer(sent, kind, 0, error=repr(exc)))
                    continue
                content = response.json() if response.content else None
                self.answers.append(
                    Answer(
                        sent,
                        kind,
                        response.status_code,
                        response.headers.get("retry-after"),
                        content,
                    )
                )
                time.sleep(0.02)

    def run(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._loop, args=(kind,), daemon=True)
            for kind in ("predict", "predict", "read")
        ]
        for thread in threads:
            thread.start()
        return threads


def test_postgres_restart_mid_training_under_predict_load(
    pg_server: PgServer, make_cluster: MakeCluster
) -> None:
    # A lease longer than the outage: the worker must keep its job through it.
    cluster = make_cluster(pg_server.url, lease_seconds=30.0)
    server = cluster.serve()
    worker = cluster.worker()
    api = cluster.client()
    workload = Workload(epochs=250)
    network_id, dataset_id = workload.create(api)
    options = workload.options()
    reference = reference_weights(cluster, api, network_id, dataset_id, options)
    model_id = api.expect(200, "GET", "/v1/models")["items"][0]["id"]
    job_id = api.submit_job(network_id, dataset_id, **options)
    wait_for_epoch(cluster.probe, job_id, 20, timeout=120)
    # The worker is held (SIGSTOP) until the database is down, so the job is still
    # running when the outage begins however fast the machine (its 250 epochs once ended
    # within the second of answers below); it then trains, and commits, through it.
    worker.stop()

    load = Load(cluster, model_id, job_id)
    threads = load.run()
    time.sleep(1.0)  # answers before the outage
    at_stop = api.job(job_id)
    assert at_stop["status"] == JobStatus.RUNNING and at_stop["epoch"] < workload.epochs
    stopped_at = time.monotonic()
    pg_server.stop("fast")
    worker.cont()
    time.sleep(OUTAGE_SECONDS)
    pg_server.start()
    started_at = time.monotonic()

    def reads_again() -> bool:
        return any(a.kind == "read" and a.status == 200 and a.at > started_at for a in load.answers)

    deadline = time.monotonic() + 60
    while not reads_again() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    load.stopping.set()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_SECONDS + 5)
    recovered = reads_again()
    first_read = min(
        (a.at for a in load.answers if a.kind == "read" and a.status == 200 and a.at > started_at),
        default=float("nan"),
    )
    by_status: dict[tuple[str, int], int] = {}
    for answer in load.answers:
        by_status[answer.kind, answer.status] = by_status.get((answer.kind, answer.status), 0) + 1
    print(
        f"outage {started_at - stopped_at:.1f} s (stop + {OUTAGE_SECONDS:g} s + start) from "
        f"epoch {at_stop['epoch']}; answers {by_status}; first 200 read "
        f"{first_read - started_at:.2f} s after the start"
    )

    during = [a for a in load.answers if stopped_at + 1 < a.at < started_at]
    assert during, "no request was answered while the database was away"
    assert [a for a in load.answers if a.status not in (200, 503)] == []
    refused = [a for a in load.answers if a.status == 503]
    assert refused, "no request needed the database while it was away"
    for answer in refused:
        assert answer.retry_after is not None and int(answer.retry_after) > 0
        assert isinstance(answer.body, dict)
        assert answer.body["detail"][0]["type"] == "database_unavailable"
    # Predict of a cached model never needed the database.
    refused_predicts = [a for a in load.answers if a.kind == "predict" and a.status != 200]
    assert refused_predicts == [], server.proc.tail(60)
    assert any(a.kind == "predict" for a in during)
    assert recovered, "the API did not answer a database read again after the restart"

    job = api.wait_terminal([job_id], timeout=300)[job_id]
    assert job["status"] == JobStatus.SUCCEEDED, job
    assert job["attempts"] == 1, "the job changed hands: its worker lost the lease"
    assert weights_equal(api.weights(job["model_id"]), reference)
    # Nothing was restarted: the same API and worker processes answered and trained.
    assert server.proc.alive() and worker.alive()
    assert "exited with status" not in server.proc.output()
    assert "stopped after" not in worker.output()
    api.create_network(name="after the restart")  # writes work again
    assert cluster.probe.invariant_violations() == []
