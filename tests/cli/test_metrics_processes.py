"""/metrics with several API processes: the counts are the same whichever one answers.

Two real uvicorn processes of the app share one ``PROMETHEUS_MULTIPROC_DIR`` (as several
API processes of one deployment would); requests go to both, each scrape sums them all,
and the counts of a process that stopped are kept. ``backprop serve`` makes that folder
for its API process and removes it when it stops.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.storage.migrations import upgrade
from tests.cli.server import Server, free_port
from tests.conftest import MakeSettings
from tests.processes import stop, wait_for
from tests.worker.procs import REPO_ROOT

pytestmark = pytest.mark.slow  # real API processes


def healthz_count(base_url: str) -> float:
    """``backprop_http_requests_total`` of GET /healthz 200, as ``base_url`` reports it."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "backprop_http_requests_total" and sample.labels == {
                "method": "GET",
                "route": "/healthz",
                "status": "200",
            }:
                return sample.value
    return 0.0


def start_api(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=out, stderr=out)


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, what=f"{base_url}/healthz", timeout=60)


@pytest.fixture
def two_apis(
    sqlite_url: str, tmp_path: Path
) -> Iterator[tuple[list[str], list[subprocess.Popen[bytes]]]]:
    upgrade(sqlite_url)
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": sqlite_url,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    urls, processes = [], []
    try:
        for index in range(2):
            port = free_port()
            log = tmp_path / f"api-{index}.log"
            processes.append(start_api(port, env, log))
            urls.append(f"http://127.0.0.1:{port}")
            wait_healthy(urls[-1], processes[-1], log)
        yield urls, processes
    finally:
        for process in processes:
            stop(process)


def test_two_api_processes_report_the_same_sum(
    two_apis: tuple[list[str], list[subprocess.Popen[bytes]]],
) -> None:
    (first, second), processes = two_apis
    before = healthz_count(first)  # the readiness polls of the fixture
    assert healthz_count(second) == before
    for _ in range(3):
        assert httpx.get(f"{first}/healthz", timeout=10).status_code == 200
    for _ in range(2):
        assert httpx.get(f"{second}/healthz", timeout=10).status_code == 200
    assert healthz_count(first) == before + 5
    assert healthz_count(second) == before + 5

    # A process that stops keeps its counts: counters never go back.
    stop(processes[0])
    assert healthz_count(second) == before + 5


def test_serve_gives_its_api_a_metrics_folder_and_removes_it(
    sqlite_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    make_settings(sqlite_url)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = Server(tmp_path, workers=0, TMPDIR=str(temporary))
    try:
        server.wait_healthy()
        assert healthz_count(server.url) >= 1
        (folder,) = temporary.glob("backprop-metrics-*")
        assert any(folder.glob("counter_*.db")), "the API process writes its counts there"
    finally:
        assert server.stop() == 0, server.logs()
    assert list(temporary.glob("backprop-metrics-*")) == []
