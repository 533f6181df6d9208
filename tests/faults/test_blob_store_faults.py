"""The fault scenarios with the blob store on S3 (a real server: see tests/s3server.py):
SIGKILLed workers resume from checkpoints stored as objects, crashes around every commit
leave one model per job, and bit-identical weights come back through the API."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.harness import Workload
from tests.faults.scenarios import CRASH_POINTS, crash_around_commits, kill_workers_mid_training
from tests.s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.s3]


def test_sigkilled_workers_resume_from_s3_checkpoints(
    sqlite_url: str, s3: S3Server, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(sqlite_url, blob_url=s3.new_url(), extra_env=s3.env())
    cluster.serve()
    report = kill_workers_mid_training(
        cluster, cluster.client(), kills=2, workload=Workload(epochs=60), seed=5
    )

    assert report.problems() == []
    assert report.kills == 2
    assert report.survived == report.identical == 2
    assert all(epoch is not None and epoch >= 1 for epoch in report.resumed_from)


def test_crashes_around_commits_with_s3_leave_one_model_per_job(
    sqlite_url: str, s3: S3Server, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(sqlite_url, max_attempts=10, blob_url=s3.new_url(), extra_env=s3.env())
    cluster.serve()
    report = crash_around_commits(cluster, cluster.client(), workload=Workload(epochs=20))

    assert report.problems() == []
    assert report.exit_codes == dict.fromkeys(CRASH_POINTS, 137)
    assert report.outcomes == dict.fromkeys(CRASH_POINTS, "succeeded")
    assert report.integrity == "ok"
