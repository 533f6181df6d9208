"""Item 1 of issue 18: preemption is not failure. Workers killed after progress, more
times than BACKPROP_MAX_ATTEMPTS, still let the job succeed bit-identically."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.harness import Workload
from tests.faults.preemption import preempt_repeatedly

pytestmark = pytest.mark.slow

EPOCHS = 40
KILLS = [8, 16, 24, 32]  # 4 kills, each after checkpoints of its own attempt


def test_a_job_killed_after_progress_more_than_max_attempts_times_succeeds(
    database_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(database_url, max_attempts=3, checkpoint_seconds=0.0)
    cluster.serve()
    report = preempt_repeatedly(
        cluster, cluster.client(), kill_epochs=KILLS, workload=Workload(epochs=EPOCHS)
    )

    assert report.problems() == []
    assert (report.status, report.error) == ("succeeded", None)
    assert (report.attempts, report.attempts_without_progress) == (len(KILLS) + 1, 0)
    assert report.identical
    # The history has every epoch exactly once, although epochs 8, 16, 24 and 32 ran twice.
    assert report.history_epochs == list(range(1, EPOCHS + 1))
