"""Fault 3: a frozen worker wakes after losing its lease; its writes are fenced off."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.harness import Workload
from tests.faults.scenarios import zombie_worker

pytestmark = pytest.mark.slow


def test_zombie_worker_changes_nothing(sqlite_url: str, make_cluster: MakeCluster) -> None:
    cluster = make_cluster(sqlite_url, checkpoint_seconds=0.2)
    cluster.serve()
    report = zombie_worker(cluster, cluster.client(), workload=Workload(epochs=300, n_samples=2000))

    assert report.problems() == []
    assert report.attempts == 2
    assert report.models == 1
