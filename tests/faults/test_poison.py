"""Fault 7: a job that kills its worker every time fails after max attempts; others finish."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.scenarios import poison_job

pytestmark = pytest.mark.slow


def test_poison_job_fails_with_a_reason_while_others_complete(
    sqlite_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(sqlite_url, max_attempts=3)
    cluster.serve()
    report = poison_job(cluster, cluster.client(), others=4)

    assert report.problems() == []
    assert (report.poison_status, report.poison_attempts) == ("failed", 3)
    assert report.poison_error and "3 attempts" in report.poison_error
    assert report.others_succeeded == 4
    assert report.worker_restarts >= 3
