"""Fault 6: cancelled jobs never start, stop promptly, and stay cancelled through a crash."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.scenarios import (
    CancelReport,
    cancel_queued,
    cancel_racing_kill,
    cancel_running,
)

pytestmark = pytest.mark.slow


def test_cancelled_queued_jobs_never_start(sqlite_url: str, make_cluster: MakeCluster) -> None:
    cluster = make_cluster(sqlite_url)
    cluster.serve()
    report = CancelReport()
    cancel_queued(cluster, cluster.client(), jobs=15, report=report)

    assert report.problems() == []
    assert (report.queued_cancelled, report.queued_started) == (15, 0)


def test_cancelled_running_jobs_stop_with_or_without_their_model(
    sqlite_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(sqlite_url)
    cluster.serve()
    report = CancelReport()
    cancel_running(cluster, cluster.client(), jobs=2, report=report)

    assert report.problems() == []
    assert report.running_cancelled == 2


def test_cancel_racing_a_killed_worker_stays_cancelled(
    sqlite_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(sqlite_url)
    cluster.serve()
    report = CancelReport()
    cancel_racing_kill(cluster, cluster.client(), rounds=2, report=report)

    assert report.problems() == []
    assert report.race_cancelled == 2
