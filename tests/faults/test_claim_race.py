"""Fault 4: four workers race for many short jobs; each runs exactly once, no lock errors."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.scenarios import claim_race

pytestmark = pytest.mark.slow


def test_four_workers_run_each_job_exactly_once(
    database_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(database_url)
    cluster.serve()
    report = claim_race(cluster, cluster.client(), workers=4, jobs=40)

    assert report.problems() == []
    assert report.succeeded == report.runs == 40
    assert report.lock_errors == []
