"""Fault 1: SIGKILL a worker mid-training; another resumes the job from its checkpoint."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.harness import Workload
from tests.faults.scenarios import kill_workers_mid_training

pytestmark = pytest.mark.slow


def test_sigkilled_workers_jobs_resume_bit_identical(
    database_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(database_url)
    cluster.serve()
    report = kill_workers_mid_training(
        cluster, cluster.client(), kills=3, workload=Workload(epochs=100), seed=11
    )

    assert report.problems() == []
    assert report.kills == 3
    assert report.survived == report.identical == 3
    # Each kill landed between 10% and 90% of the run, after a checkpoint was taken.
    assert all(0 < epoch < epochs for epoch, epochs in report.kill_epochs)
    assert all(epoch is not None and epoch >= 1 for epoch in report.resumed_from)
