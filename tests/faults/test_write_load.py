"""Fault 5: twenty clients write and predict while workers train: never a 5xx."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.scenarios import write_load

pytestmark = pytest.mark.slow


def test_concurrent_writers_and_workers_get_no_server_error(
    sqlite_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(sqlite_url)
    server = cluster.serve()
    report = write_load(cluster, server.base_url, clients=20, rounds=2)

    assert report.problems() == []
    assert report.jobs_submitted == 40
    assert not [status for status in report.statuses if status >= 500]
